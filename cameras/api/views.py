"""``/api/cameras`` and zones (CONTRACT §2.2 camera CRUD, §2.3): parse, call one service or selector, render."""

from __future__ import annotations

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from cameras import selectors, services
from cameras.api.serializers import (
    CameraCreateSerializer,
    CameraUpdateSerializer,
    ZoneCreateSerializer,
    ZoneUpdateSerializer,
    camera_json,
    zone_json,
)
from cameras.models import Camera, CameraStatus, ZoneType
from hsi.api.filters import ListFilter, StrictBooleanFilter, StrictFilterSet
from hsi.api.pagination import envelope, offset_slice, parse_page
from hsi.api.schema import page_parameters, page_response, query_parameters
from hsi.api.views import ApiView, get_or_404
from system.services import actor_from_request

LIST_DEFAULT_LIMIT = 100
LIST_MAX_LIMIT = 1000


class CameraFilter(StrictFilterSet):
    date_range = None
    status = ListFilter(field_name="status", choices=CameraStatus.choices)
    enabled = StrictBooleanFilter(field_name="enabled")
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", max_length=100)


class CameraZoneFilter(StrictFilterSet):
    date_range = None
    enabled = StrictBooleanFilter(field_name="enabled")


class ZoneFilter(CameraZoneFilter):
    camera_id = ListFilter(field_name="camera_id", max_length=64)
    zone_type = ListFilter(field_name="zone_type", choices=ZoneType.choices)


_PAGE_PARAMETERS = page_parameters(default=LIST_DEFAULT_LIMIT, maximum=LIST_MAX_LIMIT)


def _page_response(request, queryset, render) -> Response:
    page = parse_page(request, default=LIST_DEFAULT_LIMIT, maximum=LIST_MAX_LIMIT)
    rows, has_more = offset_slice(queryset, page)
    total = queryset.count()
    return Response(envelope([render(row) for row in rows], total=total, page=page, has_more=has_more))


def _validated(serializer_class, data: dict, *, partial: bool = False) -> dict:
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class CameraListView(ApiView):
    """``/api/cameras``: list (filters ``status``, ``enabled``, ``q``) and create."""

    @extend_schema(
        summary="List cameras",
        operation_id="camera_list",
        tags=["cameras"],
        parameters=[*query_parameters(CameraFilter), *_PAGE_PARAMETERS],
        responses=page_response(),
    )
    def get(self, request):
        cameras = CameraFilter(request.query_params, queryset=selectors.camera_list()).qs
        return _page_response(request, cameras, camera_json)

    @extend_schema(
        summary="Create a camera",
        operation_id="camera_create",
        tags=["cameras"],
        request=CameraCreateSerializer,
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request):
        data = _validated(CameraCreateSerializer, self.body())
        camera = services.camera_create(data=data, actor=actor_from_request(request))
        return Response(camera_json(camera), status=201, headers={"Location": f"/api/cameras/{camera.id}"})


class CameraDetailView(ApiView):
    """``/api/cameras/{camera_id}``: read, partial update (PATCH and PUT), hard delete."""

    @extend_schema(
        summary="Get a camera", operation_id="camera_retrieve", tags=["cameras"], responses=OpenApiTypes.OBJECT
    )
    def get(self, request, camera_id: str):
        return Response(camera_json(get_or_404(Camera, "Camera", pk=camera_id)))

    @extend_schema(
        summary="Update a camera",
        operation_id="camera_update",
        tags=["cameras"],
        request=CameraUpdateSerializer,
        responses=OpenApiTypes.OBJECT,
    )
    def patch(self, request, camera_id: str):
        body = self.body()
        get_or_404(Camera, "Camera", pk=camera_id)
        data = _validated(CameraUpdateSerializer, body, partial=True)
        camera = services.camera_update(camera_id, data=data, actor=actor_from_request(request))
        return Response(camera_json(camera))

    @extend_schema(
        summary="Update a camera (partial, like PATCH)",
        operation_id="camera_replace",
        tags=["cameras"],
        request=CameraUpdateSerializer,
        responses=OpenApiTypes.OBJECT,
    )
    def put(self, request, camera_id: str):
        return self.patch(request, camera_id)

    @extend_schema(
        summary="Delete a camera and everything it recorded",
        operation_id="camera_delete",
        tags=["cameras"],
        responses={204: None},
    )
    def delete(self, request, camera_id: str):
        services.camera_delete(camera_id, actor=actor_from_request(request))
        return Response(status=204)


