"""Detection thumbnails (CONTRACT §4.9, §10): ``$HSI_DATA_DIR/thumbnails/<id>_thumb.jpg``.

The source frame is fitted into exactly ``THUMBNAIL_WIDTH`` × ``THUMBNAIL_HEIGHT`` (aspect kept, centred on
black), then this detection's box (3 px) and its label ``"<class> <confidence:.2f>"`` are drawn at thumbnail
scale, so the box and the text keep their size whatever the source resolution. Generation is best effort: a
missing or unreadable source is logged and yields None.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from events.models import Detection

logger = logging.getLogger("hsi.media.thumbnails")

BOX_WIDTH = 3
LABEL_FONT_SIZE = 12
LABEL_PADDING = 2
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)

_FAMILY_COLOURS: dict[tuple[str, ...], tuple[int, int, int]] = {
    ("person",): (231, 72, 86),
    ("car", "truck", "bus"): (59, 130, 246),
    ("dog", "cat", "bird", "horse", "sheep", "cow", "bear", "elephant", "zebra", "giraffe", "animal"): (118, 185, 0),
    ("bicycle", "motorcycle"): (255, 184, 0),
    ("motion",): (168, 85, 247),
}
CLASS_COLOURS = {name: colour for names, colour in _FAMILY_COLOURS.items() for name in names}


def class_colours(object_type: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(box colour, label text colour) of a class: its family colour with white text, else white with black."""
    colour = CLASS_COLOURS.get(object_type.lower())
    return (colour, WHITE) if colour is not None else (WHITE, BLACK)


THUMBNAIL_SUFFIX = "_thumb.jpg"


def thumbnail_path_for(detection_id: int) -> Path:
    return Path(settings.HSI_DATA_DIR) / "thumbnails" / f"{detection_id}{THUMBNAIL_SUFFIX}"


def thumbnails_generate(pairs: Sequence[tuple[Detection, tuple[np.ndarray, float] | None]]) -> list[str | None]:
    """``thumbnail_generate`` for several detections, each with its decoded frame and that frame's scale
    (or None to read the source), their paths stored with one UPDATE."""
    from django.db.models import CharField, Value
    from django.db.models.functions import Cast, Concat

    paths = [_generate_or_none(detection, decoded) for detection, decoded in pairs]
    written = [detection.pk for (detection, _), path in zip(pairs, paths, strict=True) if path]
    if written:
        folder = f"{thumbnail_path_for(0).parent}{os.sep}"
        path_of_row = Concat(Value(folder), Cast("id", CharField()), Value(THUMBNAIL_SUFFIX))
        type(pairs[0][0]).objects.filter(pk__in=written).update(thumbnail_path=path_of_row)
    return paths


def _generate_or_none(detection: Detection, decoded: tuple[np.ndarray, float] | None) -> str | None:
    try:
        return thumbnail_generate(detection, *(decoded or (None, 1.0)), record=False)
    except Exception:  # one odd source (a video OpenCV cannot seek) must not cost the others their recorded path
        logger.warning("Could not make the thumbnail of detection %s", detection.id, exc_info=True)
        return None


def thumbnail_generate(
    detection: Detection, pixels_bgr: np.ndarray | None = None, pixel_scale: float = 1.0, *, record: bool = True
) -> str | None:
    """Write the thumbnail of ``detection``, store its path on the row (unless ``record`` is false) and return it;
    None when the source frame cannot be read (logged). ``pixels_bgr`` is the decoded source frame when the
    caller already has it, at ``pixel_scale`` of the source size."""
    if pixels_bgr is None:
        pixels_bgr = load_source_frame(detection)
        if pixels_bgr is None:
            return None
    try:
        image = render_thumbnail(pixels_bgr, detection, pixel_scale)
        path = thumbnail_path_for(detection.id)
        _save_jpeg_atomically(image, path)
    except Exception:  # best effort (CONTRACT §4.9): an odd frame or a full disk must not fail the pipeline
        logger.warning("Could not write the thumbnail of detection %s", detection.id, exc_info=True)
        return None
    detection.thumbnail_path = str(path)
    if record:
        type(detection).objects.filter(pk=detection.pk).update(thumbnail_path=detection.thumbnail_path)
    return detection.thumbnail_path


def load_source_frame(detection: Detection) -> np.ndarray | None:
    """The BGR frame the detection was found in: the image file, or the video frame at its offset."""
    path = detection.file_path
    if not os.path.isfile(path):
        logger.warning("Thumbnail source of detection %s is missing: %s", detection.id, path)
        return None
    if detection.media_type == "video":
        frame = read_video_frame(path, detection.frame_time_seconds or 0.0)
    else:
        frame = read_image(path)
    if frame is None:
        logger.warning("Thumbnail source of detection %s is unreadable: %s", detection.id, path)
    return frame


