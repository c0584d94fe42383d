"""``alerts.evaluate_event`` against real PostgreSQL (CONTRACT §5.2–5.4, §5.6): alerts created with their
metadata, rule order, zones read at evaluation time, dedup keys, cooldown windows, channels, idempotency,
concurrency, broken rules, suppressed events, after-commit side effects."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import uuid

import pytest
import time_machine
from django.db import DatabaseError, connection, connections, transaction

from alerts.models import Alert, AlertRule, Delivery
from alerts.services.alerts import alerts_evaluate_event
from alerts.tasks import evaluate_event
from tests.factories import (
    AlertRuleFactory,
    CameraFactory,
    DetectionFactory,
    EventFactory,
    NotificationChannelFactory,
    ZoneFactory,
)
from tests.fakes.http_fake import FakeHttpServer, Reply
from tests.integration.alerts.refusing_triggers import refuse_inserts
from tests.integration.metrics_support import scraped

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 5, 3, 22, 30, tzinfo=dt.UTC)  # a Friday evening


class WebhookReceiver(FakeHttpServer):
    def default_reply(self, request):
        return Reply(status=200, json={"ok": True})


@pytest.fixture
def camera():
    return CameraFactory(id="front_door", name="Front Door")


def make_event(camera, *, risk_score=80, detections=(("person", 0.9),), at=T0, box=(100, 100, 50, 120)):
    rows = [
        DetectionFactory(
            camera=camera,
            object_type=object_type,
            confidence=confidence,
            detected_at=at + dt.timedelta(seconds=index),
            bbox_x=box[0],
            bbox_y=box[1],
            bbox_width=box[2],
            bbox_height=box[3],
            image_width=1000,
            image_height=1000,
        )
        for index, (object_type, confidence) in enumerate(detections)
    ]
    return EventFactory(camera=camera, risk_score=risk_score, risk_level="high", detections=rows)


def rule(**fields):
    values = {"risk_threshold": None, "severity": "high", "channels": [], "cooldown_seconds": 300}
    values.update(fields)
    return AlertRuleFactory(**values)


def evaluate(event, capture):
    with capture(execute=True):
        return alerts_evaluate_event(event.id)


def test_a_matching_rule_creates_one_pending_alert_with_its_metadata(camera, django_capture_on_commit_callbacks):
    night = rule(name="Night person", risk_threshold=70, object_types=["person"], min_confidence=0.8)
    event = make_event(camera, detections=[("car", 0.95), ("person", 0.85)])

    created = evaluate(event, django_capture_on_commit_callbacks)

    alert = Alert.objects.get()
    assert created == [alert.id]
    assert (alert.kind, alert.event_id, alert.camera_id, alert.rule_id) == ("event", event.id, "front_door", night.id)
    assert (alert.severity, alert.status, alert.version, alert.channels) == ("high", "pending", 1, [])
    assert alert.dedup_key == f"front_door:{night.id}"
    assert alert.metadata == {
        "rule_name": "Night person",
        "matched_conditions": ["risk_score >= 70", "object_type in [person]", "confidence >= 0.8"],
        "object_type": "person",
        "matched_zone_ids": [],
    }


def test_non_matching_and_disabled_rules_create_nothing(camera, django_capture_on_commit_callbacks):
    rule(risk_threshold=90)
    rule(enabled=False)
    rule(trigger="camera_offline")

    assert evaluate(make_event(camera, risk_score=80), django_capture_on_commit_callbacks) == []
    assert not Alert.objects.exists()


def test_a_missing_event_creates_nothing():
    rule()

    assert alerts_evaluate_event(999_999) == []
    assert evaluate_event.run(999_999) == []


def test_several_rules_fire_in_severity_then_name_order(camera, django_capture_on_commit_callbacks):
    low = rule(name="a-low", severity="low")
    critical = rule(name="z-critical", severity="critical")
    high_b = rule(name="b-high", severity="high")
    high_a = rule(name="a-high", severity="high")

    created = evaluate(make_event(camera), django_capture_on_commit_callbacks)

    rules_in_order = [Alert.objects.get(pk=alert_id).rule_id for alert_id in created]
    assert rules_in_order == [critical.id, high_a.id, high_b.id, low.id]


def test_the_task_returns_alert_ids_as_text(camera, django_capture_on_commit_callbacks):
    rule()
    event = make_event(camera)

    with django_capture_on_commit_callbacks(execute=True):
        result = evaluate_event.run(event.id)

    assert result == [str(Alert.objects.get().id)]


def test_zone_rules_use_enabled_zones_of_the_event_camera(camera, django_capture_on_commit_callbacks):
    porch = ZoneFactory(camera=camera, name="Porch", coordinates=[[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]])
    disabled = ZoneFactory(camera=camera, enabled=False, coordinates=[[0, 0], [1, 0], [1, 1], [0, 1]])
    elsewhere = ZoneFactory(coordinates=[[0, 0], [1, 0], [1, 1], [0, 1]])  # another camera's zone
    rule(name="porch", zone_ids=[str(porch.id)], dedup_key_template="{camera_id}:{object_type}:porch")
    rule(name="disabled", zone_ids=[str(disabled.id)])
    rule(name="elsewhere", zone_ids=[str(elsewhere.id)])

    evaluate(make_event(camera, box=(100, 100, 50, 120)), django_capture_on_commit_callbacks)

    alert = Alert.objects.get()
    assert alert.metadata["rule_name"] == "porch"
    assert alert.metadata["matched_zone_ids"] == [str(porch.id)]
    assert alert.metadata["matched_conditions"] == [f"zone in [{porch.id}]"]
    assert alert.dedup_key == "front_door:person:porch"


def test_a_zone_deleted_before_evaluation_never_matches(camera, django_capture_on_commit_callbacks):
    porch = ZoneFactory(camera=camera)
    rule(zone_ids=[str(porch.id)])
    event = make_event(camera)
    porch.delete()

    assert evaluate(event, django_capture_on_commit_callbacks) == []


def test_schedule_is_evaluated_at_the_event_start(camera, django_capture_on_commit_callbacks):
    rule(
        name="friday nights",
        schedule={"days": ["friday"], "start_time": "22:00", "end_time": "06:00", "timezone": "UTC"},
    )
    rule(name="mornings", schedule={"days": [], "start_time": "06:00", "end_time": "09:00", "timezone": "UTC"})

    evaluate(make_event(camera, at=T0), django_capture_on_commit_callbacks)

    assert [alert.metadata["rule_name"] for alert in Alert.objects.all()] == ["friday nights"]
    assert Alert.objects.get().metadata["matched_conditions"] == ["within_schedule"]


def test_without_detection_conditions_the_object_type_is_none(camera, django_capture_on_commit_callbacks):
    no_detection_rule = rule(risk_threshold=10, dedup_key_template="{camera_id}:{object_type}:{severity}")

    evaluate(make_event(camera), django_capture_on_commit_callbacks)

    alert = Alert.objects.get(rule=no_detection_rule)
    assert alert.dedup_key == "front_door:none:high"
    assert alert.metadata["object_type"] is None


def test_a_rule_that_raises_is_skipped_and_the_others_still_fire(camera, django_capture_on_commit_callbacks, caplog):
    AlertRule.objects.filter(pk=rule(name="broken").pk).update(schedule={"start_time": "late", "end_time": "x"})
    healthy = rule(name="healthy")

    with caplog.at_level(logging.ERROR, logger="hsi.alerts"):
        evaluate(make_event(camera), django_capture_on_commit_callbacks)

    assert [alert.rule_id for alert in Alert.objects.all()] == [healthy.id]
    assert any("evaluation_error" in record.getMessage() for record in caplog.records)


# --- channels ---------------------------------------------------------------------------------------------------


def test_null_channels_resolve_to_every_enabled_channel_now(camera, django_capture_on_commit_callbacks):
    first = NotificationChannelFactory(name="a")
    second = NotificationChannelFactory(name="b")
    NotificationChannelFactory(name="off", enabled=False)
    everything = rule(channels=None)
    nothing = rule(channels=[])
    event = make_event(camera)

    with django_capture_on_commit_callbacks(execute=False):  # the resolved list only; no delivery side effects
        alerts_evaluate_event(event.id)

    assert sorted(Alert.objects.get(rule=everything).channels) == sorted([str(first.id), str(second.id)])
    assert Alert.objects.get(rule=nothing).channels == []


def test_delivery_rows_are_written_with_the_alert_and_only_the_send_waits_for_the_commit(
    camera, django_capture_on_commit_callbacks, settings
):
    """A crash right after the alert commits (no after-commit callback ever runs) loses no notification: the
    Delivery rows are already there, due, for the sweep; the send itself happens only after the commit."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.NOTIFICATIONS_ENABLED = True
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    receiver = WebhookReceiver().start()
    try:
        enabled = NotificationChannelFactory(name="phone", config={"url": f"{receiver.url}/hook"})
        disabled = NotificationChannelFactory(name="off", enabled=False)
        rule(channels=[str(enabled.id), str(disabled.id)])

        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            alerts_evaluate_event(make_event(camera).id)

        alert = Alert.objects.get()
        rows = {row.channel_id: row for row in Delivery.objects.filter(alert=alert)}
        assert (rows[enabled.id].status, rows[enabled.id].next_attempt_at) == ("pending", None)
        assert (rows[disabled.id].status, rows[disabled.id].suppressed_reason) == ("suppressed", "channel_disabled")
        assert receiver.requests == []  # nothing sent before the commit

        for callback in callbacks:
            callback()

        rows[enabled.id].refresh_from_db()
        assert rows[enabled.id].status == "sent"
        assert len(receiver.requests_to("/hook")) == 1
    finally:
        receiver.stop()


