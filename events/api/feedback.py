"""``/api/events/{id}/feedback`` (CONTRACT §2.5 feedback body, §5.6): read, set (PUT or POST), delete."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from cameras.api.serializers import StrictBooleanField, StrictCharField, StrictChoiceField, StrictIntegerField
from events import services
from events.models import Event, EventFeedback, FeedbackType, RiskLevel
from hsi.api.errors import NotFound
from hsi.api.views import ApiView
from hsi.timeutils import utc_iso
from system.services import actor_from_request

SUPPRESSIBLE_TYPES = (FeedbackType.NORMAL, FeedbackType.FALSE_POSITIVE)


class FeedbackSerializer(serializers.Serializer):
    feedback_type = StrictChoiceField(choices=FeedbackType.values)
    expected_severity = StrictChoiceField(choices=RiskLevel.values, allow_null=True, required=False)
    suggested_score = StrictIntegerField(minimum=0, maximum=100, allow_null=True, required=False)
    notes = StrictCharField(
        max_length=2000, allow_blank=True, allow_null=True, allow_control=True, trim_whitespace=False, required=False
    )
    suppress = StrictBooleanField(required=False, allow_null=True)
    suppress_days = StrictIntegerField(minimum=1, maximum=365, allow_null=True, required=False)

    def validate(self, attrs):
        feedback_type = attrs["feedback_type"]
        if feedback_type == FeedbackType.SEVERITY_WRONG and not attrs.get("expected_severity"):
            raise serializers.ValidationError({"expected_severity": ["Required for severity_wrong feedback"]})
        if attrs.get("suppress") and feedback_type not in SUPPRESSIBLE_TYPES:
            raise serializers.ValidationError(
                {"suppress": ["Only normal and false_positive feedback can suppress future events"]}
            )
        return attrs


def feedback_json(feedback: EventFeedback) -> dict:
    return {
        "event_id": feedback.event_id,
        "feedback_type": feedback.feedback_type,
        "expected_severity": feedback.expected_severity,
        "suggested_score": feedback.suggested_score,
        "notes": feedback.notes,
        "suppress": feedback.suppress,
        "suppress_until": utc_iso(feedback.suppress_until),
        "created_at": utc_iso(feedback.created_at),
        "updated_at": utc_iso(feedback.updated_at),
    }


class EventFeedbackView(ApiView):
    @extend_schema(
        summary="Get the operator feedback of an event",
        operation_id="event_feedback_retrieve",
        tags=["events"],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, event_id: str):
        if not Event.objects.filter(pk=int(event_id)).exists():
            raise NotFound(f"Event {event_id} not found")
        feedback = EventFeedback.objects.filter(event_id=int(event_id)).first()
        if feedback is None:
            raise NotFound(f"Event {event_id} has no feedback")
        return Response(feedback_json(feedback))

    @extend_schema(
        summary="Set (create or replace) the operator feedback of an event",
        operation_id="event_feedback_set",
        tags=["events"],
        request=FeedbackSerializer,
        responses={200: OpenApiTypes.OBJECT, 201: OpenApiTypes.OBJECT},
    )
    def put(self, request, event_id: str):
        body = self.body()
        if not Event.objects.filter(pk=int(event_id)).exists():
            raise NotFound(f"Event {event_id} not found")
        serializer = FeedbackSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        feedback, created = services.event_feedback_create(
            int(event_id), data=dict(serializer.validated_data), actor=actor_from_request(request)
        )
        return Response(feedback_json(feedback), status=201 if created else 200)

    @extend_schema(
        summary="Set (create or replace) the operator feedback of an event",
        operation_id="event_feedback_create",
        tags=["events"],
        request=FeedbackSerializer,
        responses={200: OpenApiTypes.OBJECT, 201: OpenApiTypes.OBJECT},
    )
    def post(self, request, event_id: str):
        return self.put(request, event_id)

    @extend_schema(
        summary="Delete the operator feedback of an event",
        operation_id="event_feedback_delete",
        tags=["events"],
        responses={204: None},
    )
    def delete(self, request, event_id: str):
        services.event_feedback_delete(int(event_id), actor=actor_from_request(request))
        return Response(status=204)
