"""The alerts admin goes through the API's services (CONTRACT §8.2): alert acknowledge/dismiss and delivery retry
actions, and rules, quiet hours and preferences saved in the admin, driven like a browser by a logged-in superuser.
The audit rows are the API's, with the actor ``user:<username>``."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.utils import quote
from django.contrib.messages import get_messages
from django.urls import reverse

from alerts.models import Alert, AlertRule, Delivery, NotificationChannel, NotificationPreference, QuietHours
from system.models import AuditLog
from tests.factories import (
    AlertFactory,
    AlertRuleFactory,
    CameraFactory,
    DeliveryFactory,
    NotificationChannelFactory,
    QuietHoursFactory,
)
from tests.problems import error_fields

pytestmark = pytest.mark.django_db

ADMIN = "user:admin"  # pytest-django's admin_client logs in as "admin"


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=[quote(a) for a in args])


def run_action(client, model, action: str, rows):
    return client.post(
        url(model, "changelist"), {"action": action, "_selected_action": [str(r.pk) for r in rows], "index": "0"}
    )


def messages_of(response) -> list[tuple[str, str]]:
    return [(message.level_tag, str(message)) for message in get_messages(response.wsgi_request)]


def audit_rows(action: str):
    return AuditLog.objects.filter(action=action).order_by("id")


# --- alert actions ---------------------------------------------------------------------------------------------


def test_acknowledge_changes_the_alerts_through_the_service_and_skips_the_wrong_state(admin_client):
    # Given two open alerts and one already dismissed
    pending, delivered = AlertFactory(status="pending"), AlertFactory(status="delivered")
    dismissed = AlertFactory(status="dismissed")

    # When the operator runs "acknowledge" on all three
    response = run_action(admin_client, Alert, "acknowledge", [pending, delivered, dismissed])

    # Then the open ones are acknowledged with a new version, the dismissed one is untouched
    assert response.status_code == 302
    for alert in (pending, delivered):
        alert.refresh_from_db()
        assert (alert.status, alert.version) == ("acknowledged", 2) and alert.acknowledged_at is not None
    dismissed.refresh_from_db()
    assert (dismissed.status, dismissed.version, dismissed.acknowledged_at) == ("dismissed", 1, None)
    # And the audit rows are the API's: two successes and the refusal as a failure, all by the admin user
    rows = audit_rows("alert_acknowledged")
    assert {(r.resource_id, r.status, r.actor) for r in rows} == {
        (str(pending.pk), "success", ADMIN),
        (str(delivered.pk), "success", ADMIN),
        (str(dismissed.pk), "failure", ADMIN),
    }
    success = rows.get(resource_id=str(pending.pk))
    assert success.details["changes"]["status"] == {"old": "pending", "new": "acknowledged"}
    assert success.details["version"] == 2
    # And the operator is told how many were done and how many skipped
    assert ("success", "2 alerts acknowledged.") in messages_of(response)
    assert ("warning", "1 alert skipped: their current status does not allow this.") in messages_of(response)


def test_an_acknowledge_in_the_admin_is_broadcast_like_the_api(
    admin_client, django_capture_on_commit_callbacks, events_stream
):
    alert = AlertFactory(status="pending")

    with django_capture_on_commit_callbacks(execute=True):
        run_action(admin_client, Alert, "acknowledge", [alert])

    messages = [m for m in events_stream.drain() if m["type"] == "alert.acknowledged"]
    assert [(m["data"]["id"], m["data"]["status"], m["data"]["version"]) for m in messages] == [
        (str(alert.pk), "acknowledged", 2)
    ]


def test_dismiss_dismisses_open_and_acknowledged_alerts_and_skips_dismissed_ones(admin_client):
    # Given an acknowledged alert and two already dismissed ones
    acknowledged = AlertFactory(status="acknowledged", version=3)
    done = AlertFactory.create_batch(2, status="dismissed")

    # When the operator dismisses all three
    response = run_action(admin_client, Alert, "dismiss", [acknowledged, *done])

    # Then only the acknowledged one changes, and the message counts the two skipped
    acknowledged.refresh_from_db()
    assert (acknowledged.status, acknowledged.version) == ("dismissed", 4) and acknowledged.dismissed_at is not None
    assert Alert.objects.filter(status="dismissed").count() == 3
    assert list(Alert.objects.exclude(pk=acknowledged.pk).values_list("version", flat=True)) == [1, 1]
    row = audit_rows("alert_dismissed").get(status="success")
    assert (row.resource_id, row.actor) == (str(acknowledged.pk), ADMIN)
    assert ("success", "1 alert dismissed.") in messages_of(response)
    assert ("warning", "2 alerts skipped: their current status does not allow this.") in messages_of(response)


def test_alerts_stay_read_only_apart_from_the_actions(admin_client):
    alert = AlertFactory()

    change = admin_client.post(url(Alert, "change", alert.pk), {"status": "dismissed"})
    delete = admin_client.post(url(Alert, "delete", alert.pk), {"post": "yes"})

    assert change.status_code == 403 and delete.status_code == 403
    alert.refresh_from_db()
    assert alert.status == "pending"


# --- delivery retry --------------------------------------------------------------------------------------------


def test_retry_puts_a_failed_delivery_back_in_the_outbox_and_skips_the_others(admin_client):
    # Given a failed delivery and a sent one
    failed = DeliveryFactory(status="failed", attempts=5, last_error="HTTP 500")
    sent = DeliveryFactory(status="sent", attempts=1)

    # When the operator retries both
    response = run_action(admin_client, Delivery, "retry", [failed, sent])

    # Then the failed one is pending again from scratch, the sent one untouched
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.next_attempt_at) == ("pending", 0, None)
    sent.refresh_from_db()
    assert (sent.status, sent.attempts) == ("sent", 1)
    rows = audit_rows("delivery_retried")
    assert {(r.resource_id, r.status, r.actor) for r in rows} == {
        (str(failed.pk), "success", ADMIN),
        (str(sent.pk), "failure", ADMIN),
    }
    assert rows.get(status="success").details == {"previous": {"status": "failed", "attempts": 5}}
    assert ("success", "1 delivery retried.") in messages_of(response)
    assert ("warning", "1 delivery skipped: their current status does not allow this.") in messages_of(response)


# --- rules -----------------------------------------------------------------------------------------------------


def rule_post(**overrides) -> dict:
    """What the admin's add form submits for a rule (JSON fields as text, empty numbers as "")."""
    data = {
        "name": "Night person",
        "description": "",
        "enabled": "on",
        "trigger": "event",
        "severity": "high",
        "risk_threshold": "70",
        "object_types": '["Person"]',
        "camera_ids": "null",
        "zone_ids": "null",
        "min_confidence": "",
        "schedule": "null",
        "dedup_key_template": "{camera_id}:{rule_id}",
        "cooldown_seconds": "300",
        "channels": "null",
        "_save": "Save",
    }
    data.update({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in overrides.items()})
    return data


