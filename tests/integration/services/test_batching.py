"""Batching (CONTRACT §4.5): one open batch per camera under a row lock, close-then-open when due, max_size
splits, the fast path and its durable cooldown, close_expired_batches, and the after-commit side effects."""

from __future__ import annotations

import threading

import pytest
import time_machine
from django.db import connection, connections, transaction

from events.models import Detection, Event
from pipeline.models import Batch
from pipeline.services import batch_add_detections, batches_close_expired
from tests.factories import CameraFactory, DetectionFactory
from tests.fakes.detector_server import detection
from tests.integration.metrics_support import scraped
from tests.integration.pipeline_support import (
    T0,
    at,
    image_file,
    of_type,
    pipeline_env,  # noqa: F401 - fixture
    run_task,
)

pytestmark = pytest.mark.usefixtures("pipeline_env")


@pytest.fixture
def camera(db):
    return CameraFactory(id="driveway", name="Driveway")


def detections(camera, *specs: tuple[str, float]) -> list[Detection]:
    return [DetectionFactory(camera=camera, object_type=cls, confidence=conf, detected_at=T0) for cls, conf in specs]


def cars(camera, count: int) -> list[Detection]:
    return detections(camera, *[("car", 0.7)] * count)


def add(camera, found: list[Detection], seconds: float) -> list[Batch]:
    with transaction.atomic():
        return batch_add_detections(camera.id, found, now=at(seconds))


def open_batches(camera) -> list[Batch]:
    return list(Batch.objects.filter(camera=camera, status="open"))


# --- Joining, idle and window -----------------------------------------------------------------------------------


def test_detections_join_the_open_batch_until_it_is_due(camera):
    first = add(camera, cars(camera, 2), 0)
    second = add(camera, cars(camera, 1), 29.9)

    assert first == second and len(first) == 1
    batch = Batch.objects.get()
    assert (batch.status, batch.detection_count, batch.opened_at, batch.last_detection_at) == ("open", 3, T0, at(29.9))
    assert set(Detection.objects.values_list("batch_id", flat=True)) == {batch.id}


@pytest.mark.parametrize(
    ("gaps", "reason"),
    [
        ([30], "idle"),  # now − last_detection_at ≥ 30 s
        ([25, 25, 25, 15], "window"),  # now − opened_at ≥ 90 s although never idle
    ],
)
def test_an_open_batch_that_is_due_is_closed_before_a_new_one_opens(camera, gaps, reason):
    elapsed = 0
    old = add(camera, cars(camera, 1), elapsed)[0]
    for gap in gaps[:-1]:
        elapsed += gap
        add(camera, cars(camera, 1), elapsed)
    elapsed += gaps[-1]
    new = add(camera, cars(camera, 1), elapsed)[0]

    old.refresh_from_db()
    assert (old.status, old.close_reason, old.closed_at) == ("closed", reason, at(elapsed))
    assert new.id != old.id and new.status == "open" and new.detection_count == 1
    assert len(open_batches(camera)) == 1


def test_close_expired_batches_closes_only_due_batches(camera):
    idle_camera = CameraFactory()
    window_camera = CameraFactory()
    fresh = add(camera, cars(camera, 1), 80)[0]
    idle = add(idle_camera, cars(idle_camera, 1), 60)[0]
    window = add(window_camera, cars(window_camera, 1), 0)[0]
    for seconds in (25, 50, 75):
        add(window_camera, cars(window_camera, 1), seconds)

    assert batches_close_expired(now=at(90)) == 2

    statuses = {b.id: (b.status, b.close_reason) for b in Batch.objects.all()}
    assert statuses == {fresh.id: ("open", None), idle.id: ("closed", "idle"), window.id: ("closed", "window")}
    assert batches_close_expired(now=at(90)) == 0  # nothing left that is due


# --- max_size -------------------------------------------------------------------------------------------------


