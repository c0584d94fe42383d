"""/api/alerts: list, stats, detail with deliveries, acknowledge and dismiss (CONTRACT §2.7, §5.10, §0.7, §6.8)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import time_machine

from alerts.models import Alert
from system.models import AuditLog
from tests.factories import (
    AlertFactory,
    AlertRuleFactory,
    CameraFactory,
    DeliveryFactory,
    EventFactory,
    NotificationChannelFactory,
)
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
ALERT_KEYS = {
    "id",
    "kind",
    "rule_id",
    "rule_name",
    "event_id",
    "camera_id",
    "severity",
    "status",
    "dedup_key",
    "channels",
    "metadata",
    "version",
    "created_at",
    "updated_at",
    "delivered_at",
    "acknowledged_at",
    "dismissed_at",
}


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def alert(**fields):
    return AlertFactory(**fields)


# --- list ---------------------------------------------------------------------------------------------------------


def test_list_is_newest_first_with_the_contract_fields(api_client):
    old = alert(created_at=at(0))
    new = alert(created_at=at(5))

    response = api_client.get("/api/alerts")

    assert ids(response) == [str(new.id), str(old.id)]
    assert set(response.json()["items"][0]) == ALERT_KEYS
    assert response.json()["pagination"] == {
        "total": 2,
        "limit": 50,
        "offset": 0,
        "next_cursor": None,
        "has_more": False,
    }


def test_list_filters(api_client):
    front = CameraFactory(id="front_door")
    garage = CameraFactory(id="garage")
    rule = AlertRuleFactory()
    event = EventFactory(camera=front)
    a = alert(event=event, camera=front, rule=rule, severity="critical", status="acknowledged", created_at=at(0))
    b = alert(event=EventFactory(camera=garage), camera=garage, severity="low", created_at=at(10))
    c = Alert.objects.create(
        kind="camera_offline", camera=garage, severity="medium", dedup_key="garage:x", created_at=at(20)
    )

    assert ids(api_client.get("/api/alerts?status=acknowledged")) == [str(a.id)]
    assert ids(api_client.get("/api/alerts?status=pending,acknowledged")) == [str(c.id), str(b.id), str(a.id)]
    assert ids(api_client.get("/api/alerts?severity=critical,low")) == [str(b.id), str(a.id)]
    assert ids(api_client.get("/api/alerts?kind=camera_offline")) == [str(c.id)]
    assert ids(api_client.get("/api/alerts?camera_id=garage")) == [str(c.id), str(b.id)]
    assert ids(api_client.get("/api/alerts?camera_id=front_door,nowhere")) == [str(a.id)]
    assert ids(api_client.get(f"/api/alerts?rule_id={rule.id}")) == [str(a.id)]
    assert ids(api_client.get(f"/api/alerts?event_id={event.id}")) == [str(a.id)]
    assert ids(api_client.get("/api/alerts?start_date=2024-05-01T12:05:00Z&end_date=2024-05-01T12:15:00Z")) == [
        str(b.id)
    ]
    assert ids(api_client.get("/api/alerts?end_date=2024-05-01")) == [str(c.id), str(b.id), str(a.id)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=open", "status"),
        ("severity=urgent", "severity"),
        ("kind=motion", "kind"),
        ("rule_id=nope", "rule_id"),
        ("event_id=abc", "event_id"),
        ("event_id=1.5", "event_id"),
        ("start_date=yesterday", "start_date"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("offset=-1", "offset"),
    ],
)
def test_list_rejects_bad_parameters(api_client, query, field):
    assert field in error_fields(api_client.get(f"/api/alerts?{query}"))


def test_list_inverted_dates_are_400(api_client):
    problem(api_client.get("/api/alerts?start_date=2024-05-02&end_date=2024-05-01"), 400, "bad_request")


def test_list_pages(api_client):
    made = [alert(created_at=at(minute)) for minute in range(3)]

    page = api_client.get("/api/alerts?limit=2&offset=1").json()

    assert [item["id"] for item in page["items"]] == [str(made[1].id), str(made[0].id)]
    assert page["pagination"]["has_more"] is False
    assert api_client.get("/api/alerts?limit=2").json()["pagination"]["has_more"] is True


# --- stats --------------------------------------------------------------------------------------------------------


def test_stats_count_by_status_severity_and_the_last_day(api_client):
    with time_machine.travel(T0, tick=False):
        alert(status="pending", severity="high", created_at=at(-60 * 25))
        alert(status="delivered", severity="high", created_at=at(-60))
        alert(status="dismissed", severity="critical", created_at=at(-1))

        response = api_client.get("/api/alerts/stats")

    assert response.status_code == 200
    assert response.json() == {
        "by_status": {"pending": 1, "delivered": 1, "acknowledged": 0, "dismissed": 1},
        "by_severity": {"low": 0, "medium": 0, "high": 2, "critical": 1},
        "last_24h": 2,
    }


# --- detail -------------------------------------------------------------------------------------------------------


def test_detail_lists_the_deliveries(api_client):
    the_alert = alert()
    channel = NotificationChannelFactory(name="Ops hook", kind="webhook")
    delivery = DeliveryFactory(
        alert=the_alert, channel=channel, status="suppressed", suppressed_reason="quiet_hours", attempts=0
    )

    response = api_client.get(f"/api/alerts/{the_alert.id}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == ALERT_KEYS | {"deliveries"}
    assert body["deliveries"] == [
        {
            "id": delivery.id,
            "channel_id": str(channel.id),
            "channel_name": "Ops hook",
            "kind": "webhook",
            "status": "suppressed",
            "suppressed_reason": "quiet_hours",
            "attempts": 0,
            "sent_at": None,
            "last_error": "",
        }
    ]


def test_detail_404s(api_client):
    problem(api_client.get(f"/api/alerts/{uuid.uuid4()}"), 404, "not_found")
    assert api_client.get("/api/alerts/not-a-uuid").status_code == 404


# --- acknowledge / dismiss ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "delivered"])
def test_acknowledge_from_pending_or_delivered(api_client, django_capture_on_commit_callbacks, events_stream, status):
    the_alert = alert(status=status)

    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            f"/api/alerts/{the_alert.id}/acknowledge", {"version": 1, "note": "seen it"}, format="json"
        )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["version"], body["acknowledged_at"]) == ("acknowledged", 2, "2024-05-01T12:00:00Z")
    assert body["metadata"]["ack_note"] == "seen it"
    audit = AuditLog.objects.get(action="alert_acknowledged")
    assert (audit.resource_type, audit.resource_id, audit.status) == ("alert", str(the_alert.id), "success")
    messages = [m for m in events_stream.drain() if m["type"] == "alert.acknowledged"]
    assert [m["data"]["id"] for m in messages] == [str(the_alert.id)]
    assert messages[0]["data"]["status"] == "acknowledged"


@pytest.mark.parametrize("status", ["acknowledged", "dismissed"])
def test_acknowledge_from_other_states_is_409_and_audited(api_client, status):
    the_alert = alert(status=status)

    response = api_client.post(f"/api/alerts/{the_alert.id}/acknowledge", {}, format="json")

    body = problem(response, 409, "invalid_state")
    assert body["detail"] == f"Alert cannot be acknowledged. Current status: {status}"
    the_alert.refresh_from_db()
    assert (the_alert.status, the_alert.version) == (status, 1)
    assert AuditLog.objects.get(action="alert_acknowledged").status == "failure"


def test_acknowledge_with_a_stale_version_is_409(api_client):
    the_alert = alert(version=3)

    body = problem(
        api_client.post(f"/api/alerts/{the_alert.id}/acknowledge", {"version": 2}, format="json"),
        409,
        "version_conflict",
    )

    assert body["current_version"] == 3
    the_alert.refresh_from_db()
    assert the_alert.status == "pending"


def test_acknowledge_without_a_version_always_applies(api_client):
    the_alert = alert(version=7)

    response = api_client.post(f"/api/alerts/{the_alert.id}/acknowledge", format="json")

    assert response.status_code == 200
    assert response.json()["version"] == 8
    assert "ack_note" not in response.json()["metadata"]


@pytest.mark.parametrize("status", ["pending", "delivered", "acknowledged"])
def test_dismiss_from_any_state_but_dismissed(api_client, django_capture_on_commit_callbacks, events_stream, status):
    the_alert = alert(status=status)

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(f"/api/alerts/{the_alert.id}/dismiss", {"note": "false alarm"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["version"]) == ("dismissed", 2)
    assert body["dismissed_at"] is not None
    assert body["metadata"]["dismiss_note"] == "false alarm"
    assert AuditLog.objects.get(action="alert_dismissed").status == "success"
    assert [m["data"]["id"] for m in events_stream.drain() if m["type"] == "alert.dismissed"] == [str(the_alert.id)]


def test_dismissing_twice_is_409(api_client):
    the_alert = alert(status="dismissed")

    problem(api_client.post(f"/api/alerts/{the_alert.id}/dismiss", {}, format="json"), 409, "invalid_state")
    assert AuditLog.objects.get(action="alert_dismissed").status == "failure"


def test_dismiss_with_a_stale_version_is_409_changes_nothing_and_is_audited(
    api_client, django_capture_on_commit_callbacks, events_stream
):
    the_alert = alert(status="acknowledged", version=2, metadata={"rule_name": "r", "ack_note": "seen"})
    before = (the_alert.status, the_alert.version, the_alert.dismissed_at, the_alert.metadata, the_alert.updated_at)

    with django_capture_on_commit_callbacks(execute=True):
        body = problem(
            api_client.post(f"/api/alerts/{the_alert.id}/dismiss", {"version": 1, "note": "late"}, format="json"),
            409,
            "version_conflict",
        )

    assert body["current_version"] == 2
    the_alert.refresh_from_db()
    after = (the_alert.status, the_alert.version, the_alert.dismissed_at, the_alert.metadata, the_alert.updated_at)
    assert after == before
    (row,) = AuditLog.objects.filter(action="alert_dismissed")
    assert (row.status, row.resource_type, row.resource_id) == ("failure", "alert", str(the_alert.id))
    assert row.details["version"] == 2
    assert [m for m in events_stream.drain() if m["type"] == "alert.dismissed"] == []


def test_the_full_lifecycle(api_client):
    the_alert = alert()

    ack = api_client.post(f"/api/alerts/{the_alert.id}/acknowledge", {"version": 1}, format="json").json()
    dismissed = api_client.post(f"/api/alerts/{the_alert.id}/dismiss", {"version": ack["version"]}, format="json")

    assert dismissed.json()["status"] == "dismissed"
    assert dismissed.json()["acknowledged_at"] == ack["acknowledged_at"]
    assert dismissed.json()["version"] == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [({"note": "n" * 1001}, "note"), ({"note": 5}, "note"), ({"version": "1"}, "version"), ({"version": 0}, "version")],
)
@pytest.mark.parametrize("action", ["acknowledge", "dismiss"])
def test_action_bodies_are_validated(api_client, body, field, action):
    the_alert = alert()

    assert field in error_fields(api_client.post(f"/api/alerts/{the_alert.id}/{action}", body, format="json"))
    the_alert.refresh_from_db()
    assert the_alert.status == "pending"


def test_a_note_of_1000_characters_is_accepted(api_client):
    the_alert = alert()

    response = api_client.post(f"/api/alerts/{the_alert.id}/acknowledge", {"note": "n" * 1000}, format="json")

    assert response.status_code == 200


@pytest.mark.parametrize("action", ["acknowledge", "dismiss"])
def test_actions_on_unknown_alerts_are_404(api_client, action):
    problem(api_client.post(f"/api/alerts/{uuid.uuid4()}/{action}", {}, format="json"), 404, "not_found")