class CameraZoneListView(ApiView):
    """``/api/cameras/{camera_id}/zones``: the camera's zones (filter ``enabled``) and zone creation."""

    @extend_schema(
        summary="List a camera's zones",
        operation_id="camera_zone_list",
        tags=["zones"],
        parameters=[*query_parameters(CameraZoneFilter), *_PAGE_PARAMETERS],
        responses=page_response(),
    )
    def get(self, request, camera_id: str):
        get_or_404(Camera, "Camera", pk=camera_id)
        zones = CameraZoneFilter(request.query_params, queryset=selectors.zone_list_for_camera(camera_id)).qs
        return _page_response(request, zones, zone_json)

    @extend_schema(
        summary="Create a zone",
        operation_id="camera_zone_create",
        tags=["zones"],
        request=ZoneCreateSerializer,
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request, camera_id: str):
        body = self.body()
        get_or_404(Camera, "Camera", pk=camera_id)
        data = _validated(ZoneCreateSerializer, body)
        zone = services.zone_create(camera_id, data=data, actor=actor_from_request(request))
        return Response(zone_json(zone), status=201, headers={"Location": f"/api/cameras/{camera_id}/zones/{zone.id}"})


class CameraZoneDetailView(ApiView):
    """``/api/cameras/{camera_id}/zones/{zone_id}``: one zone of this camera."""

    @extend_schema(
        summary="Get a zone", operation_id="camera_zone_retrieve", tags=["zones"], responses=OpenApiTypes.OBJECT
    )
    def get(self, request, camera_id: str, zone_id: str):
        get_or_404(Camera, "Camera", pk=camera_id)
        return Response(zone_json(get_or_404(selectors.zone_list_for_camera(camera_id), "Zone", pk=zone_id)))

    @extend_schema(
        summary="Update a zone",
        operation_id="camera_zone_update",
        tags=["zones"],
        request=ZoneUpdateSerializer,
        responses=OpenApiTypes.OBJECT,
    )
    def patch(self, request, camera_id: str, zone_id: str):
        body = self.body()
        get_or_404(Camera, "Camera", pk=camera_id)
        get_or_404(selectors.zone_list_for_camera(camera_id), "Zone", pk=zone_id)
        data = _validated(ZoneUpdateSerializer, body, partial=True)
        zone = services.zone_update(camera_id, zone_id, data=data, actor=actor_from_request(request))
        return Response(zone_json(zone))

    @extend_schema(
        summary="Update a zone (partial, like PATCH)",
        operation_id="camera_zone_replace",
        tags=["zones"],
        request=ZoneUpdateSerializer,
        responses=OpenApiTypes.OBJECT,
    )
    def put(self, request, camera_id: str, zone_id: str):
        return self.patch(request, camera_id, zone_id)

    @extend_schema(summary="Delete a zone", operation_id="camera_zone_delete", tags=["zones"], responses={204: None})
    def delete(self, request, camera_id: str, zone_id: str):
        services.zone_delete(camera_id, zone_id, actor=actor_from_request(request))
        return Response(status=204)


class ZoneListView(ApiView):
    """``/api/zones``: read-only list across cameras (filters ``camera_id``, ``enabled``, ``zone_type``)."""

    @extend_schema(
        summary="List zones of every camera",
        operation_id="zone_list",
        tags=["zones"],
        parameters=[*query_parameters(ZoneFilter), *_PAGE_PARAMETERS],
        responses=page_response(),
    )
    def get(self, request):
        zones = ZoneFilter(request.query_params, queryset=selectors.zone_list()).qs
        return _page_response(request, zones, zone_json)


class ZoneDetailView(ApiView):
    """``/api/zones/{zone_id}``: read-only."""

    @extend_schema(summary="Get a zone", operation_id="zone_retrieve", tags=["zones"], responses=OpenApiTypes.OBJECT)
    def get(self, request, zone_id: str):
        return Response(zone_json(get_or_404(selectors.zone_list(), "Zone", pk=zone_id)))
