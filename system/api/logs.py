"""``/api/logs`` (CONTRACT §2.13, §10): list with filters, today's stats, detail, and log lines from the web UI."""

from __future__ import annotations

import json

import django_filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from hsi.api.filters import CommaListField, InstantFilter, StrictFilterSet
from hsi.api.pagination import offset_page, parse_page
from hsi.api.schema import page_parameters, page_response, query_parameters
from hsi.api.views import ApiView
from system import log_selectors as selectors
from system.logging import frontend_log_create
from system.models import LogSource

LIST_DEFAULT_LIMIT = 100
LIST_MAX_LIMIT = 1000
SEARCH_MAX = 200
EXTRA_MAX_BYTES = 8 * 1024
LEVEL_CHOICES = [(level, level) for level in selectors.LEVELS]


class LevelListField(CommaListField):
    """Comma-separated log levels, case-insensitive."""

    def to_python(self, value):
        if value in (None, ""):
            return None
        return super().to_python(str(value).upper())


class LevelListFilter(django_filters.Filter):
    field_class = LevelListField

    def filter(self, qs, value):
        return qs.filter(level__in=value) if value else qs


class LevelField(forms.ChoiceField):
    def to_python(self, value):
        return super().to_python(value).strip().upper()


class MinLevelFilter(django_filters.Filter):
    field_class = LevelField

    def filter(self, qs, value):
        return qs.filter(level__in=selectors.levels_at_or_above(value)) if value else qs


class IntegerFilter(django_filters.Filter):
    """A whole number (``NumberFilter`` takes decimals: ``event_id=1.5`` would match nothing instead of 422)."""

    field_class = forms.IntegerField


class LogEntryFilter(StrictFilterSet):
    level = LevelListFilter(choices=selectors.LEVELS)
    min_level = MinLevelFilter(choices=LEVEL_CHOICES)
    component = django_filters.CharFilter(field_name="component", max_length=100)
    camera_id = django_filters.CharFilter(field_name="camera_id", max_length=64)
    event_id = IntegerFilter(field_name="event_id", min_value=0, max_value=2**63 - 1)
    request_id = django_filters.CharFilter(field_name="request_id", max_length=64)
    source = django_filters.ChoiceFilter(field_name="source", choices=LogSource.choices)
    search = django_filters.CharFilter(field_name="message", lookup_expr="icontains", max_length=SEARCH_MAX)
    start_date = InstantFilter(field_name="timestamp", lookup_expr="gte")
    end_date = InstantFilter(field_name="timestamp", lookup_expr="lte", end_of_day=True)


class FrontendLogSerializer(serializers.Serializer):
    level = serializers.CharField()
    component = serializers.CharField(min_length=1, max_length=50)
    message = serializers.CharField(min_length=1, max_length=2000, trim_whitespace=False)
    extra = serializers.DictField(required=False, allow_null=True)
    url = serializers.CharField(max_length=2000, required=False, allow_null=True, allow_blank=True)
    user_agent = serializers.CharField(max_length=500, required=False, allow_null=True, allow_blank=True)

    def validate_level(self, value: str) -> str:
        level = value.strip().upper()
        if level not in selectors.LEVELS:
            raise serializers.ValidationError(f"Must be one of {', '.join(selectors.LEVELS)}")
        return level

    def validate_message(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value

    def validate_extra(self, value: dict | None) -> dict | None:
        if value is not None and len(json.dumps(value, separators=(",", ":")).encode()) > EXTRA_MAX_BYTES:
            raise serializers.ValidationError(f"Must be at most {EXTRA_MAX_BYTES} bytes when serialised")
        return value


_FRONTEND_CREATED = inline_serializer(
    "FrontendLogCreated", {"id": serializers.IntegerField(), "status": serializers.CharField(default="created")}
)
_FRONTEND_IGNORED = inline_serializer(
    "FrontendLogIgnored",
    {"id": serializers.IntegerField(allow_null=True, default=None), "status": serializers.CharField(default="ignored")},
)


class LogListView(ApiView):
    @extend_schema(
        summary="List application log entries",
        operation_id="logs_list",
        tags=["logs"],
        parameters=[
            *query_parameters(LogEntryFilter),
            *page_parameters(default=LIST_DEFAULT_LIMIT, maximum=LIST_MAX_LIMIT),
        ],
        responses=page_response(),
    )
    def get(self, request):
        entries = LogEntryFilter(request.query_params, queryset=selectors.log_entries()).qs
        page = parse_page(request, default=LIST_DEFAULT_LIMIT, maximum=LIST_MAX_LIMIT)
        return Response(offset_page(entries, page, selectors.log_entry_json))


class LogStatsView(ApiView):
    @extend_schema(
        summary="Today's log counts (local day)",
        operation_id="logs_stats",
        tags=["logs"],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        return Response(selectors.log_stats())


class LogDetailView(ApiView):
    @extend_schema(
        summary="Get a log entry", operation_id="logs_retrieve", tags=["logs"], responses=OpenApiTypes.OBJECT
    )
    def get(self, request, log_id: str):
        return Response(selectors.log_entry_detail(int(log_id)))


class FrontendLogView(ApiView):
    @extend_schema(
        summary="Store a log line from the web UI",
        operation_id="logs_frontend_create",
        tags=["logs"],
        request=FrontendLogSerializer,
        responses={
            201: OpenApiResponse(_FRONTEND_CREATED, description='Stored: `{"id": n, "status": "created"}`'),
            202: OpenApiResponse(
                _FRONTEND_IGNORED,
                description="Accepted but not stored, the level being below `LOG_DB_MIN_LEVEL` (CONTRACT §10): "
                '`{"id": null, "status": "ignored"}`',
            ),
        },
    )
    def post(self, request):
        serializer = FrontendLogSerializer(data=self.body())
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        user_agent = values.get("user_agent") or request.META.get("HTTP_USER_AGENT") or None
        entry = frontend_log_create(
            level=values["level"],
            component=values["component"],
            message=values["message"],
            extra=values.get("extra"),
            url=values.get("url") or None,
            user_agent=user_agent,
            request_id=getattr(request._request, "request_id", None),
        )
        if entry is None:  # below LOG_DB_MIN_LEVEL (CONTRACT §10): accepted, not stored
            return Response({"id": None, "status": "ignored"}, status=202)
        return Response({"id": entry.id, "status": "created"}, status=201)
