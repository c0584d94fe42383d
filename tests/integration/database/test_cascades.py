"""Deletes cascade and set NULL as CONTRACT §1.6 says, in the ORM and in the database itself (§1.1)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection, models
from django.utils import timezone

from alerts.models import Alert, AlertRule, Delivery, NotificationChannel, NotificationPreference, QuietHours
from cameras.models import Camera, Zone
from events.models import (
    ActivityBaseline,
    ClassBaseline,
    Detection,
    Entity,
    Event,
    EventAudit,
    EventDetection,
    EventFeedback,
)
from pipeline.models import Batch, IngestedFile
from system.db_cascades import desired_actions, ensure_database_cascades
from tests.factories import (
    AlertFactory,
    AlertRuleFactory,
    BatchFactory,
    CameraFactory,
    DeliveryFactory,
    DetectionFactory,
    EntityFactory,
    EventAuditFactory,
    EventFactory,
    EventFeedbackFactory,
    IngestedFileFactory,
    NotificationChannelFactory,
    QuietHoursFactory,
    ZoneFactory,
)

pytestmark = pytest.mark.django_db

CAMERA_OWNED = (
    Zone,
    IngestedFile,
    Batch,
    Detection,
    Event,
    EventDetection,
    EventAudit,
    EventFeedback,
    Alert,
    Delivery,
    ActivityBaseline,
    ClassBaseline,
    NotificationPreference,
    QuietHours,
)


def build_camera_graph(camera: Camera, *, rule: AlertRule, channel: NotificationChannel, entity: Entity) -> dict:
    """One row of everything §1.6 says a camera owns; returns {model: [pk, ...]}."""
    source = IngestedFileFactory(camera=camera)
    batch = BatchFactory(camera=camera)
    detection = DetectionFactory(camera=camera, source_file=source, batch=batch, entity=entity)
    event = EventFactory(camera=camera, batch=batch, detections=[detection])
    alert = AlertFactory(event=event, rule=rule)
    rows = {
        Zone: [ZoneFactory(camera=camera).pk],
        IngestedFile: [source.pk],
        Batch: [batch.pk],
        Detection: [detection.pk],
        Event: [event.pk],
        EventDetection: list(EventDetection.objects.filter(event=event).values_list("pk", flat=True)),
        EventAudit: [EventAuditFactory(event=event).pk],
        EventFeedback: [EventFeedbackFactory(event=event).pk],
        Alert: [alert.pk],
        Delivery: [DeliveryFactory(alert=alert, channel=channel).pk],
        ActivityBaseline: [ActivityBaseline.objects.create(camera=camera, day_of_week=0, hour=8, avg_count=2).pk],
        ClassBaseline: [ClassBaseline.objects.create(camera=camera, object_class="person", hour=8, frequency=1).pk],
        NotificationPreference: [NotificationPreference.objects.create(camera=camera, enabled=False).pk],
        QuietHours: [QuietHoursFactory(camera=camera).pk],
    }
    # A camera_offline alert has no event: it is owned by the camera directly.
    rows[Alert].append(AlertFactory(event=None, camera=camera, kind="camera_offline", rule=rule).pk)
    assert all(rows[model] for model in CAMERA_OWNED)
    return rows


def remaining(rows: dict) -> dict:
    return {model.__name__: model.objects.filter(pk__in=pks).count() for model, pks in rows.items()}


@pytest.fixture
def shared():
    """Rows not owned by any camera: they must survive every camera delete."""
    return {
        "rule": AlertRuleFactory(),
        "channel": NotificationChannelFactory(),
        "entity": EntityFactory(),
        "global_quiet_hours": QuietHoursFactory(camera=None),
    }


@pytest.fixture
def graphs(shared):
    doomed = CameraFactory(id="front_door", name="Front Door", folder_path="front_door")
    kept = CameraFactory(id="garage", name="Garage", folder_path="garage")
    common = {"rule": shared["rule"], "channel": shared["channel"], "entity": shared["entity"]}
    return doomed, build_camera_graph(doomed, **common), build_camera_graph(kept, **common)


def assert_only_doomed_rows_gone(doomed_rows, kept_rows, shared):
    assert remaining(doomed_rows) == {model.__name__: 0 for model in CAMERA_OWNED}
    assert remaining(kept_rows) == {model.__name__: len(pks) for model, pks in kept_rows.items()}
    for name in ("rule", "channel", "entity", "global_quiet_hours"):
        assert type(shared[name]).objects.filter(pk=shared[name].pk).exists(), name
    assert NotificationPreference.objects.filter(camera__isnull=True).exists()  # the global row


def test_orm_camera_delete_removes_everything_the_camera_owns(graphs, shared):
    doomed, doomed_rows, kept_rows = graphs

    doomed.delete()

    assert not Camera.objects.filter(pk="front_door").exists()
    assert_only_doomed_rows_gone(doomed_rows, kept_rows, shared)


def test_raw_sql_camera_delete_cascades_in_the_database(graphs, shared):
    _, doomed_rows, kept_rows = graphs

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM cameras_camera WHERE id = %s", ["front_door"])
        assert cursor.rowcount == 1

    assert_only_doomed_rows_gone(doomed_rows, kept_rows, shared)


def _raw_delete(table: str, pk) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [pk])
        assert cursor.rowcount == 1


@pytest.mark.parametrize("how", ["orm", "sql"])
def test_event_hard_delete_removes_links_audit_feedback_alerts_and_deliveries(how):
    detection = DetectionFactory()
    event = EventFactory(camera=detection.camera, detections=[detection])
    audit, feedback = EventAuditFactory(event=event), EventFeedbackFactory(event=event)
    alert = AlertFactory(event=event)
    delivery = DeliveryFactory(alert=alert)

    event.delete() if how == "orm" else _raw_delete("events_event", event.pk)

    assert not EventDetection.objects.filter(detection=detection).exists()
    for model, pk in ((EventAudit, audit.pk), (EventFeedback, feedback.pk), (Alert, alert.pk), (Delivery, delivery.pk)):
        assert not model.objects.filter(pk=pk).exists(), model.__name__
    assert Detection.objects.filter(pk=detection.pk).exists()  # detections stay with their camera
    assert AlertRule.objects.filter(pk=alert.rule_id).exists()


@pytest.mark.parametrize("how", ["orm", "sql"])
def test_detection_delete_removes_its_link_and_nulls_entity_primary_detection(how):
    entity = EntityFactory()
    detection = DetectionFactory(entity=entity)
    other = DetectionFactory(camera=detection.camera)
    event = EventFactory(camera=detection.camera, detections=[detection, other])
    Entity.objects.filter(pk=entity.pk).update(primary_detection=detection)

    detection.delete() if how == "orm" else _raw_delete("events_detection", detection.pk)

    assert list(EventDetection.objects.filter(event=event).values_list("detection_id", flat=True)) == [other.pk]
    entity.refresh_from_db()
    assert entity.primary_detection_id is None
    assert Event.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize("how", ["orm", "sql"])
def test_batch_delete_nulls_event_and_detection_batch(how):
    batch = BatchFactory()
    detection = DetectionFactory(camera=batch.camera, batch=batch)
    event = EventFactory(camera=batch.camera, batch=batch, detections=[detection])

    batch.delete() if how == "orm" else _raw_delete("pipeline_batch", batch.pk)

    event.refresh_from_db()
    detection.refresh_from_db()
    assert event.batch_id is None and detection.batch_id is None


@pytest.mark.parametrize("how", ["orm", "sql"])
def test_rule_delete_nulls_alert_rule_and_keeps_the_alert(how):
    alert = AlertFactory()
    rule_name = alert.metadata["rule_name"]

    alert.rule.delete() if how == "orm" else _raw_delete("alerts_alertrule", alert.rule_id)

    alert.refresh_from_db()
    assert alert.rule_id is None
    assert alert.metadata["rule_name"] == rule_name


@pytest.mark.parametrize("how", ["orm", "sql"])
def test_entity_delete_nulls_detection_entity(how):
    entity = EntityFactory()
    detection = DetectionFactory(entity=entity)

    entity.delete() if how == "orm" else _raw_delete("events_entity", entity.pk)

    detection.refresh_from_db()
    assert detection.entity_id is None


@pytest.mark.parametrize("how", ["orm", "sql"])
def test_channel_delete_removes_its_deliveries_only(how):
    delivery = DeliveryFactory()
    other = DeliveryFactory(alert=delivery.alert)

    channel = delivery.channel
    channel.delete() if how == "orm" else _raw_delete("alerts_notificationchannel", channel.pk)

    assert list(Delivery.objects.filter(alert=delivery.alert).values_list("pk", flat=True)) == [other.pk]
    assert Alert.objects.filter(pk=delivery.alert_id).exists()


def test_ingested_file_delete_nulls_detection_source_file():
    source = IngestedFileFactory()
    detection = DetectionFactory(camera=source.camera, source_file=source)

    _raw_delete("pipeline_ingestedfile", source.pk)

    detection.refresh_from_db()
    assert detection.source_file_id is None


# --- ensure_database_cascades -------------------------------------------------------------------------------


def _delete_actions() -> dict[tuple[str, str], str]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT cl.relname, a.attname, c.confdeltype
            FROM pg_constraint c
            JOIN pg_class cl ON cl.oid = c.conrelid
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
            WHERE c.contype = 'f'
            """
        )
        return {(table, column): action for table, column, action in cursor.fetchall()}


