"""Quiet-hours periods over HTTP (CONTRACT §2.8, §1.3, §6.8)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from alerts.models import QuietHours
from system.models import AuditLog
from tests.factories import CameraFactory, QuietHoursFactory
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

URL = "/api/notifications/quiet-hours"
ALL_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


@pytest.fixture
def camera():
    return CameraFactory(id="front_door", name="Front Door")


def create(api_client, **body):
    body.setdefault("start_time", "22:00")
    body.setdefault("end_time", "06:30")
    return api_client.post(URL, body, format="json")


def test_create_with_defaults(api_client):
    response = create(api_client)

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {
        "id",
        "label",
        "camera_id",
        "start_time",
        "end_time",
        "days",
        "allow_critical",
        "enabled",
        "created_at",
        "updated_at",
    }
    assert uuid.UUID(body["id"]).version == 4
    assert response["Location"] == f"{URL}/{body['id']}"
    assert (body["start_time"], body["end_time"], body["days"]) == ("22:00:00", "06:30:00", ALL_DAYS)
    assert (body["label"], body["camera_id"], body["allow_critical"], body["enabled"]) == ("", None, True, True)
    row = AuditLog.objects.get(action="quiet_hours_created")
    assert (row.resource_type, row.resource_id) == ("quiet_hours", body["id"])


def test_create_for_a_camera_with_every_field(api_client, camera):
    body = create(
        api_client,
        start_time="01:02:03",
        end_time="04:05",
        days=["Friday", "SATURDAY", "friday"],
        label="Weekend nights",
        camera_id="front_door",
        allow_critical=False,
        enabled=False,
    ).json()

    assert (body["start_time"], body["end_time"], body["days"]) == ("01:02:03", "04:05:00", ["friday", "saturday"])
    assert (body["label"], body["camera_id"], body["allow_critical"], body["enabled"]) == (
        "Weekend nights",
        "front_door",
        False,
        False,
    )
    stored = QuietHours.objects.get(pk=body["id"])
    assert stored.start_time == dt.time(1, 2, 3) and stored.days == ["friday", "saturday"]


def test_equal_times_are_422_with_the_contract_message(api_client):
    response = create(api_client, start_time="22:00", end_time="22:00:00")

    body = problem(response, 422, "validation_error")
    assert "start_time must differ from end_time" in [error["message"] for error in body["errors"]]
    assert not QuietHours.objects.exists()


def test_unknown_camera_is_422(api_client):
    assert "camera_id" in error_fields(create(api_client, camera_id="nowhere"))


@pytest.mark.parametrize("missing", ["start_time", "end_time"])
def test_times_are_required(api_client, missing):
    body = {"start_time": "22:00", "end_time": "06:00"}
    del body[missing]

    assert missing in error_fields(api_client.post(URL, body, format="json"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"start_time": "24:00"}, "start_time"),
        ({"start_time": "7:00"}, "start_time"),
        ({"start_time": "07:60"}, "start_time"),
        ({"end_time": "06:00:61"}, "end_time"),
        ({"end_time": 600}, "end_time"),
        ({"end_time": "06:00pm"}, "end_time"),
        ({"days": []}, "days"),
        ({"days": "monday"}, "days"),
        ({"days": ["funday"]}, "days"),
        ({"days": [1]}, "days"),
        ({"label": "x" * 101}, "label"),
        ({"label": 3}, "label"),
        ({"allow_critical": "true"}, "allow_critical"),
        ({"enabled": None}, "enabled"),
        ({"camera_id": 12}, "camera_id"),
    ],
)
def test_invalid_fields_are_422(api_client, body, field):
    assert field in error_fields(create(api_client, **body))
    assert not AuditLog.objects.exists()


def test_list_filters_by_camera_and_enabled(api_client, camera, django_assert_max_num_queries):
    everywhere = QuietHoursFactory(start_time=dt.time(23, 0))
    porch = QuietHoursFactory(camera=camera, start_time=dt.time(1, 0), enabled=False)
    for hour in range(2, 12):
        QuietHoursFactory(start_time=dt.time(hour, 0), end_time=dt.time(hour, 30))

    with django_assert_max_num_queries(3):
        everything = api_client.get(URL).json()
    for_camera = api_client.get(URL, {"camera_id": "front_door"}).json()
    enabled = api_client.get(URL, {"enabled": "yes", "limit": 100}).json()

    assert everything["pagination"]["total"] == 12
    assert everything["items"][0]["id"] == str(porch.id) and everything["items"][-1]["id"] == str(everywhere.id)
    assert [item["id"] for item in for_camera["items"]] == [str(porch.id)]
    assert str(porch.id) not in {item["id"] for item in enabled["items"]} and len(enabled["items"]) == 11
    assert "enabled" in error_fields(api_client.get(URL, {"enabled": "sometimes"}))
    assert "limit" in error_fields(api_client.get(URL, {"limit": 0}))


def test_get_patch_put_delete(api_client, camera):
    period_id = create(api_client).json()["id"]

    assert api_client.get(f"{URL}/{period_id}/").json()["start_time"] == "22:00:00"
    patched = api_client.patch(f"{URL}/{period_id}", {"days": ["Sunday"], "camera_id": "front_door"}, format="json")
    assert patched.status_code == 200
    assert (patched.json()["days"], patched.json()["camera_id"], patched.json()["end_time"]) == (
        ["sunday"],
        "front_door",
        "06:30:00",
    )
    put = api_client.put(f"{URL}/{period_id}", {"camera_id": None, "label": "All"}, format="json").json()
    assert (put["camera_id"], put["label"]) == (None, "All")
    update_rows = AuditLog.objects.filter(action="quiet_hours_updated").order_by("id")
    assert update_rows[0].details["changes"]["days"] == {"old": ALL_DAYS, "new": ["sunday"]}

    assert api_client.delete(f"{URL}/{period_id}").status_code == 204
    assert not QuietHours.objects.exists()
    problem(api_client.get(f"{URL}/{period_id}"), 404, "not_found")
    assert AuditLog.objects.get(action="quiet_hours_deleted").resource_id == period_id


def test_patch_to_times_equal_to_the_stored_other_end_is_422(api_client):
    period_id = create(api_client, start_time="22:00", end_time="06:00").json()["id"]

    response = api_client.patch(f"{URL}/{period_id}", {"end_time": "22:00"}, format="json")

    assert "start_time must differ from end_time" in [e["message"] for e in response.json()["errors"]]
    assert QuietHours.objects.get(pk=period_id).end_time == dt.time(6, 0)


def test_patch_validation_and_no_op(api_client):
    period_id = create(api_client).json()["id"]

    assert "days" in error_fields(api_client.patch(f"{URL}/{period_id}", {"days": []}, format="json"))
    assert "camera_id" in error_fields(api_client.patch(f"{URL}/{period_id}", {"camera_id": "ghost"}, format="json"))
    before = api_client.get(f"{URL}/{period_id}").json()
    assert api_client.patch(f"{URL}/{period_id}", {}, format="json").json() == before
    assert not AuditLog.objects.filter(action="quiet_hours_updated").exists()


def test_unknown_ids_are_404(api_client):
    missing = uuid.uuid4()

    problem(api_client.get(f"{URL}/{missing}"), 404, "not_found")
    problem(api_client.patch(f"{URL}/{missing}", {"label": "x"}, format="json"), 404, "not_found")
    problem(api_client.delete(f"{URL}/{missing}"), 404, "not_found")
    problem(api_client.get(f"{URL}/12"), 404, "not_found")
