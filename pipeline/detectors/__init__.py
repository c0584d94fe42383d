"""Detector backends (CONTRACT §4.3): pick one from the settings, keep one per process, run it safely.

- ``resolve_backend_name()``: ``DETECTOR_BACKEND``, with ``auto`` → ``http`` when ``DETECTOR_URL`` is set, else
  ``onnx`` when ``DETECTOR_ONNX_PATH`` names an existing file, else ``opencv``.
- ``get_detector()``: the process-wide instance, built on first use and rebuilt (the old one closed) whenever
  the settings it was built from change (an ONNX model file replaced on disk counts as a change).
- ``detect(frame)``: one call under the ``detector`` circuit breaker, successful calls timed into
  ``hsi_detector_inference_seconds``, then the common post-processing; returns the result and the count of
  detections dropped for low confidence.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time

from django.conf import settings

from pipeline.detectors.base import Detector, DetectorError, DetectorResult, Frame, RawDetection
from pipeline.detectors.postprocess import postprocess

__all__ = [
    "Detector",
    "DetectorError",
    "DetectorResult",
    "Frame",
    "RawDetection",
    "detect",
    "get_detector",
    "reset_detector",
    "resolve_backend_name",
]

_lock = threading.Lock()
_current: tuple[tuple, Detector] | None = None


def resolve_backend_name() -> str:
    backend = settings.DETECTOR_BACKEND
    if backend != "auto":
        return backend
    if settings.DETECTOR_URL:
        return "http"
    if settings.DETECTOR_ONNX_PATH and os.path.isfile(settings.DETECTOR_ONNX_PATH):
        return "onnx"
    return "opencv"


def _configuration(name: str) -> tuple:
    """Everything the backend ``name`` is built from; a different value means a rebuild."""
    if name == "http":
        return (name, settings.DETECTOR_URL, settings.DETECTOR_API_KEY, settings.DETECTOR_TIMEOUT_SECONDS)
    if name == "onnx":
        path = settings.DETECTOR_ONNX_PATH or ""
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            stamp = None
        return (
            name,
            path,
            stamp,
            settings.DETECTOR_ONNX_LABELS,
            settings.DETECTOR_ONNX_FORMAT,
            settings.DETECTOR_ONNX_INPUT_SIZE,
            settings.DETECTOR_NMS_IOU,
        )
    return (name, settings.DETECTOR_EMBEDDED_MOTION)


def _build(name: str) -> Detector:
    if name == "http":
        if not settings.DETECTOR_URL:
            raise DetectorError("DETECTOR_BACKEND=http needs DETECTOR_URL", error_type="config_error", retryable=False)
        from pipeline.detectors.http import HttpDetector

        return HttpDetector.from_settings()
    if name == "onnx":
        if not settings.DETECTOR_ONNX_PATH:
            raise DetectorError(
                "DETECTOR_BACKEND=onnx needs DETECTOR_ONNX_PATH", error_type="config_error", retryable=False
            )
        from pipeline.detectors.onnx import OnnxDetector

        return OnnxDetector.from_settings()
    from pipeline.detectors.opencv import OpenCVDetector

    return OpenCVDetector.from_settings()


def get_detector() -> Detector:
    """The detector for the current settings (one per process; thread-safe)."""
    global _current
    name = resolve_backend_name()
    configuration = _configuration(name)
    with _lock:
        if _current is not None and _current[0] == configuration:
            return _current[1]
        detector = _build(name)
        if _current is not None:
            _current[1].close()
        _current = (configuration, detector)
        return detector


def reset_detector() -> None:
    """Close and forget the process's detector; the next ``get_detector()`` builds a new one."""
    global _current
    with _lock:
        if _current is not None:
            _current[1].close()
        _current = None


def detect(frame: Frame, detector: Detector | None = None) -> tuple[DetectorResult, int]:
    """Run ``detector`` (default: ``get_detector()``) on ``frame`` under the ``detector`` breaker, post-processed.

    Returns the result with the kept detections and the number dropped below the confidence threshold. Raises
    ``DetectorError`` (or ``CircuitOpenError``) when the call fails, and ``DetectorError(error_type="unreadable",
    retryable=False)`` without touching the breaker when the frame cannot be decoded.
    """
    from hsi.metrics import detector_inference_seconds
    from hsi.resilience import breaker

    detector = detector or get_detector()
    width, height = frame.width, frame.height  # decode first: an unreadable image is not the detector's failure
    started = time.monotonic()
    result = breaker("detector").call(lambda: detector.detect(frame))
    detector_inference_seconds.labels(backend=detector.name).observe(time.monotonic() - started)
    kept, filtered = postprocess(result.detections, width, height)
    return dataclasses.replace(result, detections=kept), filtered