# Every foreign key of CONTRACT §1 with its database ON DELETE action: c = CASCADE, n = SET NULL.
CONTRACT_ACTIONS = {
    ("cameras_zone", "camera_id"): "c",
    ("events_detection", "camera_id"): "c",
    ("events_detection", "source_file_id"): "n",
    ("events_detection", "batch_id"): "n",
    ("events_detection", "entity_id"): "n",
    ("events_event", "camera_id"): "c",
    ("events_event", "batch_id"): "n",
    ("events_eventdetection", "event_id"): "c",
    ("events_eventdetection", "detection_id"): "c",
    ("events_eventaudit", "event_id"): "c",
    ("events_entity", "primary_detection_id"): "n",
    ("events_activitybaseline", "camera_id"): "c",
    ("events_classbaseline", "camera_id"): "c",
    ("events_eventfeedback", "event_id"): "c",
    ("events_eventfeedback", "camera_id"): "c",
    ("alerts_alert", "rule_id"): "n",
    ("alerts_alert", "event_id"): "c",
    ("alerts_alert", "camera_id"): "c",
    ("alerts_notificationpreference", "camera_id"): "c",
    ("alerts_quiethours", "camera_id"): "c",
    ("alerts_delivery", "alert_id"): "c",
    ("alerts_delivery", "channel_id"): "c",
    ("pipeline_ingestedfile", "camera_id"): "c",
    ("pipeline_batch", "camera_id"): "c",
}


