"""Baseline endpoints under ``/api/cameras/{camera_id}/baseline`` (CONTRACT §2.2, §4.11). Thin: parse, call, render."""

from __future__ import annotations

from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from events import baselines
from hsi.api.filters import validate_query
from hsi.api.json_sql import json_response
from hsi.api.pagination import parse_page
from hsi.api.views import ApiView
from system.services import actor_from_request

ANOMALY_LIMIT_DEFAULT = 50
ANOMALY_LIMIT_MAX = 100
ANOMALY_DAYS_DEFAULT = 7
ANOMALY_DAYS_MAX = 90


class AnomalyQuery(forms.Form):
    days = forms.IntegerField(required=False, min_value=1, max_value=ANOMALY_DAYS_MAX)


class CameraBaselineView(ApiView):
    @extend_schema(summary="Activity and class baseline of a camera", tags=["cameras"], responses=OpenApiTypes.OBJECT)
    def get(self, request, camera_id: str):
        return Response(baselines.baseline_summary(camera_id))


class CameraBaselineAnomaliesView(ApiView):
    @extend_schema(summary="Recent anomalous events of a camera", tags=["cameras"], responses=OpenApiTypes.OBJECT)
    def get(self, request, camera_id: str):
        days = validate_query(request, AnomalyQuery).get("days") or ANOMALY_DAYS_DEFAULT
        page = parse_page(request, default=ANOMALY_LIMIT_DEFAULT, maximum=ANOMALY_LIMIT_MAX)
        return json_response(baselines.baseline_anomaly_page(camera_id, days=days, page=page))


class CameraBaselineRebuildView(ApiView):
    @extend_schema(
        summary="Queue a full baseline rebuild", tags=["cameras"], request=None, responses={202: OpenApiTypes.OBJECT}
    )
    def post(self, request, camera_id: str):
        baselines.baseline_rebuild_request(camera_id, actor=actor_from_request(request))
        return Response({"camera_id": camera_id, "status": "queued"}, status=202)