def test_a_batch_reaching_max_size_closes_and_the_rest_start_a_new_one(camera, settings):
    settings.BATCH_MAX_DETECTIONS = 5
    add(camera, cars(camera, 3), 0)
    found = cars(camera, 8)

    touched = add(camera, found, 1)

    assert [b.detection_count for b in touched] == [5, 5, 1]
    statuses = [(b.status, b.close_reason, b.detection_count) for b in Batch.objects.order_by("created_at", "id")]
    assert sorted(statuses, key=str) == sorted(
        [("closed", "max_size", 5), ("closed", "max_size", 5), ("open", None, 1)], key=str
    )
    # detections of the file keep their order across the split: 2 fill the first batch, 5 the next, 1 the last
    assert [d.batch_id for d in found] == [touched[0].id] * 2 + [touched[1].id] * 5 + [touched[2].id]


# --- Fast path ----------------------------------------------------------------------------------------------------


def test_a_confident_person_gets_a_fast_path_batch_closed_at_once(camera):
    regular = add(camera, cars(camera, 1), 0)[0]
    found = detections(camera, ("person", 0.9), ("car", 0.6))

    fast = add(camera, found, 5)[0]

    assert (fast.status, fast.close_reason, fast.is_fast_path, fast.detection_count) == ("closed", "fast_path", True, 2)
    assert fast.closed_at == fast.opened_at == at(5)
    assert {d.batch_id for d in found} == {fast.id}
    regular.refresh_from_db()
    assert (regular.status, regular.detection_count, regular.last_detection_at) == ("open", 1, T0)


def test_within_the_cooldown_fast_path_files_are_batched_normally_and_after_it_fast_again(camera):
    add(camera, detections(camera, ("person", 0.95)), 0)

    within = add(camera, detections(camera, ("PERSON", 0.99)), 89)[0]
    after = add(camera, detections(camera, ("person", 0.99)), 90)[0]

    assert (within.is_fast_path, within.status) == (False, "open")
    assert (after.is_fast_path, after.close_reason) == (True, "fast_path")
    assert Batch.objects.filter(is_fast_path=True).count() == 2


@pytest.mark.parametrize(
    ("changes", "specs"),
    [
        ({"FAST_PATH_ENABLED": False}, [("person", 0.99)]),
        ({}, [("person", 0.89)]),
        ({}, [("car", 0.99)]),
        ({"FAST_PATH_OBJECT_TYPES": ["car"]}, [("person", 0.99)]),
    ],
)
def test_no_fast_path_without_a_qualifying_detection(camera, settings, changes, specs):
    for name, value in changes.items():
        setattr(settings, name, value)

    batch = add(camera, detections(camera, *specs), 0)[0]

    assert (batch.is_fast_path, batch.status) == (False, "open")


def test_the_fast_path_cooldown_survives_a_restart_because_it_is_read_from_batch_rows(camera):
    old_fast = add(camera, detections(camera, ("person", 0.95)), 0)[0]
    Batch.objects.filter(pk=old_fast.pk).update(status="done")  # analysed long ago; nothing in memory

    assert add(camera, detections(camera, ("person", 0.95)), 60)[0].is_fast_path is False


# --- After commit ---------------------------------------------------------------------------------------------


def test_closing_broadcasts_detection_batch_counts_it_and_dispatches_the_analysis(
    camera, events_stream, django_capture_on_commit_callbacks
):
    found = cars(camera, 2)
    batch = add(camera, found, 0)[0]
    before = scraped("hsi_batches_closed", reason="idle")

    with django_capture_on_commit_callbacks(execute=True):
        assert batches_close_expired(now=at(30)) == 1

    closed = of_type(events_stream.drain(), "detection.batch")
    assert closed == [
        {
            "batch_id": str(batch.id),
            "camera_id": "driveway",
            "detection_ids": sorted(d.id for d in found),
            "detection_count": 2,
            "opened_at": "2024-05-01T12:00:00Z",
            "closed_at": "2024-05-01T12:00:30Z",
            "close_reason": "idle",
        }
    ]
    assert scraped("hsi_batches_closed", reason="idle") == before + 1
    event = Event.objects.get(batch=batch)  # pipeline.analyze_batch ran (eager)
    assert sorted(event.detections.values_list("id", flat=True)) == sorted(d.id for d in found)


def test_nothing_leaves_before_the_commit(camera, events_stream, django_capture_on_commit_callbacks):
    add(camera, cars(camera, 1), 0)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        batches_close_expired(now=at(30))

    assert callbacks and events_stream.drain(timeout=0.2) == []


