"""POST /api/alerts/rules/{id}/test and /api/alerts/rules/backtest (CONTRACT §2.7, §10): shapes, limits,
``test_time``, skipped reasons, no alerts created, cooldown simulation, by_day / by_camera / sample, audit."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import time_machine

from alerts.models import Alert
from system.models import AuditLog
from tests.factories import AlertRuleFactory, CameraFactory, DetectionFactory, EventFactory
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2024, 5, 10, 12, 0, tzinfo=dt.UTC)
ITEM_KEYS = {
    "event_id",
    "camera_id",
    "started_at",
    "risk_score",
    "object_types",
    "matches",
    "matched_conditions",
    "skipped_reason",
    "would_be_suppressed",
}


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def camera():
    return CameraFactory(id="front_door")


def make_event(camera, *, at, risk_score=60, object_type="person", **fields):
    detection = DetectionFactory(camera=camera, detected_at=at, object_type=object_type)
    event = EventFactory(camera=camera, risk_score=risk_score, detections=[detection])
    if fields:
        type(event).objects.filter(pk=event.pk).update(**fields)
        event.refresh_from_db()
    return event


def hours_ago(hours: float) -> dt.datetime:
    return NOW - dt.timedelta(hours=hours)


# --- rule test --------------------------------------------------------------------------------------------------


def test_test_evaluates_chosen_events_without_creating_alerts(api_client, camera):
    rule = AlertRuleFactory(name="High risk", risk_threshold=50, enabled=False)  # disabled rules are tested too
    high = make_event(camera, at=hours_ago(2), risk_score=70)
    low = make_event(camera, at=hours_ago(1), risk_score=20)

    response = api_client.post(
        f"/api/alerts/rules/{rule.id}/test", {"event_ids": [high.id, low.id, 999_999]}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert {key: body[key] for key in ("rule_id", "rule_name", "events_tested", "events_matched", "match_rate")} == {
        "rule_id": str(rule.id),
        "rule_name": "High risk",
        "events_tested": 2,
        "events_matched": 1,
        "match_rate": 0.5,
    }
    first, second = body["results"]
    assert set(first) == ITEM_KEYS
    assert first == {
        "event_id": high.id,
        "camera_id": "front_door",
        "started_at": high.started_at.isoformat().replace("+00:00", "Z"),
        "risk_score": 70,
        "object_types": ["person"],
        "matches": True,
        "matched_conditions": ["risk_score >= 50"],
        "skipped_reason": None,
        "would_be_suppressed": False,
    }
    assert (second["event_id"], second["matches"], second["skipped_reason"]) == (low.id, False, "not_matched")
    assert not Alert.objects.exists()
    audit = AuditLog.objects.get(action="rule_tested")
    assert (audit.resource_type, audit.resource_id) == ("alert_rule", str(rule.id))


def test_test_defaults_to_the_ten_latest_live_events(api_client, camera):
    rule = AlertRuleFactory(risk_threshold=None)
    events = [make_event(camera, at=hours_ago(hours)) for hours in range(12, 0, -1)]
    make_event(camera, at=hours_ago(0.5), deleted_at=NOW)

    body = api_client.post(f"/api/alerts/rules/{rule.id}/test", {}, format="json").json()

    assert [item["event_id"] for item in body["results"]] == [event.id for event in reversed(events[-10:])]
    assert (body["events_tested"], body["match_rate"]) == (10, 1.0)
    limited = api_client.post(f"/api/alerts/rules/{rule.id}/test", {"limit": 3}, format="json").json()
    assert limited["events_tested"] == 3


def test_test_time_overrides_the_schedule_clock(api_client, camera):
    nights = {"days": [], "start_time": "22:00", "end_time": "06:00", "timezone": "UTC"}
    rule = AlertRuleFactory(risk_threshold=None, schedule=nights)
    event = make_event(camera, at=NOW)  # noon

    plain = api_client.post(f"/api/alerts/rules/{rule.id}/test", {"event_ids": [event.id]}, format="json").json()
    at_night = api_client.post(
        f"/api/alerts/rules/{rule.id}/test",
        {"event_ids": [event.id], "test_time": "2024-05-10T23:00:00Z"},
        format="json",
    ).json()

    assert plain["results"][0]["matches"] is False
    assert at_night["results"][0]["matched_conditions"] == ["within_schedule"]


def test_test_ignores_cooldown_and_reports_suppression(api_client, camera):
    rule = AlertRuleFactory(risk_threshold=None, cooldown_seconds=3600)
    suppressed = make_event(camera, at=hours_ago(1), suppressed=True)
    Alert.objects.create(rule=rule, camera=camera, dedup_key=f"front_door:{rule.id}", created_at=NOW)

    item = api_client.post(f"/api/alerts/rules/{rule.id}/test", {"event_ids": [suppressed.id]}, format="json").json()[
        "results"
    ][0]

    assert (item["matches"], item["would_be_suppressed"]) == (True, True)


def test_test_with_no_events_has_a_zero_match_rate(api_client):
    rule = AlertRuleFactory()

    body = api_client.post(f"/api/alerts/rules/{rule.id}/test", {"event_ids": [424242]}, format="json").json()

    assert (body["events_tested"], body["events_matched"], body["match_rate"], body["results"]) == (0, 0, 0.0, [])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_ids": list(range(1, 102))}, "event_ids"),
        ({"event_ids": ["1"]}, "event_ids.0"),
        ({"event_ids": "1,2"}, "event_ids"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"test_time": "noon"}, "test_time"),
    ],
)
def test_test_validates_its_body(api_client, body, field):
    rule = AlertRuleFactory()

    assert field in error_fields(api_client.post(f"/api/alerts/rules/{rule.id}/test", body, format="json"))


def test_test_of_an_unknown_rule_is_404(api_client):
    problem(api_client.post(f"/api/alerts/rules/{uuid.uuid4()}/test", {}, format="json"), 404, "not_found")


def test_test_match_rate_has_four_decimals(api_client, camera):
    rule = AlertRuleFactory(risk_threshold=50)
    events = [make_event(camera, at=hours_ago(4), risk_score=70)] + [
        make_event(camera, at=hours_ago(hours), risk_score=10) for hours in (3, 2)
    ]

    body = api_client.post(
        f"/api/alerts/rules/{rule.id}/test", {"event_ids": [event.id for event in events]}, format="json"
    ).json()

    assert body["match_rate"] == 0.3333


# --- backtest ---------------------------------------------------------------------------------------------------


def test_backtest_simulates_cooldown_in_chronological_order(api_client, camera):
    garage = CameraFactory(id="garage")
    rule = AlertRuleFactory(risk_threshold=50, cooldown_seconds=600)
    day_one = dt.datetime(2024, 5, 8, 9, 0, tzinfo=dt.UTC)
    make_event(camera, at=day_one)  # fires
    make_event(camera, at=day_one + dt.timedelta(minutes=5))  # in cooldown
    make_event(camera, at=day_one + dt.timedelta(minutes=10))  # exactly 600 s later: fires
    make_event(garage, at=day_one + dt.timedelta(minutes=6))  # another key: fires
    make_event(camera, at=day_one + dt.timedelta(days=1), risk_score=10)  # no match
    last = make_event(camera, at=day_one + dt.timedelta(days=1, hours=1))  # fires
    make_event(camera, at=day_one, deleted_at=NOW)  # soft-deleted: excluded
    make_event(camera, at=NOW - dt.timedelta(days=8))  # before the period

    response = api_client.post("/api/alerts/rules/backtest", {"rule_id": str(rule.id)}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["rule_id"] == str(rule.id)
    assert (body["period_start"], body["period_end"]) == ("2024-05-03T12:00:00Z", "2024-05-10T12:00:00Z")
    assert (body["events_evaluated"], body["events_matched"], body["alerts_would_fire"]) == (6, 5, 4)
    assert body["by_day"] == [
        {"date": "2024-05-08", "matched": 4, "would_fire": 3},
        {"date": "2024-05-09", "matched": 1, "would_fire": 1},
    ]
    assert body["by_camera"] == {"front_door": 3, "garage": 1}
    assert body["sample"][0]["event_id"] == last.id  # newest first
    assert len(body["sample"]) == 5
    assert not Alert.objects.exists()
    audit = AuditLog.objects.get(action="rule_backtested")
    assert (audit.resource_type, audit.resource_id) == ("alert_rule", str(rule.id))


def test_backtest_without_cooldown_counts_every_match(api_client, camera):
    rule = AlertRuleFactory(risk_threshold=None, cooldown_seconds=3600)
    for minutes in (0, 1, 2):
        make_event(camera, at=hours_ago(5) + dt.timedelta(minutes=minutes))

    body = api_client.post(
        "/api/alerts/rules/backtest", {"rule_id": str(rule.id), "respect_cooldown": False}, format="json"
    ).json()

    assert (body["events_matched"], body["alerts_would_fire"]) == (3, 3)


def test_backtest_of_an_unsaved_rule(api_client, camera):
    make_event(camera, at=hours_ago(30), object_type="car")
    make_event(camera, at=hours_ago(20), object_type="person")

    body = api_client.post(
        "/api/alerts/rules/backtest", {"rule": {"name": "cars", "object_types": ["Car"]}, "days": 2}, format="json"
    ).json()

    assert body["rule_id"] is None
    assert (body["events_evaluated"], body["events_matched"], body["alerts_would_fire"]) == (2, 1, 1)
    assert body["sample"][0]["matched_conditions"] == ["object_type in [car]"]


def test_backtest_with_a_date_range(api_client, camera):
    rule = AlertRuleFactory(risk_threshold=None)
    make_event(camera, at=dt.datetime(2024, 5, 1, 23, 0, tzinfo=dt.UTC))
    make_event(camera, at=dt.datetime(2024, 5, 2, 1, 0, tzinfo=dt.UTC))

    body = api_client.post(
        "/api/alerts/rules/backtest",
        {"rule_id": str(rule.id), "start_date": "2024-05-01", "end_date": "2024-05-01"},
        format="json",
    ).json()

    assert (body["period_start"], body["period_end"]) == ("2024-05-01T00:00:00Z", "2024-05-01T23:59:59.999999Z")
    assert body["events_evaluated"] == 1


def test_backtest_sample_is_at_most_fifty(api_client, camera):
    rule = AlertRuleFactory(risk_threshold=None, cooldown_seconds=0)
    for minutes in range(55):
        make_event(camera, at=hours_ago(3) + dt.timedelta(minutes=minutes))

    body = api_client.post("/api/alerts/rules/backtest", {"rule_id": str(rule.id)}, format="json").json()

    assert (body["events_matched"], body["alerts_would_fire"], len(body["sample"])) == (55, 55, 50)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "rule_id"),
        ({"rule_id": "nope"}, "rule_id"),
        ({"rule": {"severity": "low"}}, "rule.name"),
        ({"rule": {"name": "x", "risk_threshold": 500}}, "rule.risk_threshold"),
        ({"rule": {"name": "x", "trigger": "camera_offline", "min_confidence": 0.5}}, "rule.min_confidence"),
        ({"rule": {"name": "x"}, "days": 0}, "days"),
        ({"rule": {"name": "x"}, "days": 91}, "days"),
        ({"rule": {"name": "x"}, "start_date": "soon"}, "start_date"),
        ({"rule": {"name": "x"}, "respect_cooldown": "yes"}, "respect_cooldown"),
    ],
)
def test_backtest_validates_its_body(api_client, body, field):
    assert field in error_fields(api_client.post("/api/alerts/rules/backtest", body, format="json"))
    assert not AuditLog.objects.filter(action="rule_backtested").exists()


def test_backtest_errors(api_client):
    problem(
        api_client.post("/api/alerts/rules/backtest", {"rule_id": str(uuid.uuid4())}, format="json"), 404, "not_found"
    )
    problem(
        api_client.post(
            "/api/alerts/rules/backtest",
            {"rule": {"name": "x"}, "start_date": "2024-05-02", "end_date": "2024-05-01"},
            format="json",
        ),
        400,
        "bad_request",
    )
