"""Shared by the ingest, watcher, upload and watch_cameras tests: crafted media and a look into the test broker."""

from __future__ import annotations

import base64
import io
import json
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from PIL import Image

from tests.images import jpeg_bytes, noise_pixels

PROCESS_FILE = "pipeline.process_file"


def ensure_process_file_task() -> None:
    """Dispatching needs ``pipeline.process_file`` registered. Until the pipeline's task module exists, a stand-in
    of that name is registered; the test broker is never consumed, so its body never runs."""
    from hsi.celery import app

    if PROCESS_FILE not in app.tasks:

        @app.task(name=PROCESS_FILE)
        def process_file_stand_in(file_id: int) -> None:  # pragma: no cover - never consumed in tests
            return None


def broker_tasks(queue: str = "detection") -> list[tuple[str, list]]:
    """(task name, args) of every message waiting in ``queue`` of the test Redis broker (this worker's prefix)."""
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        raw_messages = client.lrange(settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] + queue, 0, -1)
    finally:
        client.close()
    tasks = []
    for raw in reversed(raw_messages):  # kombu LPUSHes: oldest last
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        tasks.append((message["headers"]["task"], args))
    return tasks


def wait_for(condition: Callable[[], object], *, timeout: float = 20.0, interval: float = 0.05):
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


# --- crafted media ------------------------------------------------------------------------------------------------


def truncated_jpeg(seed: int = 0) -> bytes:
    """A real JPEG cut in the middle of its scan data: the header reads, the full decode runs out of data."""
    data = jpeg_bytes(seed=seed)
    return data[: len(data) * 2 // 3]


def small_jpeg(seed: int = 0) -> bytes:
    """A valid JPEG well under ``MIN_IMAGE_BYTES`` (10 KiB)."""
    buffer = io.BytesIO()
    Image.fromarray(noise_pixels(32, 24, seed)).save(buffer, format="JPEG", quality=50)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 10_000, height: int = 10_000, padding: int = 12_000) -> bytes:
    """A small PNG whose header claims ``width`` × ``height`` pixels (100 million by default)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    filler = _png_chunk(b"tEXt", b"Comment\x00" + bytes(padding))  # above the 10 KiB size floor
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + filler
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def junk_jpeg(size: int = 20_000) -> bytes:
    """JPEG magic bytes followed by noise that no decoder identifies."""
    return b"\xff\xd8\xff" + bytes((index * 7 + 3) % 251 for index in range(size - 3))


def unreadable_mp4(size: int = 20_000) -> bytes:
    """An ISO-BMFF ``ftyp`` box and then junk: no ``moov`` atom, so OpenCV cannot open it."""
    ftyp = struct.pack(">I", 24) + b"ftypisom" + struct.pack(">I", 512) + b"isommp41"
    return ftyp + bytes((index * 13 + 5) % 253 for index in range(size - len(ftyp)))


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
