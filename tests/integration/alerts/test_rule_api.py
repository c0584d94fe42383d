"""/api/alerts/rules CRUD (CONTRACT §2.7), validation (§5.1) and audit (§6.8)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import time_machine

from alerts.models import Alert, AlertRule
from system.models import AuditLog
from tests.factories import AlertFactory, AlertRuleFactory, NotificationChannelFactory
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
RULE_KEYS = {
    "id",
    "name",
    "description",
    "enabled",
    "trigger",
    "severity",
    "risk_threshold",
    "object_types",
    "camera_ids",
    "zone_ids",
    "min_confidence",
    "schedule",
    "dedup_key_template",
    "cooldown_seconds",
    "channels",
    "created_at",
    "updated_at",
}


def post(api_client, body):
    return api_client.post("/api/alerts/rules", body, format="json")


def test_create_returns_every_field_with_defaults(api_client):
    response = post(api_client, {"name": "  Night person  "})

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == RULE_KEYS
    assert body["name"] == "Night person"  # stored trimmed
    assert body | {"id": None, "created_at": None, "updated_at": None} == {
        "id": None,
        "name": "Night person",
        "description": "",
        "enabled": True,
        "trigger": "event",
        "severity": "medium",
        "risk_threshold": None,
        "object_types": None,
        "camera_ids": None,
        "zone_ids": None,
        "min_confidence": None,
        "schedule": None,
        "dedup_key_template": "{camera_id}:{rule_id}",
        "cooldown_seconds": 300,
        "channels": None,
        "created_at": None,
        "updated_at": None,
    }
    assert AlertRule.objects.filter(pk=body["id"]).exists()
    audit = AuditLog.objects.get(action="rule_created")
    assert (audit.resource_type, audit.resource_id, audit.status) == ("alert_rule", body["id"], "success")


def test_create_normalises_lists_and_schedule(api_client):
    channel = NotificationChannelFactory()
    zone = str(uuid.uuid4())

    response = post(
        api_client,
        {
            "name": "Full",
            "severity": "critical",
            "risk_threshold": 70,
            "object_types": ["Person", "person", "CAR"],
            "camera_ids": ["front_door"],
            "zone_ids": [zone.upper()],
            "min_confidence": 0.8,
            "schedule": {"days": ["Friday", "saturday"], "start_time": "22:00", "end_time": "06:00"},
            "dedup_key_template": "{camera_id}:{object_type}",
            "cooldown_seconds": 0,
            "channels": [str(channel.id)],
        },
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["object_types"] == ["person", "car"]
    assert body["zone_ids"] == [zone]
    assert body["schedule"] == {
        "days": ["friday", "saturday"],
        "start_time": "22:00",
        "end_time": "06:00",
        "timezone": "UTC",
    }
    assert body["channels"] == [str(channel.id)]
    assert body["cooldown_seconds"] == 0


def test_an_empty_schedule_is_stored_as_null(api_client):
    assert post(api_client, {"name": "x", "schedule": {}}).json()["schedule"] is None


def test_an_empty_channel_list_is_kept(api_client):
    assert post(api_client, {"name": "x", "channels": []}).json()["channels"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x", "description": "d" * 5001}, "description"),
        ({"name": "x", "enabled": "yes"}, "enabled"),
        ({"name": "x", "trigger": "motion"}, "trigger"),
        ({"name": "x", "severity": "urgent"}, "severity"),
        ({"name": "x", "risk_threshold": 101}, "risk_threshold"),
        ({"name": "x", "risk_threshold": -1}, "risk_threshold"),
        ({"name": "x", "risk_threshold": "70"}, "risk_threshold"),
        ({"name": "x", "object_types": "person"}, "object_types"),
        ({"name": "x", "object_types": ["p"] * 51}, "object_types"),
        ({"name": "x", "object_types": ["person", ""]}, "object_types.1"),
        ({"name": "x", "object_types": ["x" * 65]}, "object_types.0"),
        ({"name": "x", "camera_ids": ["c"] * 101}, "camera_ids"),
        ({"name": "x", "camera_ids": ["c" * 65]}, "camera_ids.0"),
        ({"name": "x", "zone_ids": ["not-a-uuid"]}, "zone_ids.0"),
        ({"name": "x", "min_confidence": 1.5}, "min_confidence"),
        ({"name": "x", "min_confidence": True}, "min_confidence"),
        ({"name": "x", "schedule": "nights"}, "schedule"),
        ({"name": "x", "schedule": {"days": ["funday"]}}, "schedule.days.0"),
        ({"name": "x", "schedule": {"start_time": "24:00", "end_time": "06:00"}}, "schedule.start_time"),
        ({"name": "x", "schedule": {"start_time": "22:00", "end_time": "6:00"}}, "schedule.end_time"),
        ({"name": "x", "schedule": {"start_time": "22:00"}}, "schedule.end_time"),
        ({"name": "x", "schedule": {"end_time": "06:00"}}, "schedule.start_time"),
        ({"name": "x", "schedule": {"timezone": "Mars/Olympus"}}, "schedule.timezone"),
        ({"name": "x", "dedup_key_template": ""}, "dedup_key_template"),
        ({"name": "x", "dedup_key_template": "{camera}"}, "dedup_key_template"),
        ({"name": "x", "dedup_key_template": "{camera_id} {rule_id}"}, "dedup_key_template"),
        ({"name": "x", "dedup_key_template": "k" * 256}, "dedup_key_template"),
        ({"name": "x", "cooldown_seconds": 604801}, "cooldown_seconds"),
        ({"name": "x", "cooldown_seconds": -1}, "cooldown_seconds"),
        ({"name": "x", "channels": [str(uuid.uuid4())]}, "channels"),
        ({"name": "x", "channels": "all"}, "channels"),
        ({"name": "x", "trigger": "camera_offline", "risk_threshold": 50}, "risk_threshold"),
        ({"name": "x", "trigger": "camera_offline", "object_types": ["person"]}, "object_types"),
        ({"name": "x", "trigger": "camera_offline", "zone_ids": [str(uuid.uuid4())]}, "zone_ids"),
        ({"name": "x", "trigger": "camera_offline", "min_confidence": 0.5}, "min_confidence"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(api_client, body, field):
    response = post(api_client, body)

    assert field in error_fields(response)
    assert not AlertRule.objects.exists()
    assert not AuditLog.objects.filter(action="rule_created").exists()


def test_a_camera_offline_rule_may_use_cameras_and_schedule(api_client):
    response = post(
        api_client,
        {"name": "Offline", "trigger": "camera_offline", "camera_ids": ["garage"], "schedule": {"days": ["monday"]}},
    )

    assert response.status_code == 201, response.content
    assert response.json()["schedule"] == {"days": ["monday"], "start_time": None, "end_time": None, "timezone": "UTC"}


def test_get_and_404(api_client):
    rule = AlertRuleFactory(name="Porch")

    assert api_client.get(f"/api/alerts/rules/{rule.id}").json()["name"] == "Porch"
    assert api_client.get(f"/api/alerts/rules/{rule.id}/").status_code == 200
    problem(api_client.get(f"/api/alerts/rules/{uuid.uuid4()}"), 404, "not_found")
    assert api_client.get("/api/alerts/rules/not-a-uuid").status_code == 404


def test_list_filters_orders_and_pages(api_client):
    AlertRuleFactory(name="b", severity="low", enabled=False)
    AlertRuleFactory(name="a", severity="high")
    AlertRuleFactory(name="c", severity="critical", trigger="camera_offline", risk_threshold=None)

    names = lambda response: [item["name"] for item in response.json()["items"]]  # noqa: E731
    everything = api_client.get("/api/alerts/rules")
    assert names(everything) == ["a", "b", "c"]
    assert everything.json()["pagination"] == {
        "total": 3,
        "limit": 50,
        "offset": 0,
        "next_cursor": None,
        "has_more": False,
    }
    assert names(api_client.get("/api/alerts/rules?enabled=false")) == ["b"]
    assert names(api_client.get("/api/alerts/rules?severity=high,critical")) == ["a", "c"]
    assert names(api_client.get("/api/alerts/rules?trigger=camera_offline")) == ["c"]
    page = api_client.get("/api/alerts/rules?limit=1&offset=1").json()
    assert [item["name"] for item in page["items"]] == ["b"]
    assert page["pagination"]["has_more"] is True
    assert api_client.get("/api/alerts/rules?limit=1000").status_code == 200


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=1001", "limit"), ("enabled=maybe", "enabled"), ("severity=urgent", "severity")],
)
def test_list_rejects_bad_parameters(api_client, query, field):
    assert field in error_fields(api_client.get(f"/api/alerts/rules?{query}"))


def test_patch_changes_only_the_fields_sent_and_advances_updated_at(api_client):
    with time_machine.travel(T0, tick=False):
        rule = AlertRuleFactory(name="Porch", severity="low", risk_threshold=40, cooldown_seconds=60)
    with time_machine.travel(T0 + dt.timedelta(minutes=5), tick=False):
        response = api_client.patch(
            f"/api/alerts/rules/{rule.id}", {"severity": "critical", "risk_threshold": None}, format="json"
        )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["severity"], body["risk_threshold"], body["cooldown_seconds"]) == ("critical", None, 60)
    assert body["updated_at"] == "2024-05-01T12:05:00Z"
    audit = AuditLog.objects.get(action="rule_updated")
    assert audit.details["changes"] == {
        "severity": {"old": "low", "new": "critical"},
        "risk_threshold": {"old": 40, "new": None},
    }


def test_put_has_patch_semantics(api_client):
    rule = AlertRuleFactory(name="Porch", severity="low")

    response = api_client.put(f"/api/alerts/rules/{rule.id}", {"enabled": False}, format="json")

    assert response.status_code == 200
    assert (response.json()["enabled"], response.json()["name"], response.json()["severity"]) == (False, "Porch", "low")


def test_an_empty_patch_is_a_no_op(api_client):
    rule = AlertRuleFactory()
    before = api_client.get(f"/api/alerts/rules/{rule.id}").json()

    response = api_client.patch(f"/api/alerts/rules/{rule.id}", {}, format="json")

    assert response.json() == before
    assert not AuditLog.objects.filter(action="rule_updated").exists()


def test_patch_validates_against_the_stored_trigger(api_client):
    rule = AlertRuleFactory(trigger="camera_offline", risk_threshold=None)

    assert "risk_threshold" in error_fields(
        api_client.patch(f"/api/alerts/rules/{rule.id}", {"risk_threshold": 10}, format="json")
    )
    assert "trigger" not in error_fields(
        api_client.patch(
            f"/api/alerts/rules/{rule.id}", {"trigger": "camera_offline", "min_confidence": 1}, format="json"
        )
    )


def test_switching_a_rule_with_a_threshold_to_camera_offline_is_422(api_client):
    rule = AlertRuleFactory(risk_threshold=50)

    response = api_client.patch(f"/api/alerts/rules/{rule.id}", {"trigger": "camera_offline"}, format="json")

    assert "risk_threshold" in error_fields(response)
    ok = api_client.patch(
        f"/api/alerts/rules/{rule.id}", {"trigger": "camera_offline", "risk_threshold": None}, format="json"
    )
    assert ok.status_code == 200, ok.content


def test_patch_of_an_unknown_rule_is_404(api_client):
    problem(api_client.patch(f"/api/alerts/rules/{uuid.uuid4()}", {"name": "x"}, format="json"), 404, "not_found")


def test_delete_keeps_the_rules_alerts_without_a_rule(api_client):
    rule = AlertRuleFactory(name="Porch")
    alert = AlertFactory(rule=rule)

    response = api_client.delete(f"/api/alerts/rules/{rule.id}")

    assert response.status_code == 204
    assert not AlertRule.objects.filter(pk=rule.id).exists()
    alert.refresh_from_db()
    assert alert.rule_id is None
    detail = api_client.get(f"/api/alerts/{alert.id}").json()
    assert (detail["rule_id"], detail["rule_name"]) == (None, "Porch")
    audit = AuditLog.objects.get(action="rule_deleted")
    assert (audit.resource_type, audit.resource_id) == ("alert_rule", str(rule.id))
    problem(api_client.delete(f"/api/alerts/rules/{rule.id}"), 404, "not_found")
    assert Alert.objects.count() == 1
