"""/api/events/{id}/feedback (CONTRACT §2.5) and feedback suppression end to end (§5.6): feedback on one event
suppresses a later matching event, which then raises no alert; deleting the feedback lifts it."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from alerts.models import Alert
from alerts.services.alerts import alerts_evaluate_event
from events.models import EventFeedback
from events.services import event_create_from_analysis
from pipeline.analyzers.base import AnalysisOutcome, Verdict
from system.models import AuditLog
from tests.factories import AlertRuleFactory, CameraFactory, DetectionFactory, EventFactory, EventFeedbackFactory
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
FEEDBACK_KEYS = {
    "event_id",
    "feedback_type",
    "expected_severity",
    "suggested_score",
    "notes",
    "suppress",
    "suppress_until",
    "created_at",
    "updated_at",
}


@pytest.fixture
def camera():
    return CameraFactory(id="front_door", name="Front Door")


@pytest.fixture
def event(camera):
    detection = DetectionFactory(camera=camera, object_type="cat", detected_at=T0)
    return EventFactory(camera=camera, detections=[detection])


def url(event_id) -> str:
    return f"/api/events/{event_id}/feedback"


def test_post_creates_suppressing_feedback_by_default_for_false_positive(api_client, event, settings):
    settings.FEEDBACK_SUPPRESSION_DAYS = 30

    with time_machine.travel(T0, tick=False):
        response = api_client.post(
            url(event.id), {"feedback_type": "false_positive", "notes": "the cat"}, format="json"
        )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == FEEDBACK_KEYS
    assert body | {"created_at": None, "updated_at": None} == {
        "event_id": event.id,
        "feedback_type": "false_positive",
        "expected_severity": None,
        "suggested_score": None,
        "notes": "the cat",
        "suppress": True,
        "suppress_until": "2024-05-31T10:00:00Z",
        "created_at": None,
        "updated_at": None,
    }
    row = EventFeedback.objects.get()
    assert (row.camera_id, row.object_types, row.time_of_day_minutes) == ("front_door", "cat", 600)
    audit = AuditLog.objects.get(action="event_feedback_set")
    assert (audit.resource_type, audit.resource_id) == ("event", str(event.id))
    assert api_client.get(url(event.id)).json() == body
    assert api_client.get(f"/api/events/{event.id}").json()["feedback_type"] == "false_positive"


def test_suppress_days_sets_the_window(api_client, event):
    with time_machine.travel(T0, tick=False):
        body = api_client.put(url(event.id), {"feedback_type": "normal", "suppress_days": 2}, format="json").json()

    assert (body["suppress"], body["suppress_until"]) == (True, "2024-05-03T10:00:00Z")


@pytest.mark.parametrize("feedback_type", ["accurate", "missed_threat"])
def test_other_types_do_not_suppress_by_default(api_client, event, feedback_type):
    body = api_client.post(url(event.id), {"feedback_type": feedback_type}, format="json").json()

    assert (body["suppress"], body["suppress_until"]) == (False, None)


def test_normal_feedback_may_opt_out_of_suppression(api_client, event):
    body = api_client.post(url(event.id), {"feedback_type": "normal", "suppress": False}, format="json").json()

    assert (body["suppress"], body["suppress_until"]) == (False, None)


def test_severity_wrong_needs_the_expected_severity(api_client, event):
    assert "expected_severity" in error_fields(
        api_client.post(url(event.id), {"feedback_type": "severity_wrong"}, format="json")
    )

    response = api_client.post(
        url(event.id),
        {"feedback_type": "severity_wrong", "expected_severity": "high", "suggested_score": 75},
        format="json",
    )

    assert response.status_code == 201
    assert (response.json()["expected_severity"], response.json()["suggested_score"]) == ("high", 75)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "feedback_type"),
        ({"feedback_type": "wrong"}, "feedback_type"),
        ({"feedback_type": "accurate", "suppress": True}, "suppress"),
        ({"feedback_type": "missed_threat", "suppress": True}, "suppress"),
        ({"feedback_type": "normal", "suppress_days": 0}, "suppress_days"),
        ({"feedback_type": "normal", "suppress_days": 366}, "suppress_days"),
        ({"feedback_type": "normal", "suggested_score": 101}, "suggested_score"),
        ({"feedback_type": "normal", "notes": "n" * 2001}, "notes"),
        ({"feedback_type": "normal", "expected_severity": "severe"}, "expected_severity"),
        ({"feedback_type": "normal", "suppress": "yes"}, "suppress"),
    ],
)
def test_invalid_bodies_are_422(api_client, event, body, field):
    assert field in error_fields(api_client.post(url(event.id), body, format="json"))
    assert not EventFeedback.objects.exists()


def test_a_second_put_replaces_the_feedback(api_client, event):
    first = api_client.put(url(event.id), {"feedback_type": "normal"}, format="json")
    second = api_client.put(url(event.id), {"feedback_type": "accurate", "notes": "actually fine"}, format="json")

    assert (first.status_code, second.status_code) == (201, 200)
    assert (second.json()["feedback_type"], second.json()["suppress"]) == ("accurate", False)
    assert EventFeedback.objects.count() == 1


def test_get_and_delete(api_client, event):
    problem(api_client.get(url(event.id)), 404, "not_found")
    problem(api_client.delete(url(event.id)), 404, "not_found")
    api_client.post(url(event.id), {"feedback_type": "normal"}, format="json")

    assert api_client.delete(url(event.id)).status_code == 204
    assert not EventFeedback.objects.exists()
    assert AuditLog.objects.filter(action="event_feedback_deleted", resource_id=str(event.id)).count() == 1
    problem(api_client.get(url(event.id)), 404, "not_found")


@pytest.mark.parametrize("method", ["get", "put", "post", "delete"])
def test_unknown_events_are_404(api_client, method):
    problem(getattr(api_client, method)(url(999_999), {"feedback_type": "normal"}, format="json"), 404, "not_found")


# --- end to end: feedback → later event suppressed → no alert (§5.6) ----------------------------------------------


def analysed_event(camera, *, at: dt.datetime, object_type="cat", risk_score=40):
    detection = DetectionFactory(camera=camera, object_type=object_type, detected_at=at)
    level = "critical" if risk_score >= 85 else "medium"
    outcome = AnalysisOutcome(
        verdict=Verdict(risk_score, level, "A cat", "", ""),
        analysis_status="rules",
        backend="rules",
        model="rules-v1",
        rules_risk_score=risk_score,
    )
    return event_create_from_analysis(
        camera_id=camera.id,
        batch_id=None,
        detections=[detection],
        outcome=outcome,
        anomaly_score=None,
        is_fast_path=False,
        now=at,
    )


def test_feedback_suppresses_a_later_matching_event_and_its_alerts(
    api_client, camera, event, django_capture_on_commit_callbacks
):
    AlertRuleFactory(risk_threshold=None, channels=[], cooldown_seconds=0)
    with time_machine.travel(T0, tick=False):
        api_client.post(url(event.id), {"feedback_type": "false_positive"}, format="json")

    next_day = T0 + dt.timedelta(days=1, minutes=20)  # same time of day, within the 60-minute window
    with time_machine.travel(next_day, tick=False), django_capture_on_commit_callbacks(execute=True):
        suppressed = analysed_event(camera, at=next_day)
        created = alerts_evaluate_event(suppressed.id)

    assert suppressed.suppressed is True
    assert created == []
    assert not Alert.objects.exists()


def test_critical_other_class_or_other_time_events_are_not_suppressed(
    camera, event, django_capture_on_commit_callbacks
):
    AlertRuleFactory(risk_threshold=None, channels=[], cooldown_seconds=0)
    EventFeedbackFactory(
        event=event, object_types="cat", time_of_day_minutes=600, suppress_until=T0 + dt.timedelta(days=30)
    )
    later = T0 + dt.timedelta(days=1)

    with time_machine.travel(later, tick=False), django_capture_on_commit_callbacks(execute=True):
        critical = analysed_event(camera, at=later, risk_score=95)
        person = analysed_event(camera, at=later, object_type="person")
        evening = analysed_event(camera, at=later + dt.timedelta(hours=3))
        for new_event in (critical, person, evening):
            alerts_evaluate_event(new_event.id)

    assert [e.suppressed for e in (critical, person, evening)] == [False, False, False]
    assert Alert.objects.count() == 3


def test_deleting_the_feedback_lifts_suppression_for_new_events(
    api_client, camera, event, django_capture_on_commit_callbacks
):
    AlertRuleFactory(risk_threshold=None, channels=[], cooldown_seconds=0)
    with time_machine.travel(T0, tick=False):
        api_client.post(url(event.id), {"feedback_type": "normal"}, format="json")
        api_client.delete(url(event.id))

    later = T0 + dt.timedelta(days=1)
    with time_machine.travel(later, tick=False), django_capture_on_commit_callbacks(execute=True):
        new_event = analysed_event(camera, at=later)
        created = alerts_evaluate_event(new_event.id)

    assert new_event.suppressed is False
    assert len(created) == 1


def test_expired_feedback_no_longer_suppresses(api_client, camera, event):
    with time_machine.travel(T0, tick=False):
        api_client.post(url(event.id), {"feedback_type": "normal", "suppress_days": 1}, format="json")

    later = T0 + dt.timedelta(days=1)  # exactly at suppress_until: no longer active
    with time_machine.travel(later, tick=False):
        assert analysed_event(camera, at=later).suppressed is False


def test_replacing_feedback_restarts_its_suppression_window(api_client, event):
    with time_machine.travel(T0, tick=False):
        api_client.put(url(event.id), {"feedback_type": "normal", "suppress_days": 5}, format="json")
    with time_machine.travel(T0 + dt.timedelta(days=2), tick=False):
        body = api_client.put(url(event.id), {"feedback_type": "normal", "suppress_days": 5}, format="json").json()

    assert (body["created_at"], body["suppress_until"]) == ("2024-05-03T10:00:00Z", "2024-05-08T10:00:00Z")
    audit = AuditLog.objects.filter(action="event_feedback_set").order_by("-id").first()
    assert audit.details["created"] is False