def read_image(path: str) -> np.ndarray | None:
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def read_video_frame(path: str, seconds: float) -> np.ndarray | None:
    """The frame at ``seconds`` (clamped to the last frame), read with OpenCV."""
    import cv2

    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            return None
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        index = round(max(seconds, 0.0) * fps) if fps > 0 else 0
        if frames > 0:
            index = min(index, frames - 1)
        if index > 0:
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        return frame if ok and frame is not None else None
    finally:
        capture.release()


def render_thumbnail(pixels_bgr: np.ndarray, detection: Detection, pixel_scale: float = 1.0) -> Image.Image:
    """The letterboxed thumbnail of one frame with the detection's box and label. ``pixel_scale`` is the size of
    ``pixels_bgr`` relative to the source frame the box is measured in (a JPEG decoded at 1/4 size: 0.25)."""
    import cv2

    width, height = settings.THUMBNAIL_WIDTH, settings.THUMBNAIL_HEIGHT
    source_height, source_width = pixels_bgr.shape[:2]
    if source_width == 0 or source_height == 0:
        raise ValueError("empty frame")
    scale = min(width / source_width, height / source_height)
    fitted = (max(1, round(source_width * scale)), max(1, round(source_height * scale)))
    canvas = Image.new("RGB", (width, height), BLACK)
    offset = ((width - fitted[0]) // 2, (height - fitted[1]) // 2)
    # Shrink first (OpenCV's area filter: ~1 ms for 1280×720, where Pillow's Lanczos on the full frame took ~14 ms),
    # then convert only the small picture.
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas.paste(_to_rgb_image(cv2.resize(pixels_bgr, fitted, interpolation=interpolation)), offset)
    frame = (offset[0], offset[1], offset[0] + fitted[0] - 1, offset[1] + fitted[1] - 1)
    box = _scaled_box(detection, scale * pixel_scale, offset, frame)
    if box is not None:
        _draw_annotation(canvas, box, frame, detection)
    return canvas


def _to_rgb_image(pixels_bgr: np.ndarray) -> Image.Image:
    import cv2

    if pixels_bgr.ndim == 2:
        rgb = cv2.cvtColor(pixels_bgr, cv2.COLOR_GRAY2RGB)
    elif pixels_bgr.shape[2] == 4:
        rgb = cv2.cvtColor(pixels_bgr, cv2.COLOR_BGRA2RGB)
    else:
        rgb = cv2.cvtColor(pixels_bgr, cv2.COLOR_BGR2RGB)
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError("empty frame")
    return Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))


def _scaled_box(detection: Detection, scale: float, offset: tuple[int, int], frame: tuple[int, int, int, int]):
    """The detection's box in thumbnail pixels, clamped to the fitted frame; None when nothing of it is inside."""
    x0 = offset[0] + detection.bbox_x * scale
    y0 = offset[1] + detection.bbox_y * scale
    x1 = offset[0] + (detection.bbox_x + detection.bbox_width) * scale - 1
    y1 = offset[1] + (detection.bbox_y + detection.bbox_height) * scale - 1
    left, top = max(frame[0], round(x0)), max(frame[1], round(y0))
    right, bottom = min(frame[2], round(x1)), min(frame[3], round(y1))
    if right < left or bottom < top:
        return None
    return left, top, right, bottom


def _draw_annotation(canvas: Image.Image, box: tuple[int, int, int, int], frame, detection: Detection) -> None:
    box_colour, text_colour = class_colours(detection.object_type)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle(box, outline=box_colour, width=BOX_WIDTH)
    label = f"{detection.object_type} {detection.confidence:.2f}"
    font = _label_font()
    ascent, descent = font.getmetrics()
    label_width = round(draw.textlength(label, font=font)) + 2 * LABEL_PADDING
    label_height = ascent + descent + 2 * LABEL_PADDING  # the same for every text, so labels line up
    # Above the box when there is room, else just inside its top edge; never outside the picture.
    left = min(max(box[0], frame[0]), max(frame[0], frame[2] + 1 - label_width))
    top = box[1] - label_height
    if top < frame[1]:
        top = min(box[1], max(frame[1], frame[3] + 1 - label_height))
    draw.rectangle((left, top, left + label_width - 1, top + label_height - 1), fill=box_colour)
    draw.text((left + LABEL_PADDING, top + LABEL_PADDING), label, fill=text_colour, font=font, anchor="la")


_font_cache: dict[int, ImageFont.ImageFont | ImageFont.FreeTypeFont] = {}


def _label_font():
    font = _font_cache.get(LABEL_FONT_SIZE)
    if font is None:
        font = _font_cache[LABEL_FONT_SIZE] = ImageFont.load_default(size=LABEL_FONT_SIZE)
    return font


def _save_jpeg_atomically(image: Image.Image, path: Path) -> None:
    """Write next to the target and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            image.save(stream, format="JPEG", quality=settings.THUMBNAIL_QUALITY, optimize=True)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
