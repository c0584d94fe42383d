"""Fake object-detection server speaking the RT-DETR/YOLO server contract of CONTRACT §4.3 (HTTP backend).

``POST /detect`` (multipart field ``file``) answers ``{"detections": [...], "inference_time_ms", "model"}``;
``GET /health`` answers 200 while ``healthy``. What it detects is ``detections`` (the same list for every image)
or ``detect_fn(filename, image_bytes) -> list`` when set; ``uploads`` lists what was sent. Use the
``fake_detector`` fixture.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.fakes.http_fake import FakeHttpServer, RecordedRequest, Reply


def person(confidence: float = 0.93, x: int = 100, y: int = 80, width: int = 120, height: int = 260) -> dict:
    return {"class": "person", "confidence": confidence, "bbox": {"x": x, "y": y, "width": width, "height": height}}


def detection(cls: str, confidence: float, bbox=(10, 10, 50, 50)) -> dict:
    return {"class": cls, "confidence": confidence, "bbox": list(bbox)}


def multipart_file(request: RecordedRequest) -> tuple[str | None, bytes | None, str | None]:
    """(filename, content, content type) of the ``file`` field of a ``multipart/form-data`` request (RFC 7578).

    Split on the boundary with bytes operations: the e-mail parser took ~12 ms per 300 KB upload, which made the
    "instant" fake detector the slowest part of a pipeline bench.
    """
    boundary = _header_parameters(request.headers.get("Content-Type", "")).get("boundary")
    if not boundary:
        return None, None, None
    delimiter = b"--" + boundary.encode("latin-1")
    for part in request.body.split(b"\r\n" + delimiter):
        part = part.removeprefix(delimiter)
        if part.startswith(b"--"):  # the closing delimiter
            break
        head, separator, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            continue
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = _header_parameters(headers.get("content-disposition", ""))
        if disposition.get("name") == "file":
            return disposition.get("filename"), content, headers.get("content-type", "text/plain").split(";")[0]
    return None, None, None


def _header_parameters(value: str) -> dict[str, str]:
    """``a; k1=v1; k2="v 2"`` → {"k1": "v1", "k2": "v 2"} (quoted values may hold ``;``)."""
    parameters = {}
    for match in re.finditer(r';\s*([A-Za-z0-9_*-]+)=("(?:[^"\\]|\\.)*"|[^;]*)', value):
        raw = match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        parameters[match.group(1).lower()] = raw
    return parameters


class FakeDetector(FakeHttpServer):
    def __init__(self):
        super().__init__()
        self.detections: list[dict] = []
        self.detect_fn: Callable[[str, bytes], list[dict]] | None = None
        self.healthy = True
        self.model = "fake-rtdetr"
        self.inference_time_ms = 1.0

    def default_reply(self, request: RecordedRequest) -> Reply:
        path = request.path.split("?")[0]
        if request.method == "GET" and path == "/health":
            return Reply(status=200 if self.healthy else 503, json={"status": "ok" if self.healthy else "down"})
        if request.method == "POST" and path == "/detect":
            filename, content, _ = multipart_file(request)
            if content is None:
                return Reply(status=422, json={"detail": "field 'file' is required"})
            found = self.detect_fn(filename or "", content) if self.detect_fn else self.detections
            return Reply(json={"detections": found, "inference_time_ms": self.inference_time_ms, "model": self.model})
        return super().default_reply(request)

    @property
    def detect_calls(self) -> int:
        return len(self.requests_to("/detect"))

    @property
    def uploads(self) -> list[tuple[str | None, bytes | None, str | None]]:
        """(filename, content, content type) of the ``file`` field of every ``/detect`` request, in order."""
        return [multipart_file(request) for request in self.requests_to("/detect")]


@pytest.fixture
def fake_detector():
    server = FakeDetector().start()
    yield server
    server.stop()
