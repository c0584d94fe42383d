"""POST /api/events/{id}/reanalyze (CONTRACT §2.5): 202 queued, 404, 409 for the trash; the task re-runs §4.6 on
the event's detections, replaces the verdict and the EventAudit, bumps version and broadcasts event.updated."""

from __future__ import annotations

import pytest
from django.utils import timezone

from events.models import Event, EventAudit
from system.models import AuditLog
from tests.factories import CameraFactory, DetectionFactory, EventAuditFactory, EventFactory
from tests.fakes.llm_server import verdict_json
from tests.integration.pipeline_support import T0, at, of_type, pipeline_env  # noqa: F401 - fixture
from tests.problems import problem

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_env")]


@pytest.fixture
def event(db):
    camera = CameraFactory(id="front_door", name="Front Door")
    found = [
        DetectionFactory(camera=camera, object_type="person", confidence=0.8, detected_at=T0),
        DetectionFactory(camera=camera, object_type="car", confidence=0.7, detected_at=at(5)),
    ]
    event = EventFactory(
        camera=camera,
        detections=found,
        risk_score=90,
        risk_level="critical",
        summary="old summary",
        reasoning="old reasoning",
        recommended_action="Check the camera now",
        analysis_status="llm",
    )
    EventAuditFactory(
        event=event,
        backend="llamacpp",
        model="old-model",
        parse_status="ok",
        rules_risk_score=25,
        overall_quality_score=4.0,
        evaluation_status="complete",
    )
    return event


def reanalyze(api_client, capture, event_id):
    with capture(execute=True):
        return api_client.post(f"/api/events/{event_id}/reanalyze")


def test_reanalysis_is_queued_and_replaces_the_verdict_and_the_audit(
    api_client, event, events_stream, django_capture_on_commit_callbacks
):
    response = reanalyze(api_client, django_capture_on_commit_callbacks, event.id)

    assert response.status_code == 202 and response.json() == {"event_id": event.id, "status": "queued"}
    stored = Event.objects.get(pk=event.id)
    assert (stored.risk_score, stored.risk_level, stored.analysis_status) == (25, "low", "rules")
    assert stored.summary.startswith("1 car, 1 person detected on Front Door") and stored.reasoning != "old reasoning"
    assert stored.recommended_action == "No action needed"
    assert stored.version == 2
    audit = EventAudit.objects.get(event=event)
    assert (audit.backend, audit.model, audit.parse_status, audit.rules_risk_score) == (
        "rules",
        "rules-v1",
        "not_applicable",
        25,
    )
    assert (audit.overall_quality_score, audit.evaluation_status) == (None, "pending")
    (update,) = of_type(events_stream.drain(), "event.updated")
    assert update == {
        "id": event.id,
        "camera_id": "front_door",
        "changed_fields": ["risk_score", "risk_level", "summary", "reasoning", "recommended_action", "analysis_status"],
        "reviewed": False,
        "flagged": False,
        "notes": None,
        "risk_score": 25,
        "risk_level": "low",
        "version": 2,
    }
    row = AuditLog.objects.get(action="event_reanalyzed")
    assert (row.resource_type, row.resource_id, row.status) == ("event", str(event.id), "success")


def test_reanalysis_with_an_llm(settings, fake_llm, api_client, event, django_capture_on_commit_callbacks):
    settings.LLM_BACKEND = "openai"
    settings.LLM_URL = fake_llm.url
    fake_llm.reply_text = verdict_json(45, "medium", summary="A visitor with a parcel.")

    reanalyze(api_client, django_capture_on_commit_callbacks, event.id)

    stored = Event.objects.get(pk=event.id)
    assert (stored.risk_score, stored.risk_level, stored.analysis_status, stored.summary) == (
        45,
        "medium",
        "llm",
        "A visitor with a parcel.",
    )
    assert stored.audit.backend == "openai" and stored.audit.model == "fake-nemotron"
    assert fake_llm.completion_calls == 1


def test_reanalysis_keeps_review_state_and_does_not_touch_detections(
    api_client, event, django_capture_on_commit_callbacks
):
    Event.objects.filter(pk=event.id).update(reviewed=True, notes="seen", flagged=True)
    detection_ids = sorted(event.detections.values_list("id", flat=True))

    reanalyze(api_client, django_capture_on_commit_callbacks, event.id)

    stored = Event.objects.get(pk=event.id)
    assert (stored.reviewed, stored.notes, stored.flagged, stored.detection_count) == (True, "seen", True, 2)
    assert sorted(stored.detections.values_list("id", flat=True)) == detection_ids


def test_reanalyzing_an_unknown_event_is_404(api_client):
    assert (
        problem(api_client.post("/api/events/987654/reanalyze"), 404, "not_found")["detail"] == "Event 987654 not found"
    )
    assert api_client.post("/api/events/abc/reanalyze").status_code == 404


def test_reanalyzing_a_deleted_event_is_409_and_audited_as_refused(
    api_client, event, django_capture_on_commit_callbacks
):
    Event.objects.filter(pk=event.id).update(deleted_at=timezone.now())

    response = reanalyze(api_client, django_capture_on_commit_callbacks, event.id)

    problem(response, 409, "invalid_state")
    assert Event.objects.get(pk=event.id).version == 1
    assert AuditLog.objects.get(action="event_reanalyzed").status == "failure"


def test_an_event_deleted_before_the_task_runs_is_left_alone(event, django_capture_on_commit_callbacks):
    from tests.integration.pipeline_support import run_task

    Event.objects.filter(pk=event.id).update(deleted_at=timezone.now())

    run_task(django_capture_on_commit_callbacks, "pipeline.reanalyze_event", event.id)

    stored = Event.objects.get(pk=event.id)
    assert (stored.version, stored.risk_score, stored.audit.model) == (1, 90, "old-model")


def test_the_trailing_slash_route_works(api_client, event, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client.post(f"/api/events/{event.id}/reanalyze/").status_code == 202
