"""``/api/system`` (CONTRACT §2.11): health, stats, GPU, config, severity, pipeline, circuit breakers, storage.

Thin views: each reads with one ``system.selectors`` / ``system.health`` call (or one ``system.services`` write)
and renders. ``/api/system/cleanup`` lives with retention.
"""

from __future__ import annotations

import re

from django import forms
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from hsi.api.errors import FieldValidationError, NotFound
from hsi.api.filters import parse_instant
from hsi.api.views import ApiView
from system import selectors, services
from system.health import UNHEALTHY, system_health

_INTEGER = re.compile(r"[+-]?\d{1,18}")
GPU_HISTORY_DEFAULT_LIMIT = 300
GPU_HISTORY_MAX_LIMIT = 5000

_TAGS = ["system"]


def _limit(params, default: int, maximum: int) -> int:
    raw = params.get("limit")
    if raw is None or raw.strip() == "":
        return default
    if not _INTEGER.fullmatch(raw.strip()):
        raise FieldValidationError({"limit": "Must be an integer"})
    value = int(raw)
    if not 1 <= value <= maximum:
        raise FieldValidationError({"limit": f"Must be between 1 and {maximum}"})
    return value


def _instant(params, name: str):
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return parse_instant(raw)
    except forms.ValidationError as error:
        raise FieldValidationError({name: error.messages[0]}) from None


class SystemHealthView(ApiView):
    @extend_schema(
        summary="Health of every dependency (200 healthy/degraded, 503 unhealthy)", tags=_TAGS, responses=dict
    )
    def get(self, request):
        body = system_health()
        return Response(body, status=503 if body["status"] == UNHEALTHY else 200)


class SystemStatsView(ApiView):
    @extend_schema(summary="Counts of cameras, events, detections, alerts and entities", tags=_TAGS, responses=dict)
    def get(self, request):
        return Response(selectors.system_stats())


class GpuView(ApiView):
    @extend_schema(summary="Latest GPU sample (every field null when none exists)", tags=_TAGS, responses=dict)
    def get(self, request):
        return Response(selectors.gpu_latest())


class GpuHistoryView(ApiView):
    @extend_schema(
        summary="GPU samples, ascending by recorded_at",
        tags=_TAGS,
        parameters=[
            OpenApiParameter("since", str, description="ISO 8601 date or date-time"),
            OpenApiParameter("limit", int, description="300 (1-5000)"),
        ],
        responses=dict,
    )
    def get(self, request):
        params = request.query_params
        limit = _limit(params, GPU_HISTORY_DEFAULT_LIMIT, GPU_HISTORY_MAX_LIMIT)
        return Response(selectors.gpu_history(since=_instant(params, "since"), limit=limit))


class ConfigView(ApiView):
    @extend_schema(summary="Effective settings, secrets redacted", tags=_TAGS, responses=dict)
    def get(self, request):
        return Response(selectors.effective_config())


class SeverityView(ApiView):
    @extend_schema(summary="Risk-level thresholds and definitions", tags=_TAGS, responses=dict)
    def get(self, request):
        return Response(selectors.severity_definitions())


class PipelineView(ApiView):
    @extend_schema(summary="Watchers, queues, batches, DLQ, deliveries and backends", tags=_TAGS, responses=dict)
    def get(self, request):
        return Response(selectors.pipeline_overview())


class CircuitBreakersView(ApiView):
    @extend_schema(summary="Circuit breaker states", tags=_TAGS, responses=dict)
    def get(self, request):
        return Response(selectors.circuit_breakers())


class CircuitBreakerResetView(ApiView):
    @extend_schema(summary="Close a circuit breaker", tags=_TAGS, request=None, responses=dict)
    def post(self, request, name: str):
        result = services.circuit_breaker_reset(name, actor=services.actor_from_request(request))
        if result is None:
            raise NotFound(f"Circuit breaker {name} not found")
        return Response(result)


class StorageView(ApiView):
    @extend_schema(summary="Disk, thumbnails and row counts", tags=_TAGS, responses=dict)
    def get(self, request):
        return Response(selectors.storage_usage())
