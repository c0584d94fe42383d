"""Detection media (CONTRACT §2.4 thumbnail/image/video, §2.10 ``/api/media/detections``): the files and frame
JPEGs the media views serve."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from events.models import Detection
from hsi.api.errors import ApiError, BadRequest, NotFound
from media_serving import paths
from media_serving.thumbnails import class_colours, load_source_frame, thumbnail_generate, thumbnail_path_for

BOX_WIDTH = 3


def detection_get(detection_id: int) -> Detection:
    detection = Detection.objects.filter(pk=detection_id).first()
    if detection is None:
        raise NotFound(f"Detection {detection_id} not found")
    return detection


def detection_thumbnail_file(detection: Detection) -> Path:
    """The stored thumbnail, generated (and recorded) when missing; 404 without a source, 500 when it fails."""
    for candidate in (detection.thumbnail_path, str(thumbnail_path_for(detection.id))):
        if candidate and os.path.isfile(candidate):
            return Path(candidate)
    if not os.path.isfile(detection.file_path):
        raise NotFound(f"Thumbnail of detection {detection.id} not found")
    generated = thumbnail_generate(detection)
    if generated is None:
        raise ApiError("Thumbnail generation failed", code="internal_error", status_code=500)
    return Path(generated)


def detection_source_file(detection: Detection) -> Path:
    if not os.path.isfile(detection.file_path):
        raise NotFound(f"Source file of detection {detection.id} not found")
    return Path(detection.file_path)


def detection_video_file(detection: Detection) -> tuple[Path, str]:
    """The detection's video and its content type; 400 when the detection comes from an image."""
    if detection.media_type != "video":
        raise BadRequest("Detection is not a video")
    path = detection_source_file(detection)
    return path, paths.CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")


def detection_frame_jpeg(detection: Detection, *, annotate: bool) -> bytes:
    """The detection's frame as a full-resolution JPEG, with its box drawn when ``annotate``."""
    import cv2

    detection_source_file(detection)
    frame = load_source_frame(detection)
    if frame is None:
        raise NotFound(f"Source frame of detection {detection.id} could not be read")
    if annotate:
        red, green, blue = class_colours(detection.object_type)[0]
        top_left = (int(detection.bbox_x), int(detection.bbox_y))
        bottom_right = (
            int(detection.bbox_x + detection.bbox_width) - 1,
            int(detection.bbox_y + detection.bbox_height) - 1,
        )
        cv2.rectangle(frame, top_left, bottom_right, (blue, green, red), BOX_WIDTH)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(settings.THUMBNAIL_QUALITY)])
    if not ok:
        raise ApiError("Frame encoding failed", code="internal_error", status_code=500)
    return encoded.tobytes()
