"""Detection media (CONTRACT §2.4 ``/api/detections/{id}/thumbnail|image|video``, §2.10
``/api/media/detections/{id}``). Thin: look the detection up, pick the file or frame, respond."""

from __future__ import annotations

from django import forms
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema

from hsi.api.errors import FieldValidationError
from hsi.api.filters import parse_bool
from hsi.api.schema import file_responses
from hsi.api.views import ApiView
from media_serving import paths, services
from media_serving.ranges import CACHE_CONTROL, file_response

_ANNOTATE = OpenApiParameter("annotate", bool, description="Draw the bounding box on a JPEG frame")
_FULL = OpenApiParameter("full", bool, description="The source image instead of the thumbnail")


def _flag(request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return False
    try:
        return parse_bool(value)
    except forms.ValidationError as error:
        raise FieldValidationError({name: error.messages[0]}) from None


def _jpeg(body: bytes) -> HttpResponse:
    response = HttpResponse(body, content_type="image/jpeg")
    response["Cache-Control"] = CACHE_CONTROL
    return response


def _thumbnail(request, detection_id: str) -> HttpResponse:
    detection = services.detection_get(int(detection_id))
    return file_response(request, services.detection_thumbnail_file(detection), "image/jpeg")


def _image(request, detection_id: str, *, annotate: bool) -> HttpResponse:
    detection = services.detection_get(int(detection_id))
    source = services.detection_source_file(detection)
    content_type = paths.CONTENT_TYPES.get(source.suffix.lower())
    if annotate or detection.media_type == "video" or content_type is None or content_type.startswith("video/"):
        return _jpeg(services.detection_frame_jpeg(detection, annotate=annotate))
    return file_response(request, source, content_type)


class DetectionThumbnailView(ApiView):
    @extend_schema(
        summary="A detection's thumbnail (generated when missing)",
        operation_id="detection_thumbnail",
        tags=["detections"],
        responses=file_responses("image/jpeg", "The thumbnail (JPEG)"),
    )
    def get(self, request, detection_id: str):
        return _thumbnail(request, detection_id)


class DetectionImageView(ApiView):
    @extend_schema(
        summary="A detection's source image (a JPEG frame for videos)",
        operation_id="detection_image",
        tags=["detections"],
        parameters=[_ANNOTATE],
        responses=file_responses("image/*", "The source image, or a JPEG frame (videos, ?annotate=true)"),
    )
    def get(self, request, detection_id: str):
        return _image(request, detection_id, annotate=_flag(request, "annotate"))


class DetectionVideoView(ApiView):
    @extend_schema(
        summary="A detection's video, with byte ranges",
        operation_id="detection_video",
        tags=["detections"],
        responses=file_responses("video/*", "The source video"),
    )
    def get(self, request, detection_id: str):
        detection = services.detection_get(int(detection_id))
        path, content_type = services.detection_video_file(detection)
        return file_response(request, path, content_type)


class DetectionMediaView(ApiView):
    @extend_schema(
        summary="A detection's thumbnail, or its source with ?full=true",
        operation_id="media_detection",
        tags=["media"],
        parameters=[_FULL],
        responses=file_responses("image/*", "The thumbnail, or the source image with ?full=true"),
    )
    def get(self, request, detection_id: str):
        if _flag(request, "full"):
            return _image(request, detection_id, annotate=False)
        return _thumbnail(request, detection_id)
