"""Transactions, constraints and test isolation on the real PostgreSQL database (DESIGN §4, CONTRACT §1)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from cameras.models import Camera
from events.models import Detection, Event
from hsi.api.counts import cached_count, invalidate_counts
from pipeline.models import Batch
from system.models import AuditLog
from system.services import Actor, audit_record
from tests.factories import (
    AlertFactory,
    BatchFactory,
    CameraFactory,
    DetectionFactory,
    EventFactory,
    ZoneFactory,
)

pytestmark = pytest.mark.django_db


def front_door() -> Camera:
    return CameraFactory(id="front_door", name="Front Door", folder_path="front_door")


# --- Rollback and isolation ---------------------------------------------------------------------------------


def test_rolled_back_transaction_leaves_no_rows_including_its_audit():
    with pytest.raises(RuntimeError), transaction.atomic():
        camera = front_door()
        DetectionFactory(camera=camera)
        audit_record(Actor.system("test"), "camera_created", "camera", camera.pk)
        raise RuntimeError("abort")

    assert not Camera.objects.filter(pk="front_door").exists()
    assert not Detection.objects.exists()
    assert not AuditLog.objects.filter(resource_id="front_door").exists()


def test_failed_statement_inside_a_savepoint_keeps_the_outer_work():
    camera = front_door()

    with pytest.raises(IntegrityError), transaction.atomic():
        CameraFactory(id="other", name="Front Door", folder_path="other")  # duplicate name

    assert Camera.objects.filter(pk=camera.pk).exists()
    assert Camera.objects.count() == 1


def test_isolation_first_test_creates_front_door():
    """Paired with the next test: each creates the same camera, so either order passes only if tests are isolated."""
    front_door()

    assert list(Camera.objects.values_list("id", flat=True)) == ["front_door"]


def test_isolation_second_test_creates_front_door_too():
    front_door()

    assert list(Camera.objects.values_list("id", flat=True)) == ["front_door"]


def test_on_commit_callbacks_run_only_when_the_transaction_commits(django_capture_on_commit_callbacks):
    ran = []

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            transaction.on_commit(lambda: ran.append("rolled back"))
            raise RuntimeError("abort")
        with transaction.atomic():
            transaction.on_commit(lambda: ran.append("committed"))

    assert ran == ["committed"]
    assert len(callbacks) == 1


# --- Constraints --------------------------------------------------------------------------------------------


def test_one_open_batch_per_camera():
    camera = front_door()
    first = BatchFactory(camera=camera, status="open", closed_at=None, close_reason=None)

    with pytest.raises(IntegrityError), transaction.atomic():
        BatchFactory(camera=camera, status="open", closed_at=None, close_reason=None)

    Batch.objects.filter(pk=first.pk).update(status="closed", closed_at=timezone.now(), close_reason="idle")
    second = BatchFactory(camera=camera, status="open", closed_at=None, close_reason=None)
    other_camera = BatchFactory(status="open", closed_at=None, close_reason=None)

    assert set(Batch.objects.filter(status="open").values_list("pk", flat=True)) == {second.pk, other_camera.pk}


def test_many_closed_batches_per_camera_are_fine():
    camera = front_door()

    BatchFactory.create_batch(3, camera=camera, status="done")

    assert Batch.objects.filter(camera=camera).count() == 3


def _violates(factory, **fields) -> bool:
    try:
        with transaction.atomic():
            factory(**fields)
    except IntegrityError:
        return True
    return False


@pytest.mark.parametrize(
    ("factory", "fields"),
    [
        (DetectionFactory, {"confidence": 1.01}),
        (DetectionFactory, {"confidence": -0.1}),
        (DetectionFactory, {"bbox_width": -1}),
        (DetectionFactory, {"media_type": "audio"}),
        (CameraFactory, {"status": "sleeping"}),
        (CameraFactory, {"silence_threshold_minutes": 0}),
        (CameraFactory, {"silence_threshold_minutes": 10081}),
        (ZoneFactory, {"priority": 101}),
        (ZoneFactory, {"zone_type": "moat"}),
        (EventFactory, {"risk_score": 101}),
        (EventFactory, {"risk_level": "extreme"}),
        (EventFactory, {"analysis_status": "guess"}),
        (EventFactory, {"anomaly_score": 1.5}),
        (BatchFactory, {"status": "pending"}),
        (AlertFactory, {"status": "lost"}),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else next(iter(value.items()), ("", ""))[0],
)
def test_check_constraints_reject_values_outside_the_contract(factory, fields):
    assert _violates(factory, **fields)


def test_check_constraints_accept_the_boundaries():
    for factory, fields in [
        (DetectionFactory, {"confidence": 0.0}),
        (DetectionFactory, {"confidence": 1.0}),
        (CameraFactory, {"silence_threshold_minutes": 10080}),
        (ZoneFactory, {"priority": 100}),
        (EventFactory, {"risk_score": 0}),
    ]:
        assert not _violates(factory, **fields), (factory.__name__, fields)


def test_event_cannot_end_before_it_starts():
    start = timezone.now()

    assert _violates(EventFactory, started_at=start, ended_at=start - dt.timedelta(microseconds=1))
    assert not _violates(EventFactory, started_at=start, ended_at=start)


def test_audit_status_outside_the_enum_is_rejected():
    assert _violates(lambda **kw: AuditLog.objects.create(action="x", resource_type="y", actor="z", status="meh"))


def test_a_detection_belongs_to_at_most_one_event():
    detection = DetectionFactory()
    EventFactory(camera=detection.camera, detections=[detection])

    assert _violates(EventFactory, camera=detection.camera, detections=[detection])


def test_one_event_per_batch():
    batch = BatchFactory()
    EventFactory(camera=batch.camera, batch=batch)

    assert _violates(EventFactory, camera=batch.camera, batch=batch)


# --- Cached totals (hsi/api/counts.py) ---------------------------------------------------------------------


def test_count_is_exact_after_a_write_in_the_same_transaction():
    camera = front_door()
    EventFactory.create_batch(2, camera=camera)
    assert cached_count(Event.objects.filter(camera=camera)) == 2

    EventFactory(camera=camera)
    invalidate_counts("events")

    assert cached_count(Event.objects.filter(camera=camera)) == 3


def test_count_of_a_query_that_cannot_match_is_zero():
    EventFactory()

    assert cached_count(Event.objects.filter(id__in=[])) == 0


def test_counts_of_different_filters_do_not_collide():
    camera = front_door()
    EventFactory.create_batch(2, camera=camera, risk_level="low")
    EventFactory(camera=camera, risk_level="high")

    assert cached_count(Event.objects.filter(risk_level="low")) == 2
    assert cached_count(Event.objects.filter(risk_level="high")) == 1


@pytest.mark.django_db(transaction=True)
def test_committed_totals_are_cached_until_the_scope_is_invalidated():
    camera = front_door()
    EventFactory(camera=camera)
    queryset = Event.objects.filter(camera=camera)
    assert cached_count(queryset) == 1

    EventFactory(camera=camera)  # a write that forgot to invalidate: the cached total is served
    assert cached_count(queryset) == 1

    invalidate_counts("events")
    assert cached_count(queryset) == 2


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_write_never_leaves_its_total_in_the_cache():
    camera = front_door()
    EventFactory(camera=camera)
    queryset = Event.objects.filter(camera=camera)

    with pytest.raises(RuntimeError), transaction.atomic():
        EventFactory(camera=camera)
        invalidate_counts("events")
        assert cached_count(queryset) == 2  # this transaction sees its own row
        raise RuntimeError("abort")

    assert cached_count(queryset) == 1


@pytest.mark.django_db(transaction=True)
def test_invalidating_one_scope_keeps_the_other_cached():
    camera = front_door()
    DetectionFactory(camera=camera)
    detections = Detection.objects.filter(camera=camera)
    assert cached_count(detections, scopes=("detections",)) == 1

    DetectionFactory(camera=camera)
    invalidate_counts("events")
    assert cached_count(detections, scopes=("detections",)) == 1

    invalidate_counts("detections")
    assert cached_count(detections, scopes=("detections",)) == 2
