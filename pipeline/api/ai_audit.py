"""``/api/ai-audit`` (CONTRACT §2.17): list, stats, detail and evaluation of analysis audits. Thin views."""

from __future__ import annotations

import django_filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from events.models import AnalysisStatus, AnalyzerBackend, EvaluationStatus, ParseStatus
from hsi.api.errors import FieldValidationError
from hsi.api.filters import InstantFilter, ListFilter, StrictFilterSet, parse_bool, validate_query
from hsi.api.pagination import parse_page
from hsi.api.views import ApiView
from pipeline import ai_audit

LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 100
TAGS = ["ai-audit"]


class AuditFilter(StrictFilterSet):
    camera_id = ListFilter(field_name="event__camera_id", max_length=64)
    backend = ListFilter(field_name="backend", choices=AnalyzerBackend.choices, lower=True)
    parse_status = ListFilter(field_name="parse_status", choices=ParseStatus.choices, lower=True)
    analysis_status = ListFilter(field_name="event__analysis_status", choices=AnalysisStatus.choices, lower=True)
    evaluation_status = ListFilter(field_name="evaluation_status", choices=EvaluationStatus.choices, lower=True)
    min_quality = django_filters.NumberFilter(
        field_name="overall_quality_score", lookup_expr="gte", min_value=1, max_value=5
    )
    start_date = InstantFilter(field_name="created_at", lookup_expr="gte")
    end_date = InstantFilter(field_name="created_at", lookup_expr="lte", end_of_day=True)


class StatsQuery(forms.Form):
    days = forms.IntegerField(required=False, min_value=1, max_value=90)
    camera_id = forms.CharField(required=False, max_length=64)


class EvaluateBody(serializers.Serializer):
    """The evaluate body, for the API schema (``force`` is read by ``_force``)."""

    force = serializers.BooleanField(required=False, default=False)


def _force(request, body: dict) -> bool:
    """``force`` from the JSON body (a JSON boolean) or, failing that, the query string."""
    if "force" in body:
        value = body["force"]
        if not isinstance(value, bool):
            raise FieldValidationError({"force": "Must be a boolean"})
        return value
    raw = request.query_params.get("force")
    if raw is None or raw.strip() == "":
        return False
    try:
        return parse_bool(raw)
    except forms.ValidationError:
        raise FieldValidationError({"force": "Must be a boolean (true/false/1/0/yes/no)"}) from None


class AuditListView(ApiView):
    @extend_schema(summary="List AI analysis audits", tags=TAGS, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        queryset = AuditFilter(request.query_params, queryset=ai_audit.audits()).qs
        page = parse_page(request, default=LIST_LIMIT_DEFAULT, maximum=LIST_LIMIT_MAX)
        return Response(ai_audit.audit_page(queryset, page))


class AuditStatsView(ApiView):
    @extend_schema(summary="AI analysis statistics", tags=TAGS, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query = validate_query(request, StatsQuery)
        return Response(ai_audit.audit_stats(days=query["days"] or 7, camera_id=query["camera_id"] or None))


class AuditDetailView(ApiView):
    @extend_schema(summary="Get the AI audit of an event", tags=TAGS, responses=OpenApiTypes.OBJECT)
    def get(self, request, event_id: str):
        return Response(ai_audit.audit_detail(int(event_id)))


class AuditEvaluateView(ApiView):
    @extend_schema(
        summary="Evaluate the quality of an event's analysis",
        tags=TAGS,
        request=EvaluateBody,
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request, event_id: str):
        force = _force(request, self.body())
        return Response(ai_audit.audit_evaluate(int(event_id), force=force))
