"""Fake object-detection server speaking the RT-DETR/YOLO server contract of CONTRACT §4.3 (HTTP backend).

``POST /detect`` (multipart field ``file``) answers ``{"detections": [...], "inference_time_ms", "model"}``;
``GET /health`` answers 200 while ``healthy``. What it detects is ``detections`` (the same list for every image)
or ``detect_fn(filename, image_bytes) -> list`` when set; ``uploads`` lists what was sent. Use the
``fake_detector`` fixture.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Callable

import pytest

from tests.fakes.http_fake import FakeHttpServer, RecordedRequest, Reply


def person(confidence: float = 0.93, x: int = 100, y: int = 80, width: int = 120, height: int = 260) -> dict:
    return {"class": "person", "confidence": confidence, "bbox": {"x": x, "y": y, "width": width, "height": height}}


def detection(cls: str, confidence: float, bbox=(10, 10, 50, 50)) -> dict:
    return {"class": cls, "confidence": confidence, "bbox": list(bbox)}


def multipart_file(request: RecordedRequest) -> tuple[str | None, bytes | None, str | None]:
    """(filename, content, content type) of the ``file`` field of a multipart request."""
    content_type = request.headers.get("Content-Type", "")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + request.body
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_filename(), part.get_payload(decode=True), part.get_content_type()
    return None, None, None


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
