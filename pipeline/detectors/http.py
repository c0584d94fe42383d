"""HTTP detector backend: an RT-DETR/YOLO server speaking CONTRACT §4.3.

``POST {url}/detect`` with the image as multipart field ``file`` (base name, sniffed MIME; video frames are
JPEG) and ``X-API-Key`` when a key is set. Connect timeout 10 s (capped by the total); every other phase and the
whole exchange are bounded by ``timeout`` (``DETECTOR_TIMEOUT_SECONDS``). Failures become ``DetectorError``:

| cause | error_type | retryable | counts for the breaker |
|---|---|---|---|
| connection refused/reset, protocol error | ``connection_error`` | yes | yes |
| timeout | ``timeout`` | yes | yes |
| HTTP 5xx | ``http_5xx`` | yes | yes |
| HTTP 408 / 429 | ``http_4xx`` | yes | yes |
| other HTTP 4xx | ``http_4xx`` | no | no |
| non-JSON or non-object body, other status | ``malformed_response`` | yes | yes |

Bad entries of a ``detections`` list are skipped one by one; an object without a ``detections`` list is "no
detections" with a WARNING.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time

import httpx
from django.conf import settings

from hsi.resilience import error_type_for_status
from pipeline.detectors.base import Detector, DetectorError, DetectorResult, Frame, RawDetection

logger = logging.getLogger("hsi.pipeline.detectors.http")

CONNECT_TIMEOUT_SECONDS = 10.0
HEALTH_TIMEOUT_SECONDS = 5.0
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


def sniff_image_mime(data: bytes) -> str:
    """The MIME type of JPEG/PNG bytes by their magic numbers; ``application/octet-stream`` otherwise."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    return "application/octet-stream"


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _bbox(raw) -> tuple[int, int, int, int] | None:
    if isinstance(raw, dict):
        values = [raw.get(key) for key in ("x", "y", "width", "height")]
    elif isinstance(raw, list | tuple) and len(raw) == 4:
        values = list(raw)
    else:
        return None
    numbers = [_number(value) for value in values]
    if any(number is None for number in numbers):
        return None
    x, y, width, height = numbers
    return round(x), round(y), round(width), round(height)


def _embedding(raw) -> list[float] | None:
    if not isinstance(raw, list) or not raw:
        return None
    numbers = [_number(value) for value in raw]
    return None if any(number is None for number in numbers) else numbers


def parse_detection(entry) -> RawDetection | None:
    """One response entry as a ``RawDetection``, or None when its class, confidence or bbox is unusable."""
    if not isinstance(entry, dict):
        return None
    label = entry.get("class")
    confidence = _number(entry.get("confidence"))
    box = _bbox(entry.get("bbox"))
    if not isinstance(label, str) or not label.strip() or confidence is None or not 0 <= confidence <= 1:
        return None
    if box is None:
        return None
    attributes = entry.get("attributes")
    return RawDetection(
        object_type=label,
        confidence=confidence,
        x=box[0],
        y=box[1],
        width=box[2],
        height=box[3],
        embedding=_embedding(entry.get("embedding")),
        attributes=attributes if isinstance(attributes, dict) else None,
    )


def parse_response(body: dict, elapsed_ms: float) -> DetectorResult:
    """A ``DetectorResult`` from a decoded 2xx body (an object)."""
    entries = body.get("detections")
    if not isinstance(entries, list):
        logger.warning("Detector response has no 'detections' list; treating it as no detections")
        entries = []
    detections = []
    for entry in entries:
        detection = parse_detection(entry)
        if detection is None:
            logger.debug("Skipping malformed detector entry: %.200r", entry)
            continue
        detections.append(detection)
    inference_ms = _number(body.get("inference_time_ms"))
    model = body.get("model")
    return DetectorResult(
        detections=detections,
        inference_ms=inference_ms if inference_ms is not None else elapsed_ms,
        model=model if isinstance(model, str) and model else HttpDetector.name,
    )


class HttpDetector(Detector):
    name = "http"

    def __init__(self, url: str, *, api_key: str = "", timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        headers = {"X-API-Key": api_key} if api_key else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(CONNECT_TIMEOUT_SECONDS, self.timeout)),
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls) -> HttpDetector:
        return cls(
            settings.DETECTOR_URL,
            api_key=settings.DETECTOR_API_KEY or "",
            timeout=settings.DETECTOR_TIMEOUT_SECONDS,
        )

    def detect(self, frame: Frame) -> DetectorResult:
        started = time.monotonic()
        filename = os.path.basename(frame.filename) or "frame.jpg"
        mime_type = frame.mime_type if frame.mime_type.startswith("image/") else sniff_image_mime(frame.data)
        files = {"file": (filename, frame.data, mime_type)}
        try:
            with self._client.stream("POST", f"{self.url}/detect", files=files) as response:
                body = self._read_body(response, deadline=started + self.timeout)
        except httpx.TimeoutException as error:
            raise DetectorError(f"Detector timed out: {error}", error_type="timeout") from error
        except httpx.HTTPError as error:
            raise DetectorError(f"Detector unreachable: {error}", error_type="connection_error") from error
        self._raise_for_status(response.status_code, body)
        try:
            decoded = json.loads(body)
        except ValueError as error:
            raise DetectorError("Detector answered non-JSON", error_type="malformed_response") from error
        if not isinstance(decoded, dict):
            raise DetectorError("Detector answered JSON that is not an object", error_type="malformed_response")
        return parse_response(decoded, (time.monotonic() - started) * 1000)

    @staticmethod
    def _read_body(response: httpx.Response, *, deadline: float) -> bytes:
        """The body, enforcing the total deadline and a size cap while it streams in."""
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("total detector timeout exceeded")
            if size > MAX_RESPONSE_BYTES:
                raise DetectorError("Detector response too large", error_type="malformed_response")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _raise_for_status(status: int, body: bytes) -> None:
        if 200 <= status < 300:
            return
        snippet = body[:200].decode("utf-8", "replace")
        if status >= 400:
            error_type, retryable = error_type_for_status(status)
            raise DetectorError(
                f"Detector answered HTTP {status}: {snippet}",
                error_type=error_type,
                retryable=retryable,
                counts_for_breaker=retryable,
            )
        raise DetectorError(f"Detector answered unexpected HTTP {status}", error_type="malformed_response")

    def health(self) -> bool:
        try:
            response = self._client.get(f"{self.url}/health", timeout=min(HEALTH_TIMEOUT_SECONDS, self.timeout))
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 300

    def close(self) -> None:
        self._client.close()
