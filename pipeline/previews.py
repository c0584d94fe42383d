"""The preview a file's validation decoded, handed over to its processing in the same process.

CONTRACT §4.2 has ingest decode every image in full (a truncated file is rejected before it is recorded), and
§4.4/§4.9 need the picture again afterwards, reduced, for the colour histograms of re-identification and for the
thumbnails. Decoding a JPEG twice costs twice the entropy decoding, the bulk of the work: so the validation decode
is made at the preview's DCT scale (every byte is still decoded, truncation still shows), and when the pipeline runs
in this process (all-in-one ``serve``, an eager watcher) the result is kept here, keyed by the content's SHA-256,
for ``pipeline.process_file`` to take instead of decoding the file again.

Only what a later decode would give the same is kept: a JPEG without an EXIF rotation (OpenCV's decoder applies
the rotation, Pillow's does not), in RGB or grayscale, as BGR (OpenCV's layout, as ``Frame.pixels``). The store is
bounded by bytes; an entry that is never taken (the file was a duplicate, its processing runs on another host) is
pushed out by newer ones. Taking a preview that is gone costs nothing but the decode it would have saved.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

MAX_STORED_BYTES = 32 * 1024 * 1024
EXIF_ORIENTATION = 0x0112  # the EXIF tag OpenCV's decoder applies and Pillow's does not
_lock = threading.Lock()
_stored: OrderedDict[str, tuple[np.ndarray, float]] = OrderedDict()
_stored_bytes = 0


def preview_factor(width: int, height: int) -> int:
    """1, 2, 4 or 8: the largest reduction that still covers ``THUMBNAIL_WIDTH`` × ``THUMBNAIL_HEIGHT``."""
    fit = min(settings.THUMBNAIL_WIDTH / width, settings.THUMBNAIL_HEIGHT / height) if width and height else 1.0
    return next((f for f in (8, 4, 2) if f * fit <= 1.0), 1)


def previews_wanted() -> bool:
    """True when files are processed in this process (eager tasks), so a preview kept here can be taken."""
    return bool(settings.CELERY_TASK_ALWAYS_EAGER)


def preview_keep(sha256: str, image: Image.Image, width: int) -> None:
    """Keep the decoded ``image`` (a JPEG drafted at the preview scale; ``width`` its full width) for ``sha256``."""
    global _stored_bytes
    if not sha256 or not width or image.mode not in ("RGB", "L") or image.format != "JPEG":
        return
    orientation = image.getexif().get(EXIF_ORIENTATION)
    if orientation not in (None, 1):
        return
    import cv2
    import numpy as np

    pixels = np.asarray(image)
    pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR if image.mode == "L" else cv2.COLOR_RGB2BGR)
    with _lock:
        previous = _stored.pop(sha256, None)
        if previous is not None:
            _stored_bytes -= previous[0].nbytes
        _stored[sha256] = (pixels, pixels.shape[1] / width)
        _stored_bytes += pixels.nbytes
        while _stored_bytes > MAX_STORED_BYTES and len(_stored) > 1:
            _evicted, (old, _scale) = _stored.popitem(last=False)
            _stored_bytes -= old.nbytes


def preview_take(sha256: str | None) -> tuple[np.ndarray, float] | None:
    """The preview kept for ``sha256`` as (BGR pixels, scale), removed from the store; None when there is none."""
    global _stored_bytes
    if not sha256:
        return None
    with _lock:
        entry = _stored.pop(sha256, None)
        if entry is not None:
            _stored_bytes -= entry[0].nbytes
    return entry


def previews_clear() -> None:
    global _stored_bytes
    with _lock:
        _stored.clear()
        _stored_bytes = 0
