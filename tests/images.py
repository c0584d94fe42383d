"""Synthetic media for tests: real JPEG/PNG/MP4 bytes built on the spot (no fixtures on disk, no downloads).

Noise makes the files big enough for the ingest size floor (``MIN_IMAGE_BYTES``, 10 KiB) and unique per ``seed``,
so two calls with different seeds never dedup against each other.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def noise_pixels(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """An RGB uint8 array of smooth-ish noise (compresses to tens of KiB as JPEG at 640×480)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(max(height // 8, 1), max(width // 8, 1), 3), dtype=np.uint8)
    image = np.kron(coarse, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]
    if image.shape[0] < height or image.shape[1] < width:
        image = np.pad(image, ((0, height - image.shape[0]), (0, width - image.shape[1]), (0, 0)), mode="edge")
    grain = rng.integers(0, 32, size=(height, width, 3), dtype=np.uint8)
    return (image // 2 + grain).astype(np.uint8)


def jpeg_bytes(width: int = 640, height: int = 480, seed: int = 0, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(noise_pixels(width, height, seed)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_bytes(width: int = 320, height: int = 240, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(noise_pixels(width, height, seed)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_jpeg(path: Path, width: int = 640, height: int = 480, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(width, height, seed))
    return path


def write_video(
    path: Path, *, seconds: float = 4.0, fps: int = 5, width: int = 320, height: int = 240, seed: int = 0
) -> Path:
    """An MP4 (FourCC ``mp4v``) of ``seconds`` × ``fps`` noise frames."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    try:
        for index in range(max(int(seconds * fps), 1)):
            frame = cv2.cvtColor(noise_pixels(width, height, seed * 10_000 + index), cv2.COLOR_RGB2BGR)
            writer.write(frame)
    finally:
        writer.release()
    return path
