"""``POST /api/cameras/{id}/uploads`` (CONTRACT §2.2, §6.5): HTTP ingest for cameras that push their files."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from cameras.models import Camera
from hsi.api.errors import FieldValidationError
from hsi.api.parsers import PayloadTooLarge
from hsi.api.views import ApiView, get_or_404
from pipeline.ingest.uploads import upload_refuse_disabled, upload_store
from system.services import actor_from_request

# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class UploadParser(MultiPartParser):
    """Multipart whose files always land in a temporary file (Pillow and OpenCV validate a path, §4.2)."""

    def parse(self, stream, media_type=None, parser_context=None):
        django_request = parser_context["request"]._request
        django_request.upload_handlers = [TemporaryFileUploadHandler(django_request)]
        return super().parse(stream, media_type, parser_context)


class UploadView(ApiView):
    parser_classes = [UploadParser]

    @extend_schema(
        summary="Upload a camera image or video",
        operation_id="camera_upload",
        tags=["cameras"],
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
        responses={202: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT},
    )
    def post(self, request, camera_id: str):
        camera = get_or_404(Camera, "Camera", pk=camera_id)
        actor = actor_from_request(request)
        upload_refuse_disabled(camera, actor=actor)
        _refuse_oversized_body(request)
        files = request.FILES.getlist("file")
        if len(files) != 1:
            raise FieldValidationError({"file": "Send exactly one file in the multipart field 'file'"})
        result = upload_store(camera, files[0], actor=actor)
        return Response(result.as_json(), status=202 if result.status == "queued" else 200)


def _refuse_oversized_body(request) -> None:
    """413 before reading a body that cannot hold a file within ``UPLOAD_MAX_BYTES``."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > settings.UPLOAD_MAX_BYTES + MULTIPART_OVERHEAD_BYTES:
        raise PayloadTooLarge(f"File exceeds {settings.UPLOAD_MAX_BYTES} bytes")