def test_every_foreign_key_of_the_contract_has_its_database_action():
    actions = _delete_actions()

    assert {key: actions.get(key) for key in CONTRACT_ACTIONS} == CONTRACT_ACTIONS


def test_models_and_database_agree_on_every_delete_action():
    actions = _delete_actions()
    expected = {models.CASCADE: "c", models.SET_NULL: "n"}

    for table, column, _, _, on_delete in desired_actions():
        assert actions[(table, column)] == expected[on_delete], f"{table}.{column}"


def test_ensure_database_cascades_is_idempotent():
    assert ensure_database_cascades() == 0
    assert ensure_database_cascades() == 0


def test_ensure_database_cascades_repairs_a_constraint_that_lost_its_action():
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.conname FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
            WHERE c.contype = 'f' AND c.conrelid = 'cameras_zone'::regclass AND a.attname = 'camera_id'
            """
        )
        (name,) = cursor.fetchone()
        # What a later Django migration altering the FK would leave behind: a plain deferred constraint.
        cursor.execute(f'ALTER TABLE cameras_zone DROP CONSTRAINT "{name}"')
        cursor.execute(
            f'ALTER TABLE cameras_zone ADD CONSTRAINT "{name}" FOREIGN KEY (camera_id) REFERENCES cameras_camera (id) '
            "DEFERRABLE INITIALLY DEFERRED"
        )
    assert _delete_actions()[("cameras_zone", "camera_id")] == "a"

    assert ensure_database_cascades() == 1
    assert ensure_database_cascades() == 0

    assert _delete_actions()[("cameras_zone", "camera_id")] == "c"
    with connection.cursor() as cursor:
        cursor.execute("SELECT condeferrable, condeferred FROM pg_constraint WHERE conname = %s", [name])
        assert cursor.fetchone() == (True, True)  # Django's deferral is kept
    zone = ZoneFactory()
    _raw_delete("cameras_camera", zone.camera_id)
    assert not Zone.objects.filter(pk=zone.pk).exists()


def test_hard_delete_of_a_camera_with_many_rows_is_one_statement():
    camera = CameraFactory()
    now = timezone.now()
    Detection.objects.bulk_create(
        DetectionFactory.build(camera=camera, detected_at=now - dt.timedelta(seconds=i)) for i in range(2000)
    )

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM cameras_camera WHERE id = %s", [camera.pk])

    assert not Detection.objects.filter(camera_id=camera.pk).exists()
