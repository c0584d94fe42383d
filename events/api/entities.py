"""``/api/entities`` (CONTRACT §2.9): list, stats, detail, the entity's detections, PATCH and DELETE. Thin: parse,
call one selector or service, render."""

from __future__ import annotations

import uuid

from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from cameras.api.serializers import StrictCharField, StrictChoiceField
from events import entity_selectors, selectors, services
from events.models import EntityType, TrustStatus
from hsi.api.errors import NotFound
from hsi.api.filters import CommaListField, InstantField
from hsi.api.json_sql import json_response
from hsi.api.pagination import parse_page
from hsi.api.views import ApiView
from system.services import actor_from_request

from .serializers import Param, QueryFilters

LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 100


class EntityListFilters(QueryFilters):
    date_range = ("since", "until")
    params = {
        "entity_type": Param(CommaListField(required=False, choices=EntityType.values, lower=True), "entity_type__in"),
        "trust_status": Param(
            CommaListField(required=False, choices=TrustStatus.values, lower=True), "trust_status__in"
        ),
        "camera_id": Param(CommaListField(required=False, max_length=64), entity_selectors.seen_on_cameras),
        "since": Param(InstantField(required=False), "last_seen_at__gte"),
        "until": Param(InstantField(required=False, end_of_day=True), "last_seen_at__lte"),
        "min_detections": Param(forms.IntegerField(required=False, min_value=1), "detection_count__gte"),
    }


class EntityStatsFilters(QueryFilters):
    date_range = ("since", "until")
    params = {
        "since": Param(InstantField(required=False), "last_seen_at__gte"),
        "until": Param(InstantField(required=False, end_of_day=True), "last_seen_at__lte"),
    }


class EntityPatchSerializer(serializers.Serializer):
    trust_status = StrictChoiceField(choices=TrustStatus.values, required=False)
    label = StrictCharField(max_length=100, allow_blank=True, allow_null=True, required=False)
    notes = StrictCharField(
        max_length=2000, allow_blank=True, allow_null=True, allow_control=True, trim_whitespace=False, required=False
    )

    def validate(self, attrs):
        # label and notes are never null in the database: null clears them (CONTRACT §0.4)
        return {name: "" if value is None else value for name, value in attrs.items()}


def _entity_id(raw: str) -> uuid.UUID:
    return uuid.UUID(raw)  # the route only matches the UUID shape


class EntityListView(ApiView):
    @extend_schema(
        summary="List entities", operation_id="entities_list", tags=["entities"], responses=OpenApiTypes.OBJECT
    )
    def get(self, request):
        filters = EntityListFilters(request.query_params)
        page = parse_page(request, default=LIST_LIMIT_DEFAULT, maximum=LIST_LIMIT_MAX)
        return Response(entity_selectors.entity_page(page, refine=filters.apply))


class EntityStatsView(ApiView):
    @extend_schema(
        summary="Entity statistics", operation_id="entities_stats", tags=["entities"], responses=OpenApiTypes.OBJECT
    )
    def get(self, request):
        queryset = EntityStatsFilters(request.query_params).apply(entity_selectors.all_entities())
        return Response(entity_selectors.entity_stats(queryset))


class EntityDetailView(ApiView):
    @extend_schema(
        summary="Get an entity with its recent detections",
        operation_id="entities_retrieve",
        tags=["entities"],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, entity_id: str):
        return Response(entity_selectors.entity_detail(_entity_id(entity_id)))

    @extend_schema(
        summary="Set the trust status, label or notes of an entity",
        operation_id="entities_partial_update",
        tags=["entities"],
        request=EntityPatchSerializer,
        responses=OpenApiTypes.OBJECT,
    )
    def patch(self, request, entity_id: str):
        pk = _entity_id(entity_id)
        body = self.body()
        if not entity_selectors.entity_exists(pk):
            raise NotFound(f"Entity {pk} not found")
        serializer = EntityPatchSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        services.entity_update(pk, changes=dict(serializer.validated_data), actor=actor_from_request(request))
        return Response(entity_selectors.entity_detail(pk))

    @extend_schema(
        summary="Delete an entity (its detections are kept)",
        operation_id="entities_destroy",
        tags=["entities"],
        responses={204: None},
    )
    def delete(self, request, entity_id: str):
        services.entity_delete(_entity_id(entity_id), actor=actor_from_request(request))
        return Response(status=204)


class EntityDetectionListView(ApiView):
    @extend_schema(
        summary="List the detections of an entity",
        operation_id="entities_detections_list",
        tags=["entities"],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, entity_id: str):
        pk = _entity_id(entity_id)
        page = parse_page(request, default=LIST_LIMIT_DEFAULT, maximum=LIST_LIMIT_MAX)
        if not entity_selectors.entity_exists(pk):
            raise NotFound(f"Entity {pk} not found")
        return json_response(selectors.entity_detection_page(pk, page))
