"""Shared set-up of the pipeline tests: real files on disk, the fake detector and LLM servers, eager tasks.

A test module that runs tasks imports ``pipeline_env`` and applies it with ``pytest.mark.usefixtures("pipeline_env")``;
the fake detector is then the ``fake_detector`` fixture.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from hsi import dispatch
from pipeline.models import IngestedFile
from tests.factories import IngestedFileFactory
from tests.images import write_jpeg, write_video
from tests.streams import GroupStream

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)  # a Wednesday, midday UTC


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture
def pipeline_env(settings, fake_detector):
    """Eager tasks, no backoff, the fake HTTP detector, the rules analyzer."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.RETRY_BASE_DELAY_SECONDS = 0
    settings.DETECTOR_BACKEND = "http"
    settings.DETECTOR_URL = fake_detector.url
    settings.LLM_BACKEND = "rules"
    settings.LLM_URL = None
    return fake_detector


_seeds = iter(range(10_000, 10**9))


def image_file(
    camera, root: Path, *, received_at: dt.datetime = T0, status: str = "pending", size=(640, 480), **fields
) -> IngestedFile:
    """A real JPEG (``size``) in the camera's folder and its IngestedFile row."""
    seed = next(_seeds)
    path = write_jpeg(Path(root) / camera.id / f"img_{seed}.jpg", *size, seed=seed)
    data = path.read_bytes()
    return IngestedFileFactory(
        camera=camera,
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        media_type="image",
        mime_type="image/jpeg",
        status=status,
        received_at=received_at,
        **fields,
    )


def video_file(camera, root: Path, *, received_at: dt.datetime = T0, seconds: float = 4.0) -> IngestedFile:
    seed = next(_seeds)
    path = write_video(Path(root) / camera.id / f"clip_{seed}.mp4", seconds=seconds, seed=seed)
    data = path.read_bytes()
    return IngestedFileFactory(
        camera=camera,
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        media_type="video",
        mime_type="video/mp4",
        status="pending",
        received_at=received_at,
    )


def run_task(capture, name: str, *args) -> None:
    """Send a task (eager: inline) and run every after-commit callback it causes, as a real commit would."""
    with capture(execute=True):
        dispatch.send(name, *args)


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@contextlib.contextmanager
def system_listener():
    """Listen to ``/ws/system`` messages for the duration of the block."""
    stream = GroupStream("hsi.system")
    try:
        yield stream
    finally:
        stream.close()


def of_type(messages: list[dict], message_type: str) -> list[dict]:
    return [m["data"] for m in messages if m["type"] == message_type]
