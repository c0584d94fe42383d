"""Camera CRUD over HTTP (CONTRACT §2.2, §1.6 cascade, §6.8 audit, §3.6 camera.* messages)."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import Alert, Delivery, NotificationChannel, NotificationPreference, QuietHours
from cameras.models import Camera, Zone
from cameras.services import camera_status_changed
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
from hsi.api.counts import cached_count
from pipeline.models import Batch, IngestedFile
from system.models import AuditLog
from tests.factories import (
    AlertFactory,
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

PROBLEM = "application/problem+json"


# --- helpers -----------------------------------------------------------------------------------------------------


def field_errors(response) -> dict[str, str]:
    assert response.status_code == 422, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["code"] == "validation_error"
    return {error["field"]: error["message"] for error in body["errors"]}


def create(api_client, **body):
    body.setdefault("name", "Front Door")
    body.setdefault("folder_path", "front_door")
    return api_client.post("/api/cameras", body, format="json")


def audit_rows(action: str):
    return list(AuditLog.objects.filter(action=action).order_by("id"))


# --- create ------------------------------------------------------------------------------------------------------


def test_create_derives_the_id_from_the_name_and_returns_the_camera(api_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = create(api_client, name="Front Door", folder_path="front_door")

    assert response.status_code == 201
    assert response["Location"] == "/api/cameras/front_door"
    body = response.json()
    assert set(body) == {
        "id",
        "name",
        "folder_path",
        "status",
        "enabled",
        "silence_threshold_minutes",
        "last_seen_at",
        "status_changed_at",
        "created_at",
        "updated_at",
    }
    assert body["id"] == "front_door" and body["name"] == "Front Door" and body["folder_path"] == "front_door"
    assert body["status"] == "online" and body["enabled"] is True
    assert body["silence_threshold_minutes"] is None and body["last_seen_at"] is None
    assert body["created_at"].endswith("Z")
    assert body["status_changed_at"] == body["created_at"] == body["updated_at"]
    camera = Camera.objects.get(pk="front_door")
    assert camera.status_changed_at == camera.created_at


def test_create_with_every_field_and_an_explicit_id(api_client):
    response = create(
        api_client,
        id="cam_01",
        name="Garage Cam #2",
        folder_path="/mnt/elsewhere/garage",
        status="offline",
        enabled=False,
        silence_threshold_minutes=30,
    )

    assert response.status_code == 201
    assert response["Location"] == "/api/cameras/cam_01"
    camera = Camera.objects.get(pk="cam_01")
    assert (camera.name, camera.folder_path, camera.status, camera.enabled, camera.silence_threshold_minutes) == (
        "Garage Cam #2",
        "/mnt/elsewhere/garage",
        "offline",
        False,
        30,
    )


def test_create_trims_the_name_and_ignores_unknown_fields(api_client):
    response = create(api_client, name="  Porch  ", folder_path="porch", colour="red")

    assert response.status_code == 201
    assert response.json()["name"] == "Porch" and response.json()["id"] == "porch"


def test_create_writes_an_audit_row_with_the_actor(api_client, settings):
    settings.API_KEY_ENABLED = True
    settings.API_KEYS = "ops=s3cret-key"

    response = api_client.post(
        "/api/cameras",
        {"name": "Front Door", "folder_path": "front_door"},
        format="json",
        HTTP_X_API_KEY="s3cret-key",
        HTTP_X_REQUEST_ID="req-create-1",
        HTTP_USER_AGENT="pytest-agent",
    )

    assert response.status_code == 201
    [row] = audit_rows("camera_created")
    assert (row.resource_type, row.resource_id, row.actor, row.status) == (
        "camera",
        "front_door",
        "api_key:ops",
        "success",
    )
    assert row.request_id == "req-create-1" and row.user_agent == "pytest-agent"
    assert row.details["camera"]["folder_path"] == "front_door"


def test_create_broadcasts_camera_created_only_after_commit(
    api_client, events_stream, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = create(api_client, name="Front Door")
    assert response.status_code == 201
    assert events_stream.drain() == []

    for callback in callbacks:
        callback()

    [message] = events_stream.drain()
    assert message["type"] == "camera.created"
    assert message["data"] == {"camera_id": "front_door", "name": "Front Door"}


def test_timestamps_are_utc_with_z_whatever_the_local_time_zone(api_client, settings):
    settings.TIME_ZONE = "America/New_York"

    created = create(api_client).json()

    parsed = dt.datetime.fromisoformat(created["created_at"].replace("Z", "+00:00"))
    assert created["created_at"].endswith("Z") and parsed.utcoffset() == dt.timedelta(0)
    assert abs(parsed - timezone.now()) < dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"folder_path": "x"}, "name"),
        ({"name": "", "folder_path": "x"}, "name"),
        ({"name": "   ", "folder_path": "x"}, "name"),
        ({"name": None, "folder_path": "x"}, "name"),
        ({"name": 123, "folder_path": "x"}, "name"),
        ({"name": ["Front"], "folder_path": "x"}, "name"),
        ({"name": "x" * 256, "folder_path": "x"}, "name"),
        ({"name": "Front\x00Door", "folder_path": "x"}, "name"),
        ({"name": "Front\x1fDoor", "folder_path": "x"}, "name"),
        ({"name": "Front\x7fDoor", "folder_path": "x"}, "name"),
        ({"name": "Front\nDoor", "folder_path": "x"}, "name"),
        ({"name": "Front Door\t", "folder_path": "x"}, "name"),
        ({"name": "!!!", "folder_path": "x"}, "name"),
        ({"name": "前门", "folder_path": "x"}, "name"),
        ({"name": "Cam"}, "folder_path"),
        ({"name": "Cam", "folder_path": ""}, "folder_path"),
        ({"name": "Cam", "folder_path": "   "}, "folder_path"),
        ({"name": "Cam", "folder_path": None}, "folder_path"),
        ({"name": "Cam", "folder_path": 42}, "folder_path"),
        ({"name": "Cam", "folder_path": "a" * 501}, "folder_path"),
        ({"name": "Cam", "folder_path": "front\x00"}, "folder_path"),
        ({"name": "Cam", "folder_path": "front\ndoor"}, "folder_path"),
        ({"name": "Cam", "folder_path": "fr<ont"}, "folder_path"),
        ({"name": "Cam", "folder_path": "fr>ont"}, "folder_path"),
        ({"name": "Cam", "folder_path": 'fr"ont'}, "folder_path"),
        ({"name": "Cam", "folder_path": "fr|ont"}, "folder_path"),
        ({"name": "Cam", "folder_path": "fr?ont"}, "folder_path"),
        ({"name": "Cam", "folder_path": "fr*ont"}, "folder_path"),
        ({"name": "Cam", "folder_path": ".."}, "folder_path"),
        ({"name": "Cam", "folder_path": "../etc"}, "folder_path"),
        ({"name": "Cam", "folder_path": "a/../b"}, "folder_path"),
        ({"name": "Cam", "folder_path": "/srv/cams/.."}, "folder_path"),
        ({"name": "Cam", "folder_path": "a\\..\\b"}, "folder_path"),
        ({"name": "Cam", "folder_path": "x", "status": "sleeping"}, "status"),
        ({"name": "Cam", "folder_path": "x", "status": "ONLINE"}, "status"),
        ({"name": "Cam", "folder_path": "x", "status": None}, "status"),
        ({"name": "Cam", "folder_path": "x", "status": 1}, "status"),
        ({"name": "Cam", "folder_path": "x", "enabled": "yes"}, "enabled"),
        ({"name": "Cam", "folder_path": "x", "enabled": "true"}, "enabled"),
        ({"name": "Cam", "folder_path": "x", "enabled": 1}, "enabled"),
        ({"name": "Cam", "folder_path": "x", "enabled": 0}, "enabled"),
        ({"name": "Cam", "folder_path": "x", "enabled": None}, "enabled"),
        ({"name": "Cam", "folder_path": "x", "silence_threshold_minutes": 0}, "silence_threshold_minutes"),
        ({"name": "Cam", "folder_path": "x", "silence_threshold_minutes": -5}, "silence_threshold_minutes"),
        ({"name": "Cam", "folder_path": "x", "silence_threshold_minutes": 10081}, "silence_threshold_minutes"),
        ({"name": "Cam", "folder_path": "x", "silence_threshold_minutes": "5"}, "silence_threshold_minutes"),
        ({"name": "Cam", "folder_path": "x", "silence_threshold_minutes": 5.5}, "silence_threshold_minutes"),
        ({"name": "Cam", "folder_path": "x", "silence_threshold_minutes": True}, "silence_threshold_minutes"),
        ({"name": "Cam", "folder_path": "x", "id": "Front"}, "id"),
        ({"name": "Cam", "folder_path": "x", "id": "front-door"}, "id"),
        ({"name": "Cam", "folder_path": "x", "id": "front door"}, "id"),
        ({"name": "Cam", "folder_path": "x", "id": ""}, "id"),
        ({"name": "Cam", "folder_path": "x", "id": "a" * 65}, "id"),
        ({"name": "Cam", "folder_path": "x", "id": 7}, "id"),
        ({"name": "Cam", "folder_path": "x", "id": "café"}, "id"),
    ],
)
def test_create_rejects_each_invalid_field_with_422_naming_it(api_client, body, field):
    response = api_client.post("/api/cameras", body, format="json")

    errors = field_errors(response)
    assert errors.get(field)
    assert not Camera.objects.exists()
    assert not AuditLog.objects.exists()


def test_create_reports_every_invalid_field_at_once(api_client):
    response = api_client.post("/api/cameras", {"name": "", "folder_path": "..", "enabled": "no"}, format="json")

    assert set(field_errors(response)) == {"name", "folder_path", "enabled"}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "n" * 255, "folder_path": "f" * 500},
        {"name": "Cam", "folder_path": "x", "silence_threshold_minutes": 1},
        {"name": "Cam", "folder_path": "x", "silence_threshold_minutes": 10080},
        {"name": "Cam", "folder_path": "x", "silence_threshold_minutes": None},
        {"name": "Cam", "folder_path": "..hidden/a..b/c.."},
        {"name": "Cam", "folder_path": "x", "id": "a" * 64},
        {"name": "Cam", "folder_path": "x", "status": "unknown"},
        {"name": "Café Côté", "folder_path": "x"},
    ],
)
def test_create_accepts_boundary_values(api_client, body):
    assert api_client.post("/api/cameras", body, format="json").status_code == 201


def test_create_body_must_be_a_json_object(api_client):
    response = api_client.post("/api/cameras", [{"name": "Cam"}], format="json")

    assert field_errors(response) == {"non_field_errors": "Request body must be a JSON object"}


def test_malformed_json_is_400(api_client):
    response = api_client.post("/api/cameras", b"{not json", content_type="application/json")

    assert response.status_code == 400 and response.json()["code"] == "bad_request"


def test_non_json_body_is_415(api_client):
    response = api_client.post("/api/cameras", b"name=Cam", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415 and response.json()["code"] == "unsupported_media_type"


# --- create: duplicates ------------------------------------------------------------------------------------------


def assert_conflict(response, detail: str, existing_id: str):
    assert response.status_code == 409
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["code"] == "conflict" and body["detail"] == detail and body["existing_id"] == existing_id


def test_duplicate_id_is_409_with_existing_id(api_client):
    CameraFactory(id="front_door", name="Old Front", folder_path="old_front")

    response = create(api_client, name="Front Door", folder_path="new_front")

    assert_conflict(response, "Camera with id 'front_door' already exists", "front_door")
    assert Camera.objects.count() == 1


def test_duplicate_explicit_id_is_409(api_client):
    CameraFactory(id="cam_1", name="One", folder_path="one")

    response = create(api_client, id="cam_1", name="Two", folder_path="two")

    assert_conflict(response, "Camera with id 'cam_1' already exists", "cam_1")


def test_duplicate_name_is_409_with_existing_id(api_client):
    CameraFactory(id="porch", name="Front Door", folder_path="porch")

    response = create(api_client, id="other", name="Front Door", folder_path="other")

    assert_conflict(response, "Camera with name 'Front Door' already exists", "porch")


def test_duplicate_folder_is_409_with_existing_id(api_client):
    CameraFactory(id="porch", name="Porch", folder_path="front")

    response = create(api_client, name="Front Door", folder_path="front")

    assert_conflict(response, "Camera with folder_path 'front' already exists", "porch")


def test_absolute_folder_clashes_with_the_same_relative_folder(api_client, foscam_root):
    CameraFactory(id="porch", name="Porch", folder_path="front")
    absolute = f"{foscam_root}/front"

    response = create(api_client, name="Front Door", folder_path=absolute)

    assert_conflict(response, f"Camera with folder_path '{absolute}' already exists", "porch")


def test_relative_folder_clashes_with_the_same_absolute_folder(api_client, foscam_root):
    CameraFactory(id="porch", name="Porch", folder_path=f"{foscam_root}/front")

    response = create(api_client, name="Front Door", folder_path="front/")

    assert_conflict(response, "Camera with folder_path 'front/' already exists", "porch")


def test_folder_paths_that_normalise_to_the_same_folder_clash(api_client):
    CameraFactory(id="porch", name="Porch", folder_path="front")

    response = create(api_client, name="Front Door", folder_path="./front//")

    assert response.status_code == 409 and response.json()["existing_id"] == "porch"


def test_refused_create_writes_a_failure_audit_row(api_client):
    CameraFactory(id="front_door", name="Old", folder_path="old")

    create(api_client, name="Front Door", folder_path="new")

    [row] = audit_rows("camera_created")
    assert row.status == "failure" and row.resource_id == "front_door"
    assert row.details["existing_id"] == "front_door"


# --- read --------------------------------------------------------------------------------------------------------


def test_get_returns_the_camera_with_and_without_trailing_slash(api_client):
    camera = CameraFactory(id="garage", name="Garage", folder_path="garage", silence_threshold_minutes=15)

    for path in ("/api/cameras/garage", "/api/cameras/garage/"):
        response = api_client.get(path)
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == "garage" and body["silence_threshold_minutes"] == 15
        assert body["created_at"] == camera.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def test_get_unknown_camera_is_404_problem(api_client):
    response = api_client.get("/api/cameras/nope")

    assert response.status_code == 404 and response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["code"] == "not_found" and body["detail"] == "Camera nope not found"
    assert body["instance"] == "/api/cameras/nope"


def list_ids(api_client, query: str = "") -> list[str]:
    response = api_client.get(f"/api/cameras{query}")
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def test_list_is_an_envelope_ordered_by_name_then_id(api_client):
    CameraFactory(id="b", name="Bravo")
    CameraFactory(id="a", name="alpha")
    CameraFactory(id="c", name="Charlie")

    response = api_client.get("/api/cameras/")

    body = response.json()
    assert body["pagination"] == {"total": 3, "limit": 100, "offset": 0, "next_cursor": None, "has_more": False}
    # PostgreSQL collation decides upper/lower ordering; the order is the database's ORDER BY name, id
    expected = list(Camera.objects.order_by("name", "id").values_list("id", flat=True))
    assert [item["id"] for item in body["items"]] == expected


def test_list_pages_with_limit_and_offset(api_client):
    for index in range(5):
        CameraFactory(id=f"cam_{index}", name=f"Cam {index}")

    first = api_client.get("/api/cameras?limit=2").json()
    last = api_client.get("/api/cameras?limit=2&offset=4").json()
    past = api_client.get("/api/cameras?offset=10").json()

    assert [item["id"] for item in first["items"]] == ["cam_0", "cam_1"]
    assert first["pagination"]["has_more"] is True and first["pagination"]["total"] == 5
    assert [item["id"] for item in last["items"]] == ["cam_4"] and last["pagination"]["has_more"] is False
    assert past["items"] == [] and past["pagination"]["total"] == 5 and past["pagination"]["offset"] == 10


def test_list_filters_by_status_list_enabled_and_name_substring(api_client):
    CameraFactory(id="front", name="Front Door", status="online")
    CameraFactory(id="back", name="Back Yard", status="offline", enabled=False)
    CameraFactory(id="side", name="Side Door", status="error")
    CameraFactory(id="shed", name="Shed", status="unknown")

    assert list_ids(api_client, "?status=offline,error") == ["back", "side"]
    assert list_ids(api_client, "?status=online,") == ["front"]
    assert list_ids(api_client, "?enabled=false") == ["back"]
    assert list_ids(api_client, "?enabled=YES") == ["front", "shed", "side"]
    assert list_ids(api_client, "?q=door") == ["front", "side"]
    assert list_ids(api_client, "?q=DOOR&status=error") == ["side"]
    assert list_ids(api_client, "?q=%25") == []
    assert list_ids(api_client, "?unknown_param=1") == ["back", "front", "shed", "side"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?status=sleeping", "status"),
        ("?status=online,bogus", "status"),
        ("?enabled=maybe", "enabled"),
        ("?q=" + "x" * 101, "q"),
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?limit=ten", "limit"),
        ("?offset=-1", "offset"),
    ],
)
def test_list_rejects_invalid_query_parameters_with_422(api_client, query, field):
    assert field in field_errors(api_client.get(f"/api/cameras{query}"))


def test_list_accepts_the_maximum_limit_and_a_100_character_query(api_client):
    assert api_client.get("/api/cameras?limit=1000").json()["pagination"]["limit"] == 1000
    assert api_client.get("/api/cameras?q=" + "x" * 100).status_code == 200


def test_list_query_count_does_not_grow_with_the_page(api_client):
    CameraFactory.create_batch(3)
    with CaptureQueriesContext(connection) as small:
        assert len(api_client.get("/api/cameras").json()["items"]) == 3
    CameraFactory.create_batch(40)
    with CaptureQueriesContext(connection) as large:
        assert len(api_client.get("/api/cameras?status=online&enabled=true&q=cam").json()["items"]) == 43

    assert len(large) == len(small) <= 2


# --- update ------------------------------------------------------------------------------------------------------


def test_patch_changes_only_the_fields_sent_and_audits_the_changes(
    api_client, events_stream, django_capture_on_commit_callbacks
):
    camera = CameraFactory(id="garage", name="Garage", folder_path="garage", silence_threshold_minutes=10)
    before = camera.updated_at

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.patch("/api/cameras/garage", {"name": "Garage East", "enabled": False}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "garage" and body["name"] == "Garage East" and body["enabled"] is False
    assert body["folder_path"] == "garage" and body["silence_threshold_minutes"] == 10
    camera.refresh_from_db()
    assert camera.name == "Garage East" and camera.updated_at > before
    [row] = audit_rows("camera_updated")
    assert row.resource_id == "garage" and row.actor == "anonymous" and row.status == "success"
    assert row.details == {
        "changes": {"name": {"old": "Garage", "new": "Garage East"}, "enabled": {"old": True, "new": False}}
    }
    assert [m["type"] for m in events_stream.drain()] == ["camera.updated"]


def test_put_is_partial_like_patch(api_client):
    CameraFactory(id="garage", name="Garage", folder_path="garage")

    response = api_client.put("/api/cameras/garage/", {"silence_threshold_minutes": 60}, format="json")

    assert response.status_code == 200
    assert response.json()["silence_threshold_minutes"] == 60 and response.json()["name"] == "Garage"


def test_null_clears_the_silence_threshold(api_client):
    CameraFactory(id="garage", silence_threshold_minutes=10)

    response = api_client.patch("/api/cameras/garage", {"silence_threshold_minutes": None}, format="json")

    assert response.status_code == 200 and response.json()["silence_threshold_minutes"] is None
    assert Camera.objects.get(pk="garage").silence_threshold_minutes is None


def test_empty_patch_is_a_no_op(api_client, events_stream, django_capture_on_commit_callbacks):
    camera = CameraFactory(id="garage")

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.patch("/api/cameras/garage", {}, format="json")

    assert response.status_code == 200 and response.json()["updated_at"].endswith("Z")
    camera_after = Camera.objects.get(pk="garage")
    assert camera_after.updated_at == camera.updated_at
    assert not AuditLog.objects.exists()
    assert events_stream.drain() == []


def test_patch_with_unchanged_values_or_only_an_id_is_a_no_op(api_client):
    camera = CameraFactory(id="garage", name="Garage")

    first = api_client.patch("/api/cameras/garage", {"name": "Garage", "status": "online"}, format="json")
    second = api_client.patch("/api/cameras/garage", {"id": "renamed"}, format="json")

    assert first.status_code == second.status_code == 200
    assert second.json()["id"] == "garage" and not Camera.objects.filter(pk="renamed").exists()
    assert Camera.objects.get(pk="garage").updated_at == camera.updated_at
    assert not AuditLog.objects.exists()


def test_status_change_sets_status_changed_at_and_broadcasts_it(
    api_client, events_stream, django_capture_on_commit_callbacks
):
    seen = timezone.now() - dt.timedelta(minutes=5)
    camera = CameraFactory(id="garage", name="Garage", status="online", last_seen_at=seen)
    camera.status_changed_at = timezone.now() - dt.timedelta(days=1)
    camera.save()

    signals = []

    def receiver(sender, **kwargs):
        signals.append(kwargs)

    camera_status_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = api_client.patch("/api/cameras/garage", {"status": "offline"}, format="json")
    finally:
        camera_status_changed.disconnect(receiver)

    assert response.status_code == 200
    camera.refresh_from_db()
    assert camera.status == "offline"
    [signal] = signals  # what the alert engine listens to for camera_offline rules (§5.5)
    assert (signal["camera_id"], signal["status"], signal["previous_status"], signal["reason"]) == (
        "garage",
        "offline",
        "online",
        "api",
    )
    assert timezone.now() - camera.status_changed_at < dt.timedelta(minutes=1)
    messages = {m["type"]: m["data"] for m in events_stream.drain()}
    assert messages["camera.updated"] == {"camera_id": "garage", "name": "Garage"}
    assert messages["camera.status_changed"] == {
        "camera_id": "garage",
        "camera_name": "Garage",
        "status": "offline",
        "previous_status": "online",
        "reason": "api",
        "last_seen_at": seen.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
    }
    [row] = audit_rows("camera_updated")
    assert row.details["changes"] == {"status": {"old": "online", "new": "offline"}}


def test_other_changes_keep_status_changed_at(api_client):
    camera = CameraFactory(id="garage")
    camera.status_changed_at = timezone.now() - dt.timedelta(days=1)
    camera.save()

    api_client.patch("/api/cameras/garage", {"name": "Renamed", "status": "online"}, format="json")

    assert Camera.objects.get(pk="garage").status_changed_at == camera.status_changed_at


def test_patch_unknown_camera_is_404(api_client):
    response = api_client.patch("/api/cameras/nope", {"name": "X"}, format="json")

    assert response.status_code == 404 and response.json()["detail"] == "Camera nope not found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": "***"}, "name"),
        ({"folder_path": "../up"}, "folder_path"),
        ({"folder_path": "a|b"}, "folder_path"),
        ({"status": "broken"}, "status"),
        ({"enabled": "no"}, "enabled"),
        ({"silence_threshold_minutes": 0}, "silence_threshold_minutes"),
    ],
)
def test_patch_rejects_invalid_fields_with_422(api_client, body, field):
    camera = CameraFactory(id="garage", name="Garage")

    assert field in field_errors(api_client.patch("/api/cameras/garage", body, format="json"))
    assert Camera.objects.get(pk="garage").name == camera.name
    assert not AuditLog.objects.exists()


def test_patch_to_another_cameras_name_is_409(api_client):
    CameraFactory(id="porch", name="Porch")
    CameraFactory(id="garage", name="Garage")

    response = api_client.patch("/api/cameras/garage", {"name": "Porch"}, format="json")

    assert_conflict(response, "Camera with name 'Porch' already exists", "porch")
    assert Camera.objects.get(pk="garage").name == "Garage"
    [row] = audit_rows("camera_updated")
    assert row.status == "failure"


def test_patch_to_another_cameras_resolved_folder_is_409(api_client, foscam_root):
    CameraFactory(id="porch", folder_path="porch")
    CameraFactory(id="garage", folder_path="garage")

    response = api_client.patch("/api/cameras/garage", {"folder_path": f"{foscam_root}/porch"}, format="json")

    assert_conflict(response, f"Camera with folder_path '{foscam_root}/porch' already exists", "porch")


def test_patch_to_its_own_folder_spelled_differently_is_allowed(api_client, foscam_root):
    CameraFactory(id="garage", folder_path="garage")

    response = api_client.patch("/api/cameras/garage", {"folder_path": f"{foscam_root}/garage"}, format="json")

    assert response.status_code == 200 and response.json()["folder_path"] == f"{foscam_root}/garage"


# --- delete ------------------------------------------------------------------------------------------------------


def make_camera_with_history(camera_id: str, thumbnails_dir=None) -> dict:
    """A camera with one of everything that §1.6 says goes with it."""
    camera = CameraFactory(id=camera_id, name=f"Camera {camera_id}", folder_path=camera_id)
    zone = ZoneFactory(camera=camera)
    ingested = IngestedFileFactory(camera=camera)
    batch = BatchFactory(camera=camera)
    detections = []
    for index in range(3):
        thumbnail = None
        if thumbnails_dir is not None:
            thumbnail = thumbnails_dir / f"{camera_id}_{index}_thumb.jpg"
            thumbnail.write_bytes(b"jpeg")
        detections.append(
            DetectionFactory(
                camera=camera, batch=batch, source_file=ingested, thumbnail_path=str(thumbnail) if thumbnail else None
            )
        )
    event = EventFactory(camera=camera, batch=batch, detections=detections)
    audit = EventAuditFactory(event=event)
    feedback = EventFeedbackFactory(event=event)
    alert = AlertFactory(event=event)
    channel = NotificationChannelFactory()
    delivery = DeliveryFactory(alert=alert, channel=channel)
    activity = ActivityBaseline.objects.create(camera=camera, day_of_week=0, hour=1, avg_count=1.0, sample_count=1)
    klass = ClassBaseline.objects.create(camera=camera, object_class="person", hour=1, frequency=1.0, sample_count=1)
    preference = NotificationPreference.objects.create(camera=camera)
    quiet = QuietHoursFactory(camera=camera)
    entity = EntityFactory(primary_detection=detections[0])
    return {
        "camera": camera,
        "zone": zone,
        "ingested": ingested,
        "batch": batch,
        "detections": detections,
        "event": event,
        "audit": audit,
        "feedback": feedback,
        "alert": alert,
        "channel": channel,
        "delivery": delivery,
        "activity": activity,
        "class": klass,
        "preference": preference,
        "quiet": quiet,
        "entity": entity,
    }


def test_delete_removes_the_camera_and_everything_it_recorded(api_client, django_capture_on_commit_callbacks):
    doomed = make_camera_with_history("doomed")
    kept = make_camera_with_history("kept")

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.delete("/api/cameras/doomed")

    assert response.status_code == 204 and response.content == b""
    assert not Camera.objects.filter(pk="doomed").exists()
    for model in (Zone, IngestedFile, Batch, Detection, Event, Alert, ActivityBaseline, ClassBaseline, QuietHours):
        assert not model.objects.filter(camera_id="doomed").exists(), model.__name__
        assert model.objects.filter(camera_id="kept").exists(), model.__name__
    assert not EventDetection.objects.filter(event_id=doomed["event"].id).exists()
    assert not EventAudit.objects.filter(pk=doomed["audit"].pk).exists()
    assert not EventFeedback.objects.filter(pk=doomed["feedback"].pk).exists()
    assert not Delivery.objects.filter(pk=doomed["delivery"].pk).exists()
    assert not NotificationPreference.objects.filter(camera_id="doomed").exists()
    assert EventAudit.objects.filter(pk=kept["audit"].pk).exists()
    assert Delivery.objects.filter(pk=kept["delivery"].pk).exists()
    # what only referenced the camera's rows survives, with the reference cleared
    assert NotificationChannel.objects.filter(pk=doomed["channel"].pk).exists()
    assert Entity.objects.get(pk=doomed["entity"].pk).primary_detection_id is None
    assert Entity.objects.get(pk=kept["entity"].pk).primary_detection_id == kept["detections"][0].pk


def test_delete_uses_one_statement_instead_of_loading_rows(api_client):
    make_camera_with_history("doomed")

    with CaptureQueriesContext(connection) as queries:
        assert api_client.delete("/api/cameras/doomed").status_code == 204

    deletes = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("DELETE")]
    assert len(deletes) == 1 and '"cameras_camera"' in deletes[0]


def test_delete_removes_thumbnails_after_commit(api_client, data_dir, tmp_path, django_capture_on_commit_callbacks):
    thumbnails = data_dir / "thumbnails"
    thumbnails.mkdir()
    doomed = make_camera_with_history("doomed", thumbnails)
    make_camera_with_history("kept", thumbnails)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"keep me")
    DetectionFactory(camera=doomed["camera"], thumbnail_path=str(outside))
    DetectionFactory(camera=doomed["camera"], thumbnail_path=str(thumbnails / "already_gone_thumb.jpg"))
    DetectionFactory(camera=doomed["camera"], thumbnail_path=str(thumbnails / ".." / "outside2.jpg"))
    (data_dir / "outside2.jpg").write_bytes(b"keep me too")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert api_client.delete("/api/cameras/doomed").status_code == 204
    assert len(list(thumbnails.glob("doomed_*"))) == 3  # nothing removed before commit
    for callback in callbacks:
        callback()

    assert sorted(p.name for p in thumbnails.iterdir()) == [f"kept_{i}_thumb.jpg" for i in range(3)]
    assert outside.exists() and (data_dir / "outside2.jpg").exists()


def test_delete_invalidates_cached_totals(api_client, django_capture_on_commit_callbacks):
    make_camera_with_history("doomed")
    assert cached_count(Detection.objects.all(), scopes=("detections",)) == 3
    assert cached_count(Event.objects.all(), scopes=("events",)) == 1

    with django_capture_on_commit_callbacks(execute=True):
        api_client.delete("/api/cameras/doomed")

    assert cached_count(Detection.objects.all(), scopes=("detections",)) == 0
    assert cached_count(Event.objects.all(), scopes=("events",)) == 0


def test_delete_audits_and_broadcasts(api_client, events_stream, django_capture_on_commit_callbacks):
    CameraFactory(id="garage", name="Garage", folder_path="garage")

    with django_capture_on_commit_callbacks(execute=True):
        api_client.delete("/api/cameras/garage/")

    [row] = audit_rows("camera_deleted")
    assert (row.resource_type, row.resource_id, row.status) == ("camera", "garage", "success")
    assert row.details["name"] == "Garage" and row.details["folder_path"] == "garage"
    [message] = events_stream.drain()
    assert message["type"] == "camera.deleted" and message["data"] == {"camera_id": "garage", "name": "Garage"}


def test_delete_unknown_camera_is_404(api_client):
    response = api_client.delete("/api/cameras/nope")

    assert response.status_code == 404 and response.json()["detail"] == "Camera nope not found"
    assert not AuditLog.objects.exists()


def test_delete_leaves_files_on_disk_alone(api_client, foscam_root):
    folder = foscam_root / "garage"
    folder.mkdir()
    (folder / "img.jpg").write_bytes(b"jpeg")
    CameraFactory(id="garage", folder_path="garage")

    api_client.delete("/api/cameras/garage")

    assert (folder / "img.jpg").exists() and os.path.isdir(folder)


# --- verbs -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("delete", "/api/cameras", {"GET", "POST"}),
        ("put", "/api/cameras/", {"GET", "POST"}),
        ("post", "/api/cameras/garage", {"GET", "PATCH", "PUT", "DELETE"}),
    ],
)
def test_wrong_verb_is_405_with_allow_header(api_client, method, path, allowed):
    CameraFactory(id="garage")

    response = getattr(api_client, method)(path, {}, format="json")

    assert response.status_code == 405 and response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "method_not_allowed"
    assert allowed <= {verb.strip() for verb in response["Allow"].split(",")}