def test_an_alert_rolled_back_leaves_no_delivery_rows(camera, django_capture_on_commit_callbacks):
    channel = NotificationChannelFactory(enabled=False)
    rule(channels=[str(channel.id)])
    event = make_event(camera)

    with django_capture_on_commit_callbacks(execute=False), pytest.raises(RuntimeError), transaction.atomic():
        alerts_evaluate_event(event.id)
        assert Delivery.objects.count() == 1
        raise RuntimeError("the worker dies before the commit")

    assert (Alert.objects.count(), Delivery.objects.count()) == (0, 0)


# --- failures of one rule (§5.2: other rules continue) ----------------------------------------------------------


def test_a_rule_whose_alert_insert_fails_is_skipped_and_the_later_rules_still_fire(
    camera, django_capture_on_commit_callbacks, caplog, events_stream
):
    refuse_inserts("alerts_alert", "NEW.metadata->>'rule_name' = 'explodes'")
    rule(name="explodes", severity="critical")  # evaluated first (descending severity)
    healthy = rule(name="healthy", severity="high")
    also_healthy = rule(name="later", severity="low")

    with caplog.at_level(logging.ERROR, logger="hsi.alerts"):
        created = evaluate(make_event(camera), django_capture_on_commit_callbacks)

    assert sorted(Alert.objects.values_list("rule__name", flat=True)) == ["healthy", "later"]
    assert sorted(created) == sorted(Alert.objects.values_list("id", flat=True))
    assert {Alert.objects.get(pk=alert_id).rule_id for alert_id in created} == {healthy.id, also_healthy.id}
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "explodes" in errors[0].getMessage() and "evaluation_error" in errors[0].getMessage()
    broadcast = [m["data"]["rule_id"] for m in events_stream.drain() if m["type"] == "alert.created"]
    assert sorted(broadcast) == sorted([str(healthy.id), str(also_healthy.id)])


