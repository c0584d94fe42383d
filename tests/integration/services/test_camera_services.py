"""Camera services other apps call (CONTRACT §4.1 auto-create, §2.2/§3.6 status changes, §1.6 delete)."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.utils import timezone

from cameras import services
from cameras.models import Camera, Zone
from hsi.api.errors import Conflict, FieldValidationError, NotFound
from system.models import AuditLog
from system.services import Actor
from tests.factories import CameraFactory, ZoneFactory

WATCHER = Actor.system("watcher")


@pytest.fixture
def status_signals():
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    services.camera_status_changed.connect(receiver)
    yield received
    services.camera_status_changed.disconnect(receiver)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# --- camera_set_status -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_real_transition_sets_status_changed_at_broadcasts_and_signals_after_commit(
    events_stream, status_signals, django_capture_on_commit_callbacks
):
    seen = timezone.now() - dt.timedelta(minutes=20)
    camera = CameraFactory(id="garage", name="Garage", status="online", last_seen_at=seen)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        updated = services.camera_set_status("garage", "offline", reason="silent", actor=Actor.system("scheduler"))
    assert events_stream.drain() == [] and status_signals == []
    for callback in callbacks:
        callback()

    camera.refresh_from_db()
    assert updated.status == camera.status == "offline"
    assert timezone.now() - camera.status_changed_at < dt.timedelta(minutes=1)
    [message] = events_stream.drain()
    assert message["type"] == "camera.status_changed"
    assert message["data"] == {
        "camera_id": "garage",
        "camera_name": "Garage",
        "status": "offline",
        "previous_status": "online",
        "reason": "silent",
        "last_seen_at": iso(seen),
    }
    [signal] = status_signals
    assert signal == {
        "signal": services.camera_status_changed,
        "camera_id": "garage",
        "camera_name": "Garage",
        "status": "offline",
        "previous_status": "online",
        "reason": "silent",
        "changed_at": camera.status_changed_at,
    }


@pytest.mark.django_db
def test_setting_the_current_status_changes_nothing(events_stream, status_signals, django_capture_on_commit_callbacks):
    camera = CameraFactory(id="garage", status="online")
    camera.status_changed_at = timezone.now() - dt.timedelta(days=2)
    camera.save()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.camera_set_status("garage", "online", reason="files_received", actor=WATCHER)

    after = Camera.objects.get(pk="garage")
    assert after.status_changed_at == camera.status_changed_at and after.updated_at == camera.updated_at
    assert callbacks == [] and events_stream.drain() == [] and status_signals == []


@pytest.mark.django_db
def test_status_change_with_no_last_seen_reports_null(events_stream, django_capture_on_commit_callbacks):
    CameraFactory(id="garage", status="unknown")

    with django_capture_on_commit_callbacks(execute=True):
        services.camera_set_status("garage", "online", reason="files_received", actor=WATCHER)

    [message] = events_stream.drain()
    assert message["data"]["last_seen_at"] is None and message["data"]["previous_status"] == "unknown"


@pytest.mark.django_db
def test_a_failing_signal_receiver_does_not_break_the_status_change(django_capture_on_commit_callbacks):
    CameraFactory(id="garage", status="online")

    def broken(sender, **kwargs):
        raise RuntimeError("alert engine down")

    services.camera_status_changed.connect(broken)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.camera_set_status("garage", "error", reason="api", actor=WATCHER)
    finally:
        services.camera_status_changed.disconnect(broken)

    assert Camera.objects.get(pk="garage").status == "error"


@pytest.mark.django_db
def test_set_status_rejects_unknown_cameras_and_statuses():
    CameraFactory(id="garage")

    with pytest.raises(NotFound):
        services.camera_set_status("nope", "offline", reason="api", actor=WATCHER)
    with pytest.raises(FieldValidationError):
        services.camera_set_status("garage", "asleep", reason="api", actor=WATCHER)
    assert Camera.objects.get(pk="garage").status == "online"


# --- camera_register_from_folder ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_unknown_folder_auto_creates_a_camera(foscam_root, events_stream, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        camera = services.camera_register_from_folder("front_porch", actor=WATCHER)

    assert camera is not None
    stored = Camera.objects.get(pk="front_porch")
    assert (stored.name, stored.folder_path, stored.status, stored.enabled) == (
        "Front Porch",
        str(foscam_root / "front_porch"),
        "online",
        True,
    )
    assert stored.status_changed_at == stored.created_at == stored.updated_at
    [row] = AuditLog.objects.filter(action="camera_auto_created")
    assert (row.resource_type, row.resource_id, row.actor, row.status) == (
        "camera",
        "front_porch",
        "watcher",
        "success",
    )
    assert row.details["folder"] == "front_porch"
    [message] = events_stream.drain()
    assert message["type"] == "camera.created"
    assert message["data"] == {"camera_id": "front_porch", "name": "Front Porch"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("folder", "camera_id", "name"),
    [
        ("acc_3f2a", "acc_3f2a", "Acc 3f2a"),
        ("back-yard", "back_yard", "Back Yard"),
        ("Garage.Cam", "garage_cam", "Garage.Cam"),
        ("Café Côté", "cafe_cote", "Café Côté"),
        ("driveWay", "driveway", "DriveWay"),
    ],
)
def test_auto_created_id_and_name_follow_the_folder(folder, camera_id, name):
    camera = services.camera_register_from_folder(folder, actor=WATCHER)

    assert (camera.id, camera.name) == (camera_id, name)


@pytest.mark.django_db
def test_existing_camera_is_matched_by_resolved_folder_first(foscam_root):
    by_folder = CameraFactory(id="porch_cam", name="Porch", folder_path="front_porch")
    CameraFactory(id="front_porch", name="Other", folder_path="/somewhere/else")

    found = services.camera_register_from_folder("front_porch", actor=WATCHER)

    assert found.id == by_folder.id
    assert Camera.objects.count() == 2 and not AuditLog.objects.exists()


@pytest.mark.django_db
def test_absolute_folder_path_matches_too(foscam_root):
    camera = CameraFactory(id="cam_a", folder_path=f"{foscam_root}/front_porch/")

    assert services.camera_register_from_folder("front_porch", actor=WATCHER).id == camera.id


@pytest.mark.django_db
def test_existing_camera_is_matched_by_slug_id_when_no_folder_matches():
    camera = CameraFactory(id="front_porch", folder_path="/mnt/other/front")

    assert services.camera_register_from_folder("Front-Porch", actor=WATCHER).id == camera.id
    assert Camera.objects.count() == 1


@pytest.mark.django_db
def test_a_clashing_name_gets_a_number():
    CameraFactory(id="a", name="Front Porch", folder_path="a")
    CameraFactory(id="b", name="Front Porch (2)", folder_path="b")

    camera = services.camera_register_from_folder("front_porch", actor=WATCHER)

    assert camera.name == "Front Porch (3)"


@pytest.mark.django_db
@pytest.mark.parametrize("folder", ["", "___", "!!!", "前门", "..", "."])
def test_folder_with_an_empty_slug_is_ignored(folder):
    assert services.camera_register_from_folder(folder, actor=WATCHER) is None
    assert not Camera.objects.exists()


@pytest.mark.django_db
def test_nothing_is_created_when_auto_create_is_off(settings):
    settings.AUTO_CREATE_CAMERAS = False
    existing = CameraFactory(id="porch", folder_path="porch")

    assert services.camera_register_from_folder("garage", actor=WATCHER) is None
    assert services.camera_register_from_folder("porch", actor=WATCHER).id == existing.id
    assert Camera.objects.count() == 1


@pytest.mark.django_db
def test_folder_path_too_long_for_a_camera_is_ignored(settings, tmp_path):
    settings.FOSCAM_BASE_PATH = tmp_path / ("r" * 480)

    assert services.camera_register_from_folder("f" * 40, actor=WATCHER) is None
    assert not Camera.objects.exists()


def run_concurrently(count: int, work):
    """``work(index)`` in ``count`` threads released at the same moment; each thread has its own connection."""
    barrier = threading.Barrier(count)

    def run(index):
        barrier.wait()
        try:
            return work(index)
        except Exception as error:
            return error
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


@pytest.mark.django_db(transaction=True)
def test_concurrent_registration_of_one_folder_creates_one_camera():
    results = run_concurrently(8, lambda _: services.camera_register_from_folder("side_gate", actor=WATCHER))

    assert all(isinstance(result, Camera) for result in results), results
    assert {result.id for result in results} == {"side_gate"}
    assert Camera.objects.count() == 1
    assert AuditLog.objects.filter(action="camera_auto_created").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_of_the_same_folder_spelled_differently_let_one_win(foscam_root):
    folders = ["front", f"{foscam_root}/front", "front/", "./front"]

    def create(index):
        return services.camera_create(data={"name": f"Cam {index}", "folder_path": folders[index]}, actor=WATCHER)

    results = run_concurrently(len(folders), create)

    created = [r for r in results if isinstance(r, Camera)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(created) == 1 and len(conflicts) == len(folders) - 1, results
    assert all(c.extensions["existing_id"] == created[0].id for c in conflicts)
    assert Camera.objects.count() == 1


# --- create / update / delete as services --------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_service_refuses_a_name_without_a_slug():
    with pytest.raises(FieldValidationError):
        services.camera_create(data={"name": "###", "folder_path": "x"}, actor=WATCHER)
    assert not Camera.objects.exists()


@pytest.mark.django_db
def test_update_service_ignores_an_id_in_the_data():
    CameraFactory(id="garage", name="Garage")

    camera = services.camera_update("garage", data={"id": "other", "name": "Garage 2"}, actor=WATCHER)

    assert camera.id == "garage" and Camera.objects.get(pk="garage").name == "Garage 2"
    assert not Camera.objects.filter(pk="other").exists()


@pytest.mark.django_db
def test_delete_service_on_unknown_camera_raises_not_found():
    with pytest.raises(NotFound):
        services.camera_delete("nope", actor=WATCHER)


def test_thumbnail_removal_never_follows_a_link_out_of_the_thumbnails_folder(data_dir, tmp_path):
    thumbnails = data_dir / "thumbnails"
    thumbnails.mkdir()
    precious = tmp_path / "precious.jpg"
    precious.write_bytes(b"keep")
    link = thumbnails / "1_thumb.jpg"
    link.symlink_to(precious)
    escape_dir = thumbnails / "escape"
    escape_dir.symlink_to(tmp_path, target_is_directory=True)
    relative = thumbnails / "2_thumb.jpg"
    relative.write_bytes(b"jpeg")

    removed = services.remove_thumbnails([str(link), str(escape_dir / "precious.jpg"), "2_thumb.jpg", "/etc/passwd"])

    assert removed == 2
    assert not link.is_symlink() and not relative.exists()
    assert precious.exists() and escape_dir.is_symlink()


# --- zones as services ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_zone_services_check_the_camera_of_the_zone():
    zone = ZoneFactory(name="Porch")
    CameraFactory(id="other")

    with pytest.raises(NotFound):
        services.zone_update("other", zone.id, data={"name": "X"}, actor=WATCHER)
    with pytest.raises(NotFound):
        services.zone_delete("other", zone.id, actor=WATCHER)
    with pytest.raises(NotFound):
        services.zone_create("nope", data={"name": "X", "coordinates": [[0, 0], [1, 0], [0, 1]]}, actor=WATCHER)
    assert Zone.objects.get(pk=zone.id).name == "Porch"


@pytest.mark.django_db
def test_zone_update_with_unchanged_values_is_a_no_op():
    zone = ZoneFactory(name="Porch", priority=3)

    services.zone_update(zone.camera_id, zone.id, data={"name": "Porch", "priority": 3}, actor=WATCHER)

    assert Zone.objects.get(pk=zone.id).updated_at == zone.updated_at
    assert not AuditLog.objects.exists()