def test_a_rule_added_in_the_admin_is_created_and_audited_like_the_api(admin_client, api_client):
    # Given the same rule created once in the admin and once over the API
    response = admin_client.post(url(AlertRule, "add"), rule_post())
    api = api_client.post(
        "/api/alerts/rules",
        {"name": "Night person", "severity": "high", "risk_threshold": 70, "object_types": ["Person"]},
        format="json",
    )

    # Then both rules are equal and each has exactly one rule_created row with the rule's JSON
    assert response.status_code == 302 and api.status_code == 201
    admin_rule = AlertRule.objects.exclude(pk=api.json()["id"]).get()
    assert admin_rule.name == "Night person" and admin_rule.object_types == ["person"]
    rows = audit_rows("rule_created")
    assert rows.count() == 2
    admin_row, api_row = rows.get(resource_id=str(admin_rule.pk)), rows.get(resource_id=api.json()["id"])
    assert admin_row.actor == ADMIN and admin_row.resource_type == api_row.resource_type == "alert_rule"
    strip = {"id": None, "created_at": None, "updated_at": None}
    assert admin_row.details["rule"] | strip == api_row.details["rule"] | strip
    assert set(admin_row.details) == set(api_row.details) == {"rule"}


def test_a_rule_edited_in_the_admin_writes_one_rule_updated_row_with_the_changes(admin_client):
    # Given a stored rule
    rule = AlertRuleFactory(name="Porch", risk_threshold=50, object_types=["person"])

    # When the operator changes the threshold and saves the rest as it was
    response = admin_client.post(
        url(AlertRule, "change", rule.pk), rule_post(name="Porch", risk_threshold="80", object_types=["person"])
    )

    # Then one rule_updated row names just the changed fields
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.risk_threshold == 80
    (row,) = audit_rows("rule_updated")
    assert row.actor == ADMIN and row.details["changes"]["risk_threshold"] == {"old": 50, "new": 80}
    assert "name" not in row.details["changes"] and "object_types" not in row.details["changes"]


