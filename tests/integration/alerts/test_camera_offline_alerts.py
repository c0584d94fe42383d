"""``camera_offline`` rules (CONTRACT §5.5): fired by a camera's transition to offline or error, from the API or
the silence check (§4.12), with camera and schedule conditions, dedup and cooldown."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from alerts.models import Alert
from cameras.services import camera_set_status, cameras_check_silence
from system.services import Actor
from tests.factories import AlertRuleFactory, CameraFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 5, 3, 23, 0, tzinfo=dt.UTC)  # Friday 23:00 UTC


def offline_rule(**fields):
    values = {"trigger": "camera_offline", "risk_threshold": None, "channels": [], "severity": "high"}
    values.update(fields)
    return AlertRuleFactory(**values)


def set_status(camera, status, capture, reason="api"):
    with capture(execute=True):
        camera_set_status(camera.id, status, reason=reason, actor=Actor.system("test"))


def test_going_offline_through_the_api_fires_the_rule(api_client, django_capture_on_commit_callbacks):
    camera = CameraFactory(id="garage", status="online")
    rule = offline_rule(name="Camera down")

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.patch("/api/cameras/garage", {"status": "offline"}, format="json")

    assert response.status_code == 200, response.content
    alert = Alert.objects.get()
    assert (alert.kind, alert.event_id, alert.camera_id, alert.rule_id) == ("camera_offline", None, camera.id, rule.id)
    assert (alert.status, alert.severity, alert.dedup_key) == ("pending", "high", f"garage:{rule.id}")
    assert alert.metadata == {
        "rule_name": "Camera down",
        "matched_conditions": ["no_conditions"],
        "object_type": None,
        "matched_zone_ids": [],
        "reason": "api",
    }


def test_error_status_fires_too_and_online_does_not(django_capture_on_commit_callbacks):
    camera = CameraFactory(status="online")
    offline_rule(cooldown_seconds=0)

    set_status(camera, "error", django_capture_on_commit_callbacks)
    set_status(camera, "online", django_capture_on_commit_callbacks)
    set_status(camera, "unknown", django_capture_on_commit_callbacks)

    assert Alert.objects.count() == 1


def test_event_rules_and_disabled_rules_do_not_fire_on_offline(django_capture_on_commit_callbacks):
    camera = CameraFactory(status="online")
    AlertRuleFactory(trigger="event", risk_threshold=None)
    offline_rule(enabled=False)

    set_status(camera, "offline", django_capture_on_commit_callbacks)

    assert not Alert.objects.exists()


def test_camera_ids_limit_the_rule(django_capture_on_commit_callbacks):
    garage = CameraFactory(id="garage", status="online")
    porch = CameraFactory(id="porch", status="online")
    offline_rule(camera_ids=["garage"])

    set_status(porch, "offline", django_capture_on_commit_callbacks)
    set_status(garage, "offline", django_capture_on_commit_callbacks)

    alert = Alert.objects.get()
    assert alert.camera_id == "garage"
    assert alert.metadata["matched_conditions"] == ["camera_id in [garage]"]


def test_the_schedule_clock_is_the_transition_time(django_capture_on_commit_callbacks):
    camera = CameraFactory(status="online")
    offline_rule(
        name="nights", schedule={"days": ["friday"], "start_time": "22:00", "end_time": "06:00", "timezone": "UTC"}
    )
    offline_rule(name="days", schedule={"days": [], "start_time": "08:00", "end_time": "18:00", "timezone": "UTC"})

    with time_machine.travel(T0 + dt.timedelta(hours=2), tick=False):  # Saturday 01:00, Friday's window
        set_status(camera, "offline", django_capture_on_commit_callbacks)

    assert [alert.metadata["rule_name"] for alert in Alert.objects.all()] == ["nights"]


def test_cooldown_applies_to_repeated_outages(django_capture_on_commit_callbacks):
    camera = CameraFactory(status="online")
    offline_rule(cooldown_seconds=600)

    with time_machine.travel(T0, tick=False):
        set_status(camera, "offline", django_capture_on_commit_callbacks)
        set_status(camera, "online", django_capture_on_commit_callbacks)
    with time_machine.travel(T0 + dt.timedelta(seconds=599), tick=False):
        set_status(camera, "offline", django_capture_on_commit_callbacks)
        set_status(camera, "online", django_capture_on_commit_callbacks)
    assert Alert.objects.count() == 1
    with time_machine.travel(T0 + dt.timedelta(seconds=600), tick=False):
        set_status(camera, "offline", django_capture_on_commit_callbacks)

    assert Alert.objects.count() == 2


def test_a_silent_camera_fires_with_reason_silent(django_capture_on_commit_callbacks):
    with time_machine.travel(T0, tick=False):
        camera = CameraFactory(status="online", silence_threshold_minutes=10)
    offline_rule()

    with (
        time_machine.travel(T0 + dt.timedelta(minutes=11), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert cameras_check_silence(T0 + dt.timedelta(minutes=11)) == [camera.id]

    alert = Alert.objects.get()
    assert (alert.kind, alert.camera_id, alert.metadata["reason"]) == ("camera_offline", camera.id, "silent")


def test_nothing_fires_before_the_status_change_commits(django_capture_on_commit_callbacks):
    camera = CameraFactory(status="online")
    offline_rule()

    with django_capture_on_commit_callbacks(execute=False):
        camera_set_status(camera.id, "offline", reason="api", actor=Actor.system("test"))

    assert not Alert.objects.exists()


def test_an_offline_rule_whose_alert_insert_fails_does_not_stop_the_others(django_capture_on_commit_callbacks, caplog):
    import logging

    from tests.integration.alerts.refusing_triggers import refuse_inserts

    camera = CameraFactory(id="garage", status="online")
    refuse_inserts("alerts_alert", "NEW.metadata->>'rule_name' = 'explodes'")
    offline_rule(name="explodes", severity="critical")
    survivor = offline_rule(name="Camera down", severity="high")

    with caplog.at_level(logging.ERROR, logger="hsi.alerts"):
        set_status(camera, "offline", django_capture_on_commit_callbacks)

    assert list(Alert.objects.values_list("rule_id", flat=True)) == [survivor.id]
    camera.refresh_from_db()
    assert camera.status == "offline"
    assert any("explodes" in r.getMessage() and "evaluation_error" in r.getMessage() for r in caplog.records)
