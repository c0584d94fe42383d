"""``POST /api/events/{id}/reanalyze`` (CONTRACT §2.5): queue the analysis of an event's detections again."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from hsi.api.views import ApiView
from pipeline import services
from system.services import actor_from_request


class EventReanalyzeView(ApiView):
    @extend_schema(summary="Reanalyse an event", tags=["events"], responses={202: OpenApiTypes.OBJECT})
    def post(self, request, event_id: str):
        services.event_reanalyze_request(int(event_id), actor=actor_from_request(request))
        return Response({"event_id": int(event_id), "status": "queued"}, status=202)
