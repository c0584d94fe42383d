"""/ws/system (CONTRACT §3.6): a system.status snapshot on connect and from the periodic job."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async

from cameras.models import CameraStatus
from hsi.resilience import breaker
from hsi.schedule import beat_schedule
from pipeline.models import BatchStatus
from system.tasks import broadcast_status
from tests.factories import BatchFactory, CameraFactory, FailedJobFactory
from tests.integration.websocket.support import connected, receive_until, run

pytestmark = pytest.mark.django_db


def snapshot_on_connect() -> tuple[dict, dict]:
    async def scenario():
        communicator, hello = await connected("/ws/system")
        status = await receive_until(communicator, lambda m: m["type"] == "system.status")
        await communicator.disconnect()
        return hello, status

    return run(scenario)


def test_connecting_sends_connected_then_a_status_snapshot_with_the_current_seq():
    hello, status = snapshot_on_connect()

    assert hello["data"]["channel"] == "system"
    assert status["seq"] == hello["data"]["last_seq"]
    assert status["timestamp"].endswith("Z")
    data = status["data"]
    assert set(data) == {"health", "cameras", "queue", "gpu", "detector", "llm", "uptime_seconds"}
    assert data["health"] == "healthy"
    assert data["queue"] == {"detection": 0, "analysis": 0, "notifications": 0, "open_batches": 0, "dlq": 0}
    assert data["detector"] == {"backend": "opencv", "circuit_state": "closed"}
    assert data["llm"] == {"backend": "rules", "circuit_state": "closed"}
    assert isinstance(data["uptime_seconds"], int) and data["uptime_seconds"] >= 0


def test_the_snapshot_counts_cameras_by_status_open_batches_and_the_dlq():
    CameraFactory.create_batch(2, status=CameraStatus.ONLINE)
    offline = CameraFactory(status=CameraStatus.OFFLINE)
    CameraFactory(status=CameraStatus.ERROR)
    BatchFactory(camera=offline, status=BatchStatus.OPEN)
    BatchFactory(camera=offline, status=BatchStatus.DONE)
    FailedJobFactory.create_batch(2)

    _hello, status = snapshot_on_connect()

    data = status["data"]
    assert data["cameras"] == {"total": 4, "online": 2, "offline": 1, "error": 1, "unknown": 0}
    assert data["queue"]["open_batches"] == 1 and data["queue"]["dlq"] == 2


def test_an_open_circuit_breaker_makes_the_system_degraded(settings):
    settings.CIRCUIT_FAILURE_THRESHOLD = 1
    breaker("llm").record_failure()

    _hello, status = snapshot_on_connect()

    assert status["data"]["health"] == "degraded"
    assert status["data"]["llm"]["circuit_state"] == "open"


def test_the_periodic_job_broadcasts_a_status_to_system_clients(settings):
    async def scenario():
        communicator, _hello = await connected("/ws/system")
        first = await receive_until(communicator, lambda m: m["type"] == "system.status")
        await sync_to_async(broadcast_status)()
        periodic = await receive_until(communicator, lambda m: m["type"] == "system.status")
        await communicator.disconnect()
        return first, periodic

    first, periodic = run(scenario)

    assert periodic["seq"] == first["seq"] + 1
    assert periodic["data"]["health"] == "healthy"


def test_the_periodic_job_is_scheduled_every_status_interval_and_runs_the_broadcast_task(settings):
    from hsi.celery import app

    entry = beat_schedule()["system.broadcast_status"]
    task = app.tasks[entry["task"]]

    async def scenario():
        communicator, _hello = await connected("/ws/system")
        first = await receive_until(communicator, lambda m: m["type"] == "system.status")
        await sync_to_async(task.apply)()  # what beat (or the ticker) runs
        periodic = await receive_until(communicator, lambda m: m["type"] == "system.status")
        await communicator.disconnect()
        return first, periodic

    first, periodic = run(scenario)

    assert entry["task"] == "system.broadcast_status"
    assert entry["schedule"].total_seconds() == settings.SYSTEM_STATUS_INTERVAL_SECONDS == 5
    assert task.run is broadcast_status.run
    assert periodic["seq"] == first["seq"] + 1


def test_without_a_snapshot_the_client_is_told_the_system_is_unhealthy(settings):
    del settings.DETECTOR_BACKEND  # a broken configuration: building system.status raises

    _hello, status = snapshot_on_connect()

    assert status["data"] == {
        "health": "unhealthy",
        "cameras": None,
        "queue": None,
        "gpu": None,
        "detector": None,
        "llm": None,
        "uptime_seconds": None,
    }


@pytest.fixture
def slow_nvidia_smi(settings, tmp_path, monkeypatch):
    """An ``nvidia-smi`` on PATH that takes 1.5 s to answer (a busy GPU driver); its start leaves a marker file."""
    started = tmp_path / "nvidia-smi-started"
    binary = tmp_path / "bin" / "nvidia-smi"
    binary.parent.mkdir()
    binary.write_text(f"#!/bin/sh\ntouch {started}\nsleep 1.5\necho '0, Fake GPU, 40, 1000, 8000, 55, 30'\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", f"{binary.parent}:{__import__('os').environ['PATH']}")
    settings.GPU_MONITOR_ENABLED = "true"
    return started


def test_a_slow_gpu_reading_for_one_snapshot_does_not_hold_up_other_handshakes(slow_nvidia_smi):
    async def scenario():
        system = asyncio.create_task(connected("/ws/system"))
        async with asyncio.timeout(3):
            while not slow_nvidia_smi.exists():
                await asyncio.sleep(0.01)
        started = time.monotonic()
        events, _hello = await connected("/ws/events")
        events_took = time.monotonic() - started
        system_client, _ = await system
        status = await receive_until(system_client, lambda m: m["type"] == "system.status", timeout=5)
        for client in (events, system_client):
            await client.disconnect()
        return events_took, status

    events_took, status = run(scenario)

    assert events_took < 0.7  # not behind the 1.5 s nvidia-smi
    assert status["data"]["gpu"]["gpu_name"] == "Fake GPU"
