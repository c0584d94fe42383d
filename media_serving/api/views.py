"""Media routes under ``/api/media`` (CONTRACT §2.10): camera files, thumbnails and detection images.

Every path is checked with the §6.4 rules (``media_serving.paths``) before any file is touched; bodies and
byte ranges come from ``media_serving.ranges``.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from drf_spectacular.utils import extend_schema

from cameras.models import Camera
from hsi.api.errors import NotFound
from hsi.api.views import ApiView
from media_serving import paths
from media_serving.ranges import file_response
from media_serving.snapshots import camera_snapshot_file
from system.services import actor_from_request, audit_record_throttled

SNAPSHOT_CACHE_CONTROL = "private, max-age=10"
UNSUPPORTED_MEDIA_PATH = "Unsupported media path (expected cameras/, thumbnails/ or detections/)"


class _PathRulesView(ApiView):
    """A route under the §6.4 rules: each 403 writes ``media_access_denied`` (CONTRACT §6.8), at most one row per
    client IP per minute."""

    def handle_exception(self, exc):
        if isinstance(exc, paths.MediaPathError) and exc.status_code == 403:
            _audit_access_denied(self.request, exc.code)
        return super().handle_exception(exc)


def _audit_access_denied(request, reason: str) -> None:
    actor = actor_from_request(request)
    audit_record_throttled(
        actor,
        "media_access_denied",
        "media",
        key=actor.ip_address or "unknown",
        details={"path": request.path, "reason": reason},
        status="failure",
    )


class CameraMediaView(_PathRulesView):
    @extend_schema(summary="A file under a camera's folder", tags=["media"])
    def get(self, request, camera_id: str, path: str):
        paths.check_identifier(camera_id, path=path)
        extension = paths.check_relative_path(path, allowed_extensions=paths.CAMERA_EXTENSIONS)
        camera = Camera.objects.filter(pk=camera_id).first()
        if camera is None:
            raise paths.MediaPathError(f"Camera {camera_id} not found", code="not_found", status_code=404, path=path)
        target = paths.resolve_media_file(camera.resolved_folder, path, root=Path(settings.FOSCAM_BASE_PATH))
        return file_response(request, target, paths.CONTENT_TYPES[extension])


class ThumbnailMediaView(_PathRulesView):
    @extend_schema(summary="A file of the thumbnails folder", tags=["media"])
    def get(self, request, filename: str):
        extension = paths.check_relative_path(filename, allowed_extensions=paths.THUMBNAIL_EXTENSIONS)
        if "/" in filename:  # a single path segment only
            raise paths.MediaPathError("File not found", code="not_found", status_code=404, path=filename)
        target = paths.resolve_media_file(Path(settings.HSI_DATA_DIR) / "thumbnails", filename)
        return file_response(request, target, paths.CONTENT_TYPES[extension])


class UnsupportedMediaView(ApiView):
    @extend_schema(summary="Any other media path (404)", tags=["media"])
    def get(self, request, other: str = ""):
        raise NotFound(UNSUPPORTED_MEDIA_PATH)


class CameraSnapshotView(ApiView):
    @extend_schema(summary="The newest picture of a camera", tags=["cameras"])
    def get(self, request, camera_id: str):
        target, content_type = camera_snapshot_file(camera_id)
        response = file_response(request, target, content_type)
        response["Cache-Control"] = SNAPSHOT_CACHE_CONTROL
        return response