def test_a_failing_delivery_insert_rolls_back_only_that_rules_alert(camera, django_capture_on_commit_callbacks):
    doomed = NotificationChannelFactory(name="doomed", enabled=False)
    fine = NotificationChannelFactory(name="fine", enabled=False)
    refuse_inserts("alerts_delivery", f"NEW.channel_id = '{doomed.id}'")
    rule(name="to doomed", severity="critical", channels=[str(doomed.id)])
    survivor = rule(name="to fine", severity="high", channels=[str(fine.id)])

    evaluate(make_event(camera), django_capture_on_commit_callbacks)

    (alert,) = Alert.objects.all()
    assert alert.rule_id == survivor.id
    assert list(Delivery.objects.values_list("alert_id", "channel_id")) == [(alert.id, fine.id)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="lock_timeout needs PostgreSQL")
def test_the_event_is_still_published_to_mqtt_when_its_evaluation_fails(settings):
    """``alerts.evaluate_event`` hands the event to MQTT channels that publish events even when the evaluation
    itself raises: here the rules cannot be read (another transaction holds their table; ``lock_timeout``)."""
    import psycopg

    from alerts.transports import mqtt
    from tests.fakes.mqtt_broker import FakeMqttBroker

    settings.CELERY_TASK_ALWAYS_EAGER = True
    broker = FakeMqttBroker().start()
    camera = CameraFactory(id="front_door")
    NotificationChannelFactory(
        kind="mqtt", publish_events=True, config={"broker_url": broker.url, "topic_prefix": "house", "discovery": False}
    )
    rule(name="unreadable")
    event = make_event(camera)
    settings_dict = connection.settings_dict
    holder = psycopg.connect(
        host=settings_dict["HOST"] or "127.0.0.1",
        port=settings_dict["PORT"] or 5432,
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"] or None,
        dbname=settings_dict["NAME"],
        autocommit=False,
    )
    try:
        holder.execute("LOCK TABLE alerts_alertrule IN ACCESS EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")

        with pytest.raises(DatabaseError):
            evaluate_event(event.id)

        published = json.loads(broker.wait_for_message("house/events").payload)
        assert published["id"] == event.id
    finally:
        holder.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
        mqtt.connections_close()
        broker.stop()