def test_the_close_expired_batches_task_uses_the_clock(camera, django_capture_on_commit_callbacks):
    batch = add(camera, cars(camera, 1), 0)[0]

    with time_machine.travel(at(29), tick=False):
        run_task(django_capture_on_commit_callbacks, "pipeline.close_expired_batches")
    assert Batch.objects.get(pk=batch.pk).status == "open"
    with time_machine.travel(at(30), tick=False):
        run_task(django_capture_on_commit_callbacks, "pipeline.close_expired_batches")
    assert Batch.objects.get(pk=batch.pk).status == "done"  # closed, then analysed inline


def test_processing_a_file_batches_its_detections_in_the_same_transaction(
    fake_detector, camera, foscam_root, django_capture_on_commit_callbacks
):
    fake_detector.detections = [detection("car", 0.7), detection("car", 0.8, bbox=(100, 100, 50, 50))]
    file = image_file(camera, foscam_root)

    with time_machine.travel(at(1), tick=False):
        run_task(django_capture_on_commit_callbacks, "pipeline.process_file", file.id)

    batch = Batch.objects.get()
    assert (batch.status, batch.detection_count, batch.opened_at) == ("open", 2, at(1))
    assert set(Detection.objects.values_list("batch_id", flat=True)) == {batch.id}


@pytest.mark.django_db(transaction=True)
def test_batching_outside_the_detections_transaction_is_refused():
    camera = CameraFactory()

    with pytest.raises(RuntimeError):
        batch_add_detections(camera.id, cars(camera, 1), now=T0)

    assert not Batch.objects.exists()


# --- Concurrency (real transactions) -------------------------------------------------------------------------


def _in_thread(target, *args) -> threading.Thread:
    errors: list[BaseException] = []

    def run():
        try:
            target(*args)
        except BaseException as error:  # pragma: no cover - reported by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.errors = errors
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_two_workers_adding_to_one_camera_share_one_open_batch():
    camera = CameraFactory(id="porch")
    per_worker = [cars(camera, 10), cars(camera, 10)]
    barrier = threading.Barrier(2)

    def worker(found):
        barrier.wait()
        for index, detection_row in enumerate(found):
            with transaction.atomic():
                batch_add_detections(camera.id, [detection_row], now=at(index))

    threads = [_in_thread(worker, found) for found in per_worker]
    for thread in threads:
        thread.join(30)
        assert not thread.errors

    batch = Batch.objects.get()
    assert (batch.status, batch.detection_count) == ("open", 20)
    assert Detection.objects.filter(batch=batch).count() == 20


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_opener_makes_the_insert_fail_and_the_loser_joins_its_batch():
    camera = CameraFactory(id="gate")
    mine, theirs = cars(camera, 1), cars(camera, 1)
    opened, release = threading.Event(), threading.Event()

    def other_worker():
        with transaction.atomic():
            batch_add_detections(camera.id, theirs, now=T0)  # inserts the open batch, not yet committed
            opened.set()
            release.wait(10)

    other = _in_thread(other_worker)
    assert opened.wait(10)
    me = _in_thread(lambda: add(camera, mine, 1))
    _wait_until_blocked_on_a_lock()
    release.set()
    for thread in (other, me):
        thread.join(30)
        assert not thread.errors

    batch = Batch.objects.get()
    assert (batch.status, batch.detection_count) == ("open", 2)


def _wait_until_blocked_on_a_lock(timeout: float = 10.0) -> None:
    """Until another connection waits on a lock (our insert blocked by the uncommitted open batch)."""
    import time

    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the second opener never blocked")


def test_an_open_batch_already_over_a_lowered_maximum_is_closed_first(camera, settings):
    old = add(camera, cars(camera, 5), 0)[0]
    settings.BATCH_MAX_DETECTIONS = 3

    new = add(camera, cars(camera, 1), 1)[0]

    old.refresh_from_db()
    assert (old.status, old.close_reason, old.detection_count) == ("closed", "max_size", 5)
    assert (new.status, new.detection_count) == ("open", 1)
