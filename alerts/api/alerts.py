"""``/api/alerts`` (CONTRACT §2.7, §5.10): alert list, stats, detail with deliveries, acknowledge and dismiss."""

from __future__ import annotations

import django_filters
from django import forms
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from alerts import selectors
from alerts.models import AlertKind, AlertStatus
from alerts.services import alerts as services
from cameras.api.serializers import StrictCharField, StrictIntegerField
from events.models import RiskLevel
from hsi.api.filters import InstantFilter, ListFilter, StrictFilterSet
from hsi.api.pagination import parse_page
from hsi.api.schema import page_parameters, page_response, query_parameters
from hsi.api.views import ApiView
from system.services import actor_from_request

LIST_DEFAULT_LIMIT = 50
LIST_MAX_LIMIT = 100


class IntegerFilter(django_filters.Filter):
    field_class = forms.IntegerField


class AlertFilter(StrictFilterSet):
    status = ListFilter(field_name="status", choices=AlertStatus.choices, lower=True)
    severity = ListFilter(field_name="severity", choices=RiskLevel.choices, lower=True)
    kind = django_filters.ChoiceFilter(field_name="kind", choices=AlertKind.choices)
    camera_id = ListFilter(field_name="camera_id", max_length=64)
    rule_id = django_filters.UUIDFilter(field_name="rule_id")
    event_id = IntegerFilter(field_name="event_id", min_value=1, max_value=2**63 - 1)
    start_date = InstantFilter(field_name="created_at", lookup_expr="gte")
    end_date = InstantFilter(field_name="created_at", lookup_expr="lte", end_of_day=True)


class AlertActionSerializer(serializers.Serializer):
    version = StrictIntegerField(minimum=1, maximum=2**31 - 1, required=False)
    note = StrictCharField(
        max_length=services.NOTE_MAX_LENGTH,
        allow_blank=True,
        allow_null=True,
        allow_control=True,
        trim_whitespace=False,
        required=False,
    )


class AlertListView(ApiView):
    @extend_schema(
        summary="List alerts",
        operation_id="alert_list",
        tags=["alerts"],
        parameters=[
            *query_parameters(AlertFilter),
            *page_parameters(default=LIST_DEFAULT_LIMIT, maximum=LIST_MAX_LIMIT),
        ],
        responses=page_response(),
    )
    def get(self, request):
        alerts = AlertFilter(request.query_params, queryset=selectors.alert_list()).qs
        page = parse_page(request, default=LIST_DEFAULT_LIMIT, maximum=LIST_MAX_LIMIT)
        return Response(selectors.alert_page(alerts, page))


class AlertStatsView(ApiView):
    @extend_schema(summary="Alert counts", operation_id="alert_stats", tags=["alerts"], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response(selectors.alert_stats(timezone.now()))


class AlertDetailView(ApiView):
    @extend_schema(
        summary="Get an alert with its deliveries",
        operation_id="alert_retrieve",
        tags=["alerts"],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, alert_id: str):
        return Response(selectors.alert_detail(alert_id))


class _AlertActionView(ApiView):
    transition = staticmethod(services.alert_acknowledge)

    def post(self, request, alert_id: str):
        serializer = AlertActionSerializer(data=self.body())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        alert = type(self).transition(
            alert_id,
            actor=actor_from_request(request),
            note=data.get("note"),
            expected_version=data.get("version"),
        )
        return Response(selectors.alert_json(alert))


class AlertAcknowledgeView(_AlertActionView):
    transition = staticmethod(services.alert_acknowledge)

    @extend_schema(
        summary="Acknowledge an alert",
        operation_id="alert_acknowledge",
        tags=["alerts"],
        request=AlertActionSerializer,
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request, alert_id: str):
        return super().post(request, alert_id)


class AlertDismissView(_AlertActionView):
    transition = staticmethod(services.alert_dismiss)

    @extend_schema(
        summary="Dismiss an alert",
        operation_id="alert_dismiss",
        tags=["alerts"],
        request=AlertActionSerializer,
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request, alert_id: str):
        return super().post(request, alert_id)
