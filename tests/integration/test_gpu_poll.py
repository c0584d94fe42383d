"""``system.poll_gpu`` (CONTRACT §8.3): one GPUStat per GPU from ``nvidia-smi``, each broadcast as ``gpu.stats``.

The tests put a real executable named ``nvidia-smi`` first on ``PATH``: a shell script that prints what the real
one prints for ``--query-gpu=… --format=csv,noheader,nounits`` (or fails, or hangs).
"""

from __future__ import annotations

import datetime as dt
import os
import stat

import pytest

from system.gpu import gpu_poll, inference_fps
from system.models import GPUStat
from tests.factories import CameraFactory, IngestedFileFactory
from tests.integration.pipeline_support import of_type, system_listener

pytestmark = pytest.mark.django_db

TWO_GPUS = "0, NVIDIA GeForce RTX 3060, 37, 2048, 12288, 54, 41.50\n1, Tesla T4, [N/A], 512, 15360, 40, [N/A]\n"
NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def fake_nvidia_smi(tmp_path, monkeypatch):
    """Install a fake ``nvidia-smi`` printing ``output`` (or running ``script``); returns the installer."""

    def install(output: str = TWO_GPUS, *, script: str | None = None) -> None:
        binary = tmp_path / "nvidia-smi"
        body = script or f"cat <<'EOF'\n{output}EOF\n"
        binary.write_text(f"#!/bin/sh\n{body}")
        binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

    return install


def test_each_gpu_becomes_a_stored_sample_and_a_gpu_stats_message(fake_nvidia_smi, django_capture_on_commit_callbacks):
    # Given two GPUs and three files the detector finished in the last minute (one earlier)
    fake_nvidia_smi()
    camera = CameraFactory()
    for seconds_ago in (5, 20, 50, 90):
        IngestedFileFactory(camera=camera, processed_at=NOW - dt.timedelta(seconds=seconds_ago))

    # When the poll runs
    with system_listener() as stream:
        with django_capture_on_commit_callbacks(execute=True):
            ids = gpu_poll(NOW)
        messages = of_type(stream.drain(), "gpu.stats")

    # Then one row per GPU, fields parsed ("[N/A]" is null), and inference_fps = 3 calls / 60 s
    rows = list(GPUStat.objects.order_by("gpu_index"))
    assert [r.id for r in rows] == sorted(ids)
    assert [(r.gpu_index, r.gpu_name, r.utilization, r.memory_used, r.memory_total) for r in rows] == [
        (0, "NVIDIA GeForce RTX 3060", 37.0, 2048, 12288),
        (1, "Tesla T4", None, 512, 15360),
    ]
    assert (rows[0].temperature, rows[0].power_usage, rows[1].power_usage) == (54.0, 41.5, None)
    assert {r.inference_fps for r in rows} == {0.05}
    # And each is broadcast as GPUStat JSON
    assert sorted(m["gpu_name"] for m in messages) == ["NVIDIA GeForce RTX 3060", "Tesla T4"]
    assert messages[0]["recorded_at"] == "2026-12-04T12:00:00Z"
    assert set(messages[0]) == {
        "gpu_name", "utilization", "memory_used", "memory_total", "temperature", "power_usage", "inference_fps",
        "recorded_at",
    }  # fmt: skip


@pytest.mark.parametrize(
    "script",
    [
        "echo 'NVIDIA-SMI has failed' >&2\nexit 9\n",  # no driver loaded
        "sleep 5\n",  # hangs past the timeout
        "echo 'garbage without commas'\n",
    ],
)
def test_a_failing_or_confused_nvidia_smi_stores_nothing(fake_nvidia_smi, monkeypatch, script):
    monkeypatch.setattr("system.gpu.NVIDIA_SMI_TIMEOUT_SECONDS", 0.3)
    fake_nvidia_smi(script=script)

    assert gpu_poll(NOW) == []
    assert not GPUStat.objects.exists()


def test_nothing_runs_without_nvidia_smi_or_when_monitoring_is_off(fake_nvidia_smi, monkeypatch, settings):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert gpu_poll(NOW) == []

    fake_nvidia_smi()
    settings.GPU_MONITOR_ENABLED = "false"
    assert gpu_poll(NOW) == []
    assert not GPUStat.objects.exists()


def test_inference_fps_counts_only_the_last_minute():
    camera = CameraFactory()
    IngestedFileFactory(camera=camera, processed_at=NOW - dt.timedelta(seconds=59))
    IngestedFileFactory(camera=camera, processed_at=NOW - dt.timedelta(seconds=61))
    IngestedFileFactory(camera=camera, processed_at=None)

    assert inference_fps(NOW) == round(1 / 60, 3)
