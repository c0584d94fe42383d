"""``/``, ``/health`` and ``/ready`` (CONTRACT §2.1): no auth, no throttle."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from system import selectors


class _ProbeView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []


class RootView(_ProbeView):
    @extend_schema(summary="API root", tags=["probes"])
    def get(self, request):
        return Response(
            {
                "status": "ok",
                "message": "Home Security Intelligence API",
                "version": settings.HSI_VERSION,
                "docs": "/api/docs",
            }
        )


class HealthView(_ProbeView):
    @extend_schema(summary="Liveness probe", tags=["probes"])
    def get(self, request):
        return Response({"status": "alive"})


class ReadyView(_ProbeView):
    @extend_schema(summary="Readiness probe", tags=["probes"])
    def get(self, request):
        checks = selectors.readiness_checks()
        ready = all(value in ("ok", "disabled") for value in checks.values())
        body = {"ready": ready, "status": "ready" if ready else "not_ready", "checks": checks}
        return Response(body, status=200 if ready else 503)