# --- after commit -----------------------------------------------------------------------------------------------


def test_alert_created_is_broadcast_and_counted(camera, django_capture_on_commit_callbacks, events_stream):
    rule(severity="critical")
    before = scraped("hsi_alerts_created", severity="critical")

    evaluate(make_event(camera), django_capture_on_commit_callbacks)

    alert = Alert.objects.get()
    messages = [m for m in events_stream.drain() if m["type"] == "alert.created"]
    assert [m["data"]["id"] for m in messages] == [str(alert.id)]
    assert messages[0]["data"]["status"] == "pending"
    assert scraped("hsi_alerts_created", severity="critical") == before + 1


def test_nothing_is_broadcast_before_commit(camera, django_capture_on_commit_callbacks, events_stream):
    rule()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        alerts_evaluate_event(make_event(camera).id)

    assert callbacks
    assert [m for m in events_stream.drain() if m["type"] == "alert.created"] == []


# --- suppression (§5.6) -----------------------------------------------------------------------------------------


def test_a_suppressed_event_creates_no_alert(camera, django_capture_on_commit_callbacks):
    rule()
    event = make_event(camera)
    type(event).objects.filter(pk=event.pk).update(suppressed=True)

    assert evaluate(event, django_capture_on_commit_callbacks) == []
    assert not Alert.objects.exists()


# --- idempotency ------------------------------------------------------------------------------------------------


def test_evaluating_the_same_event_twice_creates_one_alert_per_rule(camera, django_capture_on_commit_callbacks):
    rule(cooldown_seconds=0)  # even without a cooldown
    event = make_event(camera)

    first = evaluate(event, django_capture_on_commit_callbacks)
    second = evaluate(event, django_capture_on_commit_callbacks)

    assert len(first) == 1
    assert second == []
    assert Alert.objects.count() == 1


# --- cooldown ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds_later", "fires_again"),
    [(1, False), (299, False), (300, True), (301, True)],
)
def test_cooldown_blocks_the_same_key_until_exactly_cooldown_seconds(
    camera, django_capture_on_commit_callbacks, seconds_later, fires_again
):
    rule(cooldown_seconds=300)
    with time_machine.travel(T0, tick=False):
        assert len(evaluate(make_event(camera), django_capture_on_commit_callbacks)) == 1
    with time_machine.travel(T0 + dt.timedelta(seconds=seconds_later), tick=False):
        again = evaluate(make_event(camera), django_capture_on_commit_callbacks)

    assert bool(again) is fires_again
    assert Alert.objects.count() == (2 if fires_again else 1)


def test_a_cooldown_of_zero_never_blocks(camera, django_capture_on_commit_callbacks):
    rule(cooldown_seconds=0)

    with time_machine.travel(T0, tick=False):
        evaluate(make_event(camera), django_capture_on_commit_callbacks)
        evaluate(make_event(camera), django_capture_on_commit_callbacks)

    assert Alert.objects.count() == 2


