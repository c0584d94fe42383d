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

from hsi.resilience import PipelineError
from pipeline.previews import EXIF_ORIENTATION, preview_factor

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
    _preview: tuple[np.ndarray, float] | None = field(default=None, repr=False)

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

    @cached_property
    def preview(self) -> tuple[np.ndarray, float]:
        """(pixels, scale): the frame for thumbnails and colour histograms, decoded at 1/2, 1/4 or 1/8 of its size
        when that still covers ``THUMBNAIL_WIDTH`` × ``THUMBNAIL_HEIGHT`` (a JPEG's DCT scaling makes that decode
        cheaper, and the shrink after it too). The full pixels (scale 1.0) when they are decoded already; the
        preview given (the one the file's validation decoded, ``pipeline.previews``) when they are not."""
        if self._preview is not None and self._pixels is None and "pixels" not in self.__dict__:
            return self._preview
        if self._pixels is not None or "pixels" in self.__dict__ or self.mime_type != "image/jpeg":
            return self.pixels, 1.0

        width, height = self.size
        factor = preview_factor(width, height)
        if factor == 1:
            return self.pixels, 1.0
        import cv2
        import numpy as np

        flag = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
        decoded = cv2.imdecode(np.frombuffer(self.data, dtype=np.uint8), flag)
        if decoded is None or not width:
            return self.pixels, 1.0
        return decoded, decoded.shape[1] / width

    def keep_preview_only(self) -> None:
        """Once detection and embeddings are done only the preview is needed (thumbnails): full-size pixels that
        were decoded are replaced by a preview-size copy, so a chunk of large frames (the embedded detector on 4K
        cameras) does not hold every one of them until its commit."""
        if self._pixels is None and "pixels" not in self.__dict__:
            return
        width, height = self.size
        factor = preview_factor(width, height)
        if factor > 1:
            import cv2

            size = (max(1, width // factor), max(1, height // factor))
            small = cv2.resize(self.pixels, size, interpolation=cv2.INTER_AREA)
            self.__dict__["preview"] = (small, small.shape[1] / width)
            self.__dict__.pop("pixels", None)
            self._pixels = None

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    @cached_property
    def size(self) -> tuple[int, int]:
        """(width, height) as decoded. From the pixels when they are decoded already, else from the header alone
        (a backend that never looks at the pixels, the HTTP one, then costs no decode); an image with an EXIF
        rotation is decoded, as OpenCV's decoder rotates it."""
        if self._pixels is not None or "pixels" in self.__dict__:
            return int(self.pixels.shape[1]), int(self.pixels.shape[0])
        header = _header_size(self.data)
        if header is None:
            return int(self.pixels.shape[1]), int(self.pixels.shape[0])  # raises the decode error
        return header


def _header_size(data: bytes) -> tuple[int, int] | None:
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            orientation = image.getexif().get(EXIF_ORIENTATION)
    except Exception:  # noqa: BLE001 - not an image Pillow knows: let the decoder decide
        return None
    if orientation in (None, 1):
        return width, height
    # Rotated: OpenCV applies the tag for JPEG (also MPO, as Pillow names JPEGs with a second picture), PNG and
    # more; rather than guess which formats, let the decoder say.
    return None


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
