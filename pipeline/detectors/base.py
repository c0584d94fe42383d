"""The detector interface (CONTRACT §4.3): one small base class; one module per backend.

A backend turns one ``Frame`` into a ``DetectorResult``. It raises ``DetectorError`` (a ``PipelineError``) for a
failed call, with the FailedJob ``error_type`` and whether a retry may succeed. The circuit breaker, the
confidence threshold and retries are applied by the caller, not by the backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from pipeline.resilience import PipelineError

if TYPE_CHECKING:
    import numpy as np


class DetectorError(PipelineError):
    pass


@dataclass(frozen=True)
class RawDetection:
    """One object in one frame, in source-pixel coordinates (top-left origin)."""

    object_type: str
    confidence: float
    x: int
    y: int
    width: int
    height: int
    embedding: list[float] | None = None
    attributes: dict | None = None


@dataclass
class DetectorResult:
    detections: list[RawDetection]
    inference_ms: float = 0.0
    model: str = ""


@dataclass
class Frame:
    """One image (or one sampled video frame) to detect on.

    ``data`` is the encoded image (the original bytes of an image file; a JPEG for a video frame). ``pixels``
    is the decoded BGR ``uint8`` array (OpenCV's layout), decoded on first use when not given.
    """

    data: bytes
    filename: str
    mime_type: str
    camera_id: str = ""
    frame_time_seconds: float | None = None
    _pixels: np.ndarray | None = field(default=None, repr=False)

    @cached_property
    def pixels(self) -> np.ndarray:
        if self._pixels is not None:
            return self._pixels
        import cv2
        import numpy as np

        decoded = cv2.imdecode(np.frombuffer(self.data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            raise DetectorError(
                f"cannot decode {self.filename}", error_type="unreadable", retryable=False, counts_for_breaker=False
            )
        return decoded

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


class Detector(ABC):
    """A detector backend. Instances are reused for many frames (one per process) and must be thread-safe."""

    name: str = ""

    @abstractmethod
    def detect(self, frame: Frame) -> DetectorResult:
        """Detect objects in ``frame``; raise ``DetectorError`` when the call fails."""

    def health(self) -> bool:
        """True when the backend can take work now (the HTTP backend probes ``/health``)."""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients or sessions."""