def test_cooldown_is_per_dedup_key(camera, django_capture_on_commit_callbacks):
    rule(cooldown_seconds=600, object_types=["person", "car"], dedup_key_template="{camera_id}:{object_type}")
    garage = CameraFactory(id="garage")

    with time_machine.travel(T0, tick=False):
        evaluate(make_event(camera, detections=[("person", 0.9)]), django_capture_on_commit_callbacks)
        evaluate(make_event(camera, detections=[("car", 0.9)]), django_capture_on_commit_callbacks)
        evaluate(make_event(garage, detections=[("person", 0.9)]), django_capture_on_commit_callbacks)
        evaluate(make_event(camera, detections=[("person", 0.9)]), django_capture_on_commit_callbacks)

    assert sorted(Alert.objects.values_list("dedup_key", flat=True)) == [
        "front_door:car",
        "front_door:person",
        "garage:person",
    ]


def test_cooldown_is_per_rule(camera, django_capture_on_commit_callbacks):
    rule(name="one", dedup_key_template="same")
    rule(name="two", dedup_key_template="same")

    with time_machine.travel(T0, tick=False):
        evaluate(make_event(camera), django_capture_on_commit_callbacks)
        evaluate(make_event(camera), django_capture_on_commit_callbacks)

    assert Alert.objects.count() == 2


# --- concurrency ------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_evaluations_of_two_events_fire_the_rule_once():
    """Two workers evaluate two events of one camera at the same moment: the rule row lock serialises the
    cooldown check and the insert, so exactly one alert exists afterwards."""
    camera = CameraFactory(id="front_door")
    rule(cooldown_seconds=300)
    events = [make_event(camera), make_event(camera)]
    barrier = threading.Barrier(2)
    results: list = []
    errors: list = []

    def work(event_id):
        try:
            barrier.wait(timeout=5)
            results.append(alerts_evaluate_event(event_id))
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(event.id,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert errors == []
    assert sorted(len(created) for created in results) == [0, 1]
    assert Alert.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_an_evaluation_waits_for_the_rule_lock_held_by_another_transaction():
    """Deterministic interleaving: transaction A holds the rule row (as a concurrent evaluation inserting its
    alert would) and commits an alert; evaluation B, started meanwhile, sees it after the lock is released."""
    import psycopg

    camera = CameraFactory(id="front_door")
    the_rule = rule(cooldown_seconds=300)
    first, second = make_event(camera), make_event(camera)
    settings_dict = connection.settings_dict
    holder = psycopg.connect(
        host=settings_dict["HOST"] or "127.0.0.1",
        port=settings_dict["PORT"] or 5432,
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"] or None,
        dbname=settings_dict["NAME"],
        autocommit=False,
    )
    outcome: list = []
    try:
        holder.execute("SELECT id FROM alerts_alertrule WHERE id = %s FOR UPDATE", [the_rule.id])
        worker = threading.Thread(
            target=lambda: (outcome.append(alerts_evaluate_event(second.id)), connections.close_all())
        )
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive(), "the evaluation must wait for the rule lock"
        now = dt.datetime.now(dt.UTC)
        holder.execute(
            "INSERT INTO alerts_alert (id, kind, rule_id, event_id, camera_id, severity, status, dedup_key, channels,"
            " metadata, version, created_at, updated_at) VALUES (%s, 'event', %s, %s, 'front_door', 'high', 'pending',"
            " %s, '[]', '{}', 1, %s, %s)",
            [uuid.uuid4(), the_rule.id, first.id, f"front_door:{the_rule.id}", now, now],
        )
        holder.commit()
        worker.join(timeout=10)
    finally:
        holder.close()

    assert outcome == [[]]  # blocked by the cooldown of the alert committed while it waited
    assert Alert.objects.count() == 1


# --- query count ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("detection_count", [1, 20])
def test_evaluation_reads_do_not_grow_with_rules_or_detections(
    camera, django_assert_num_queries, django_capture_on_commit_callbacks, detection_count
):
    ZoneFactory(camera=camera)
    for index in range(5):
        rule(name=f"r{index}", object_types=["dog"], zone_ids=[str(uuid.uuid4())])
    event = make_event(camera, detections=[("person", 0.9)] * detection_count)

    # the event, the rules, the event's detections, the camera's enabled zones
    with django_assert_num_queries(4):
        assert alerts_evaluate_event(event.id) == []
