"""Content hashing and the validation table of CONTRACT §4.2.

``validate_media`` returns the first failing check's reject reason, or None for a file the pipeline can process.
"""

from __future__ import annotations

import hashlib
import os
import warnings

from django.conf import settings
from PIL import Image

from pipeline.models import RejectReason
from pipeline.previews import preview_factor, preview_keep, previews_wanted

HASH_CHUNK_BYTES = 64 * 1024


def sha256_of_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of the file's content, read in 64 KiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def validate_media(path: str | os.PathLike, *, media_type: str, size: int, sha256: str = "") -> str | None:
    """The reject reason of the first failing check (too_small, too_large, decompression_bomb, unreadable,
    truncated), None when the file passes. ``size`` is the size the caller measured (0 is ``empty``); with the
    content's ``sha256`` an image's decode is kept for its processing (``pipeline.previews``)."""
    if size == 0:
        return RejectReason.EMPTY
    if media_type == "image":
        if size < settings.MIN_IMAGE_BYTES:
            return RejectReason.TOO_SMALL
        if size > settings.MAX_IMAGE_BYTES:
            return RejectReason.TOO_LARGE
        return image_problem(path, sha256=sha256)
    if media_type != "video":
        raise ValueError(f"not a media type: {media_type!r}")
    if size > settings.MAX_VIDEO_BYTES:
        return RejectReason.TOO_LARGE
    return video_problem(path)


def image_problem(path: str | os.PathLike, *, sha256: str = "") -> str | None:
    """Header size against ``MAX_IMAGE_PIXELS`` (Pillow's decompression-bomb warning counts as a bomb), then
    Pillow's identify/verify, then a decode of all the data that never loads truncated data leniently. With
    ``sha256``, when the pipeline runs in this process, that decode is kept as the file's preview."""
    keep = bool(sha256) and previews_wanted()
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                width, height = image.size
                if width * height > settings.MAX_IMAGE_PIXELS:
                    return RejectReason.DECOMPRESSION_BOMB
                if image.format == "JPEG":  # Pillow's verify checks nothing in a JPEG: the decode checks it all
                    _decode_all(image, sha256 if keep else "")
                    return None
                image.verify()
            with Image.open(path) as image:
                _decode_all(image, "")
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            return RejectReason.DECOMPRESSION_BOMB
        except Exception as error:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, ValueError, struct.error…
            return RejectReason.TRUNCATED if _is_truncation(error) else RejectReason.UNREADABLE
    return None


def _decode_all(image: Image.Image, sha256: str) -> None:
    """Decode every byte of the image data. A JPEG decodes at a DCT scale (1/8, or the preview's when it is kept
    for ``sha256``): all the entropy-coded data is still read, so truncation shows, at about half the cost of the
    full decode. Other formats ignore the draft."""
    width, height = image.size
    factor = preview_factor(width, height) if sha256 else 8
    image.draft(image.mode, (max(1, width // factor), max(1, height // factor)))
    image.load()
    if sha256:
        preview_keep(sha256, image, width)


def video_problem(path: str | os.PathLike) -> str | None:
    """``unreadable`` unless OpenCV opens the video and reads its first frame."""
    import cv2

    capture = cv2.VideoCapture(os.fspath(path))
    try:
        if not capture.isOpened():
            return RejectReason.UNREADABLE
        readable, _frame = capture.read()
    finally:
        capture.release()
    return None if readable else RejectReason.UNREADABLE


def _is_truncation(error: Exception) -> bool:
    return isinstance(error, EOFError) or "truncated" in str(error).lower()