def test_a_rule_deleted_in_the_admin_goes_through_the_service_and_its_alerts_stay(admin_client):
    alert = AlertFactory()
    rule = alert.rule

    response = admin_client.post(url(AlertRule, "delete", rule.pk), {"post": "yes"})

    assert response.status_code == 302 and not AlertRule.objects.exists()
    alert.refresh_from_db()
    assert alert.rule is None
    (row,) = audit_rows("rule_deleted")
    assert (row.actor, row.resource_id, row.details) == (ADMIN, str(rule.pk), {"name": rule.name})


@pytest.mark.parametrize(
    ("overrides", "api_body", "field"),
    [
        ({"name": "   "}, {"name": "   "}, "name"),
        (
            {"dedup_key_template": "{camera_id}:{password}"},
            {"dedup_key_template": "{camera_id}:{password}"},
            "dedup_key_template",
        ),
        (
            {"trigger": "camera_offline", "object_types": "null"},
            {"trigger": "camera_offline", "risk_threshold": 70},
            "risk_threshold",
        ),
        (
            {"schedule": {"days": ["monday"], "timezone": "Mars/Olympus"}},
            {"schedule": {"days": ["monday"], "timezone": "Mars/Olympus"}},
            "schedule",
        ),
        (
            {"channels": ["00000000-0000-0000-0000-000000000000"]},
            {"channels": ["00000000-0000-0000-0000-000000000000"]},
            "channels",
        ),
    ],
)
def test_the_rule_form_rejects_what_the_api_rejects_on_the_same_field(
    admin_client, api_client, overrides, api_body, field
):
    # When the same invalid rule is sent to the admin and to the API
    response = admin_client.post(url(AlertRule, "add"), rule_post(**overrides))
    api = api_client.post("/api/alerts/rules", {"name": "Night person", **api_body}, format="json")

    # Then both refuse it, the admin with the error on the field the API names, and nothing is stored
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    assert any(name.split(".")[0] == field for name in error_fields(api))
    assert not AlertRule.objects.exists() and not AuditLog.objects.exists()


def test_a_nested_schedule_error_names_its_part(admin_client):
    response = admin_client.post(
        url(AlertRule, "add"), rule_post(schedule={"start_time": "25:00", "end_time": "06:00"})
    )

    assert response.context["adminform"].form.errors["schedule"] == [
        "start_time: Must be a time HH:MM between 00:00 and 23:59"
    ]


def test_an_existing_channel_is_accepted_and_stored_once(admin_client):
    channel = NotificationChannelFactory()

    response = admin_client.post(url(AlertRule, "add"), rule_post(channels=[str(channel.id), str(channel.id)]))

    assert response.status_code == 302
    assert AlertRule.objects.get().channels == [str(channel.id)]


# --- quiet hours and preferences -------------------------------------------------------------------------------


