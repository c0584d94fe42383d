"""``/api/audit`` (CONTRACT §2.14): the audit trail of §6.8 — list with filters, stats, detail. Read-only."""

from __future__ import annotations

import django_filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from hsi.api.filters import InstantField, InstantFilter, ListFilter, StrictFilterSet, check_date_range, validate_query
from hsi.api.pagination import offset_page, parse_page
from hsi.api.views import ApiView
from system import log_selectors as selectors
from system.models import AuditStatus

LIST_DEFAULT_LIMIT = 100
LIST_MAX_LIMIT = 1000


class AuditLogFilter(StrictFilterSet):
    # Unknown action names are not an error: they simply match nothing (CONTRACT §2.14).
    action = ListFilter(field_name="action", max_length=50)
    resource_type = django_filters.CharFilter(field_name="resource_type", max_length=50)
    resource_id = django_filters.CharFilter(field_name="resource_id", max_length=255)
    actor = django_filters.CharFilter(field_name="actor", max_length=150)
    status = django_filters.ChoiceFilter(field_name="status", choices=AuditStatus.choices)
    start_date = InstantFilter(field_name="timestamp", lookup_expr="gte")
    end_date = InstantFilter(field_name="timestamp", lookup_expr="lte", end_of_day=True)


class StatsForm(forms.Form):
    start_date = InstantField(required=False)
    end_date = InstantField(required=False, end_of_day=True)


class AuditListView(ApiView):
    @extend_schema(summary="List audit rows", operation_id="audit_list", tags=["audit"], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        rows_qs = AuditLogFilter(request.query_params, queryset=selectors.audit_logs()).qs
        page = parse_page(request, default=LIST_DEFAULT_LIMIT, maximum=LIST_MAX_LIMIT)
        return Response(offset_page(rows_qs, page, selectors.audit_log_json))


class AuditStatsView(ApiView):
    @extend_schema(
        summary="Audit counts by action, resource type and status",
        operation_id="audit_stats",
        tags=["audit"],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        values = validate_query(request, StatsForm)
        check_date_range(values, ("start_date", "end_date"))
        return Response(selectors.audit_stats(values.get("start_date"), values.get("end_date")))


class AuditDetailView(ApiView):
    @extend_schema(
        summary="Get an audit row", operation_id="audit_retrieve", tags=["audit"], responses=OpenApiTypes.OBJECT
    )
    def get(self, request, audit_id: str):
        return Response(selectors.audit_log_detail(int(audit_id)))
