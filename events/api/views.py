"""Detection and event endpoints (CONTRACT §2.4 list/stats/detail, §2.5). Thin: parse, call, render."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from events import selectors, services
from hsi.api.json_sql import json_response
from hsi.api.pagination import parse_page
from hsi.api.schema import page_parameters, page_response, query_parameters
from hsi.api.views import ApiView
from system.services import actor_from_request

from .serializers import (
    DetectionListFilters,
    DetectionStatsFilters,
    EventListFilters,
    EventPatchSerializer,
    EventStatsFilters,
)

LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 100
EVENT_DETECTIONS_LIMIT_MAX = 1000


class EventListView(ApiView):
    @extend_schema(
        summary="List events",
        operation_id="event_list",
        tags=["events"],
        parameters=[
            *query_parameters(EventListFilters.params),
            *page_parameters(default=LIST_LIMIT_DEFAULT, maximum=LIST_LIMIT_MAX, cursor=True),
        ],
        responses=page_response(),
    )
    def get(self, request):
        filters = EventListFilters(request.query_params)
        page = parse_page(request, default=LIST_LIMIT_DEFAULT, maximum=LIST_LIMIT_MAX, cursor=True)
        return json_response(selectors.event_page(page, refine=filters.apply, count_scopes=filters.count_scopes))


class EventStatsView(ApiView):
    @extend_schema(
        summary="Event statistics",
        operation_id="event_stats",
        tags=["events"],
        parameters=query_parameters(EventStatsFilters.params),
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        queryset = EventStatsFilters(request.query_params).apply(selectors.live_events())
        return Response(selectors.event_stats(queryset))


class DeletedEventListView(ApiView):
    @extend_schema(
        summary="List soft-deleted events (the trash)",
        operation_id="event_trash_list",
        tags=["events"],
        parameters=page_parameters(default=LIST_LIMIT_DEFAULT, maximum=LIST_LIMIT_MAX, cursor=True),
        responses=page_response(),
    )
    def get(self, request):
        page = parse_page(request, default=LIST_LIMIT_DEFAULT, maximum=LIST_LIMIT_MAX, cursor=True)
        return json_response(selectors.deleted_event_page(page))


class EventDetailView(ApiView):
    @extend_schema(
        summary="Get an event", operation_id="event_retrieve", tags=["events"], responses=OpenApiTypes.OBJECT
    )
    def get(self, request, event_id: str):
        return Response(selectors.event_detail(int(event_id)))

    @extend_schema(
        summary="Update review state, notes, flag or snooze of an event",
        operation_id="event_update",
        tags=["events"],
        request=EventPatchSerializer,
        responses=OpenApiTypes.OBJECT,
    )
    def patch(self, request, event_id: str):
        serializer = EventPatchSerializer(data=self.body())
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        expected_version = changes.pop("version", None)
        services.event_update(
            int(event_id), changes=changes, actor=actor_from_request(request), expected_version=expected_version
        )
        return Response(selectors.event_detail(int(event_id)))

    @extend_schema(summary="Soft-delete an event", operation_id="event_delete", tags=["events"], responses={204: None})
    def delete(self, request, event_id: str):
        services.event_soft_delete(int(event_id), actor=actor_from_request(request))
        return Response(status=204)


class EventRestoreView(ApiView):
    @extend_schema(
        summary="Restore a soft-deleted event",
        operation_id="event_restore",
        tags=["events"],
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request, event_id: str):
        services.event_restore(int(event_id), actor=actor_from_request(request))
        return Response(selectors.event_detail(int(event_id)))


class EventDetectionListView(ApiView):
    @extend_schema(
        summary="List the detections of an event",
        operation_id="event_detection_list",
        tags=["events"],
        parameters=page_parameters(default=LIST_LIMIT_DEFAULT, maximum=EVENT_DETECTIONS_LIMIT_MAX),
        responses=page_response(),
    )
    def get(self, request, event_id: str):
        page = parse_page(request, default=LIST_LIMIT_DEFAULT, maximum=EVENT_DETECTIONS_LIMIT_MAX)
        return Response(selectors.event_detection_page(int(event_id), page))


class DetectionListView(ApiView):
    @extend_schema(
        summary="List detections",
        operation_id="detection_list",
        tags=["detections"],
        parameters=[
            *query_parameters(DetectionListFilters.params),
            *page_parameters(default=LIST_LIMIT_DEFAULT, maximum=LIST_LIMIT_MAX, cursor=True),
        ],
        responses=page_response(),
    )
    def get(self, request):
        filters = DetectionListFilters(request.query_params)
        page = parse_page(request, default=LIST_LIMIT_DEFAULT, maximum=LIST_LIMIT_MAX, cursor=True)
        return json_response(selectors.detection_page(page, refine=filters.apply, count_scopes=filters.count_scopes))


class DetectionStatsView(ApiView):
    @extend_schema(
        summary="Detection statistics",
        operation_id="detection_stats",
        tags=["detections"],
        parameters=query_parameters(DetectionStatsFilters.params),
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        queryset = DetectionStatsFilters(request.query_params).apply(selectors.all_detections())
        return Response(selectors.detection_stats(queryset))


class DetectionDetailView(ApiView):
    @extend_schema(
        summary="Get a detection", operation_id="detection_retrieve", tags=["detections"], responses=OpenApiTypes.OBJECT
    )
    def get(self, request, detection_id: str):
        return Response(selectors.detection_detail(int(detection_id)))
