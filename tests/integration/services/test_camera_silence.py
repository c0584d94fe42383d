"""Camera silence (CONTRACT §4.12): silent online cameras go offline with reason ``silent``."""

from __future__ import annotations

import datetime as dt

import pytest

from cameras import services
from cameras.models import Camera
from cameras.services import cameras_check_silence
from hsi.celery import app
from system.services import Actor
from tests.factories import CameraFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2024, 6, 5, 10, 0, tzinfo=dt.UTC)


def minutes_ago(minutes: float) -> dt.datetime:
    return NOW - dt.timedelta(minutes=minutes)


@pytest.fixture
def status_signals():
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    services.camera_status_changed.connect(receiver)
    yield received
    services.camera_status_changed.disconnect(receiver)


def camera(camera_id: str, *, threshold: int | None = 30, seen: float | None = None, created: float = 600, **fields):
    return CameraFactory(
        id=camera_id,
        silence_threshold_minutes=threshold,
        last_seen_at=minutes_ago(seen) if seen is not None else None,
        created_at=minutes_ago(created),
        **fields,
    )


def status(camera_id: str) -> str:
    return Camera.objects.get(pk=camera_id).status


def test_a_camera_silent_for_longer_than_its_threshold_goes_offline(
    events_stream, status_signals, django_capture_on_commit_callbacks
):
    camera("garage", threshold=30, seen=31, name="Garage")

    with django_capture_on_commit_callbacks(execute=True):
        assert cameras_check_silence(NOW) == ["garage"]

    assert status("garage") == "offline"
    [message] = events_stream.drain()
    assert message["type"] == "camera.status_changed"
    assert message["data"] == {
        "camera_id": "garage",
        "camera_name": "Garage",
        "status": "offline",
        "previous_status": "online",
        "reason": "silent",
        "last_seen_at": "2024-06-05T09:29:00Z",
    }
    assert [(s["status"], s["previous_status"], s["reason"]) for s in status_signals] == [
        ("offline", "online", "silent")
    ]


@pytest.mark.parametrize(("seen", "silent"), [(29, False), (30, False), (30.01, True), (600, True)])
def test_the_threshold_is_minutes_since_the_last_accepted_file(seen, silent):
    camera("porch", threshold=30, seen=seen)

    assert cameras_check_silence(NOW) == (["porch"] if silent else [])
    assert status("porch") == ("offline" if silent else "online")


@pytest.mark.parametrize(("created", "silent"), [(10, False), (31, True)])
def test_a_camera_that_never_sent_a_file_counts_from_its_creation(created, silent):
    camera("new", threshold=30, seen=None, created=created)

    assert cameras_check_silence(NOW) == (["new"] if silent else [])


def test_cameras_without_threshold_disabled_or_not_online_are_left_alone(
    events_stream, django_capture_on_commit_callbacks
):
    camera("no_threshold", threshold=None, seen=10_000)
    camera("disabled", seen=10_000, enabled=False)
    camera("offline", seen=10_000, status="offline")
    camera("error", seen=10_000, status="error")
    camera("unknown", seen=10_000, status="unknown")

    with django_capture_on_commit_callbacks(execute=True):
        assert cameras_check_silence(NOW) == []

    assert dict(Camera.objects.values_list("id", "status")) == {
        "no_threshold": "online",
        "disabled": "online",
        "offline": "offline",
        "error": "error",
        "unknown": "unknown",
    }
    assert events_stream.drain() == []


def test_each_camera_uses_its_own_threshold():
    camera("short", threshold=5, seen=6)
    camera("long", threshold=60, seen=6)
    camera("week", threshold=10080, seen=10079)

    assert cameras_check_silence(NOW) == ["short"]


def test_a_second_run_changes_nothing(events_stream, django_capture_on_commit_callbacks):
    camera("garage", seen=45)
    with django_capture_on_commit_callbacks(execute=True):
        cameras_check_silence(NOW)
    events_stream.drain()

    with django_capture_on_commit_callbacks(execute=True):
        assert cameras_check_silence(NOW + dt.timedelta(minutes=1)) == []

    assert events_stream.drain() == []


def test_a_camera_brought_back_online_by_a_new_file_can_go_silent_again():
    camera("garage", seen=45)
    cameras_check_silence(NOW)
    Camera.objects.filter(pk="garage").update(last_seen_at=NOW)
    services.camera_set_status("garage", "online", reason="files_received", actor=Actor.system("watcher"))

    assert cameras_check_silence(NOW + dt.timedelta(minutes=20)) == []
    assert cameras_check_silence(NOW + dt.timedelta(minutes=31)) == ["garage"]


def test_the_periodic_task_checks_at_the_current_time(time_machine):
    camera("garage", threshold=30, seen=20)
    task = app.tasks["cameras.check_silence"]

    time_machine.move_to(NOW, tick=False)
    assert task.apply().get() == []
    time_machine.move_to(NOW + dt.timedelta(minutes=11), tick=False)
    assert task.apply().get() == ["garage"]
    assert status("garage") == "offline"