def quiet_hours_post(**overrides) -> dict:
    data = {
        "label": "Night",
        "camera": "",
        "start_time": "22:00",
        "end_time": "06:00",
        "days": '["Monday", "monday", "friday"]',
        "allow_critical": "on",
        "enabled": "on",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def test_quiet_hours_added_and_edited_in_the_admin_use_the_services(admin_client):
    camera = CameraFactory()

    added = admin_client.post(url(QuietHours, "add"), quiet_hours_post(camera=camera.pk))
    period = QuietHours.objects.get()
    edited = admin_client.post(url(QuietHours, "change", period.pk), quiet_hours_post(camera=camera.pk, label="Late"))

    assert added.status_code == edited.status_code == 302
    period.refresh_from_db()
    assert (period.label, period.camera_id, period.days) == ("Late", camera.pk, ["monday", "friday"])
    created, updated = audit_rows("quiet_hours_created").get(), audit_rows("quiet_hours_updated").get()
    assert created.actor == updated.actor == ADMIN
    assert created.details["quiet_hours"]["camera_id"] == {"old": None, "new": camera.pk}
    assert updated.details == {"changes": {"label": {"old": "Night", "new": "Late"}}}


def test_quiet_hours_with_equal_times_are_refused_where_the_api_refuses_them(admin_client):
    period = QuietHoursFactory()

    response = admin_client.post(
        url(QuietHours, "change", period.pk), quiet_hours_post(start_time="06:00", end_time="06:00")
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["start_time"] == ["start_time must differ from end_time"]
    assert not AuditLog.objects.exists()


def test_quiet_hours_deleted_in_the_admin_are_audited_once(admin_client):
    period = QuietHoursFactory()

    admin_client.post(url(QuietHours, "delete", period.pk), {"post": "yes"})

    assert not QuietHours.objects.exists()
    (row,) = AuditLog.objects.all()
    assert (row.action, row.actor, row.resource_id) == ("quiet_hours_deleted", ADMIN, str(period.pk))


def test_the_global_preference_edited_in_the_admin_uses_the_preference_service(admin_client):
    preference = NotificationPreference.objects.get(camera__isnull=True)
    body = {"enabled": "on", "severities": '["critical", "high", "high"]', "min_risk_score": "40", "sound": "none"}

    response = admin_client.post(url(NotificationPreference, "change", preference.pk), {**body, "_save": "Save"})

    assert response.status_code == 302
    preference.refresh_from_db()
    assert (preference.severities, preference.min_risk_score, preference.sound) == (["high", "critical"], 40, "none")
    (row,) = audit_rows("preferences_updated")
    assert (row.actor, row.resource_id) == (ADMIN, "global")
    assert row.details["changes"]["min_risk_score"] == {"old": 0, "new": 40}


def test_a_camera_override_added_in_the_admin_inherits_and_is_audited_like_the_api(admin_client):
    camera = CameraFactory()
    body = {"camera": camera.pk, "enabled": "on", "severities": "null", "min_risk_score": "", "sound": "default"}

    response = admin_client.post(url(NotificationPreference, "add"), {**body, "_save": "Save"})

    assert response.status_code == 302
    override = NotificationPreference.objects.get(camera=camera)
    assert (override.severities, override.min_risk_score) == (None, None)
    (row,) = audit_rows("preferences_updated")
    assert (row.actor, row.resource_id, row.details["created"]) == (ADMIN, camera.pk, True)


def test_the_global_preference_needs_a_minimum_risk_score_like_the_api(admin_client):
    preference = NotificationPreference.objects.get(camera__isnull=True)
    body = {"enabled": "on", "severities": '["high"]', "min_risk_score": "", "sound": "default"}

    response = admin_client.post(url(NotificationPreference, "change", preference.pk), {**body, "_save": "Save"})

    assert response.status_code == 200 and "min_risk_score" in response.context["adminform"].form.errors
    assert not AuditLog.objects.exists()


# --- channels --------------------------------------------------------------------------------------------------


def channel_post(**overrides) -> dict:
    data = {
        "name": "Phone",
        "kind": "webhook",
        "enabled": "on",
        "config": json.dumps({"url": "http://127.0.0.1:9/hook"}),
        "secret": "hmac-key-1",
        "min_severity": "high",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def test_a_channel_added_in_the_admin_is_created_by_the_service_without_leaking_the_secret(admin_client):
    response = admin_client.post(url(NotificationChannel, "add"), channel_post())

    assert response.status_code == 302
    channel = NotificationChannel.objects.get()
    assert (channel.name, channel.secret, channel.min_severity) == ("Phone", "hmac-key-1", "high")
    assert channel.config["timeout_seconds"] > 0  # the API's defaults are filled in
    (row,) = AuditLog.objects.all()
    assert (row.action, row.actor, row.resource_id) == ("channel_created", ADMIN, str(channel.pk))
    assert row.details["channel"]["has_secret"] is True and "hmac-key-1" not in json.dumps(row.details)


def test_a_duplicate_channel_name_is_a_form_error(admin_client):
    NotificationChannelFactory(name="Phone")

    response = admin_client.post(url(NotificationChannel, "add"), channel_post(name="  Phone "))

    assert response.status_code == 200 and "name" in response.context["adminform"].form.errors
    assert NotificationChannel.objects.count() == 1


def test_a_channel_deleted_in_the_admin_is_dropped_from_the_rules_that_named_it(admin_client):
    # Given a rule sending to two channels
    kept, removed = NotificationChannelFactory(), NotificationChannelFactory()
    rule = AlertRuleFactory(channels=[str(kept.pk), str(removed.pk)])

    # When one channel is deleted in the admin
    response = admin_client.post(url(NotificationChannel, "delete", removed.pk), {"post": "yes"})

    # Then the rule keeps only the other one, as after an API delete, and the audit row says so
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.channels == [str(kept.pk)]
    (row,) = AuditLog.objects.all()
    assert (row.action, row.actor, row.details["rules_updated"]) == ("channel_deleted", ADMIN, [str(rule.pk)])
