"""Camera snapshots (CONTRACT §2.2 ``GET /api/cameras/{camera_id}/snapshot``).

The newest image by mtime under the camera's resolved folder (recursive, hidden entries and links leading out
of the folder skipped). A folder holding only videos gives a JPEG frame of its newest video, at 1 s (frame 0
for shorter clips), cached at ``$HSI_DATA_DIR/snapshots/<camera_id>.jpg`` for 60 s.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from django.conf import settings

from cameras.models import Camera
from hsi.api.errors import ApiError, NotFound
from media_serving.paths import CONTENT_TYPES, is_inside
from media_serving.thumbnails import read_video_frame

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})
VIDEO_EXTENSIONS = frozenset(ext for ext, kind in CONTENT_TYPES.items() if kind.startswith("video/"))
VIDEO_SNAPSHOT_SECONDS = 1.0
VIDEO_SNAPSHOT_TTL_SECONDS = 60


def camera_snapshot_file(camera_id: str) -> tuple[Path, str]:
    """The file to answer with and its content type; 404 when there is nothing to show."""
    camera = Camera.objects.filter(pk=camera_id).first()
    if camera is None:
        raise NotFound(f"Camera {camera_id} not found")
    folder = os.path.realpath(camera.resolved_folder)
    if not is_inside(folder, os.path.realpath(settings.FOSCAM_BASE_PATH)) or not os.path.isdir(folder):
        raise NotFound(f"No snapshot available for camera {camera_id}")
    image, video = _newest_media(folder)
    if image is not None:
        return image, CONTENT_TYPES[image.suffix.lower()]
    if video is not None:
        return _video_snapshot(camera.id, video), "image/jpeg"
    raise NotFound(f"No snapshot available for camera {camera_id}")


def _newest_media(folder: str) -> tuple[Path | None, Path | None]:
    newest: dict[str, tuple[float, str]] = {}
    for directory, subdirectories, files in os.walk(folder):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        for name in files:
            extension = os.path.splitext(name)[1].lower()
            kind = "image" if extension in IMAGE_EXTENSIONS else "video" if extension in VIDEO_EXTENSIONS else None
            if kind is None or name.startswith("."):
                continue
            path = os.path.realpath(os.path.join(directory, name))
            if not is_inside(path, folder) or not os.path.isfile(path):
                continue
            mtime = os.stat(path).st_mtime
            if kind not in newest or mtime > newest[kind][0]:
                newest[kind] = (mtime, path)
    image, video = newest.get("image"), newest.get("video")
    return (Path(image[1]) if image else None), (Path(video[1]) if video else None)


def _video_snapshot(camera_id: str, video: Path) -> Path:
    cached = Path(settings.HSI_DATA_DIR) / "snapshots" / f"{camera_id}.jpg"
    if cached.is_file() and time.time() - cached.stat().st_mtime < VIDEO_SNAPSHOT_TTL_SECONDS:
        return cached
    import cv2

    seconds = VIDEO_SNAPSHOT_SECONDS if _duration_seconds(video) >= VIDEO_SNAPSHOT_SECONDS else 0.0
    frame = read_video_frame(str(video), seconds)
    if frame is None:
        raise NotFound(f"No snapshot available for camera {camera_id}")
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(settings.THUMBNAIL_QUALITY)])
    if not ok:
        raise ApiError("Snapshot encoding failed", code="internal_error", status_code=500)
    cached.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=cached.parent, suffix=".part")
    with os.fdopen(handle, "wb") as out:
        out.write(encoded.tobytes())
    os.replace(temporary, cached)
    now = time.time()
    os.utime(cached, (now, now))  # the cache age follows the (possibly travelled) clock of the process
    return cached


def _duration_seconds(video: Path) -> float:
    import cv2

    capture = cv2.VideoCapture(str(video))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        frames = capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
        return frames / fps if fps > 0 else 0.0
    finally:
        capture.release()
