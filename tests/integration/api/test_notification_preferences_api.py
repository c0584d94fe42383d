"""Global notification preferences and per-camera overrides over HTTP (CONTRACT §2.8, §1.3, §6.8)."""

from __future__ import annotations

import pytest

from alerts.models import NotificationPreference
from system.models import AuditLog
from tests.factories import CameraFactory
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

URL = "/api/notifications/preferences"
CAMERAS = f"{URL}/cameras"


@pytest.fixture
def camera():
    return CameraFactory(id="front_door", name="Front Door")


def override(camera, **fields) -> NotificationPreference:
    return NotificationPreference.objects.create(camera=camera, **fields)


# --- global row ----------------------------------------------------------------------------------------------------


def test_get_returns_the_global_row_with_its_defaults(api_client):
    response = api_client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"enabled", "severities", "min_risk_score", "sound", "updated_at"}
    assert (body["enabled"], body["severities"], body["min_risk_score"], body["sound"]) == (
        True,
        ["medium", "high", "critical"],
        0,
        "default",
    )
    assert body["updated_at"].endswith("Z")


def test_a_missing_global_row_is_recreated_on_read(api_client):
    NotificationPreference.objects.filter(camera__isnull=True).delete()

    body = api_client.get(f"{URL}/").json()

    assert body["severities"] == ["medium", "high", "critical"] and body["enabled"] is True
    assert NotificationPreference.objects.filter(camera__isnull=True).count() == 1


def test_patch_updates_the_fields_sent_and_audits_with_resource_id_global(api_client):
    before = api_client.get(URL).json()

    response = api_client.patch(URL, {"severities": ["critical", "high", "high"], "sound": "chime"}, format="json")

    body = response.json()
    assert response.status_code == 200
    assert (body["severities"], body["sound"], body["enabled"], body["min_risk_score"]) == (
        ["high", "critical"],
        "chime",
        True,
        0,
    )
    assert body["updated_at"] > before["updated_at"]
    (row,) = AuditLog.objects.filter(action="preferences_updated")
    assert (row.resource_type, row.resource_id, row.status) == ("notification_preference", "global", "success")
    assert row.details["changes"]["sound"] == {"old": "default", "new": "chime"}


def test_put_is_partial_and_an_empty_body_changes_nothing(api_client):
    assert api_client.put(URL, {"enabled": False, "min_risk_score": 40}, format="json").json()["enabled"] is False
    before = api_client.get(URL).json()

    after = api_client.put(URL, {}, format="json").json()

    assert after == before and after["min_risk_score"] == 40
    assert AuditLog.objects.filter(action="preferences_updated").count() == 1


def test_patch_missing_global_row_recreates_it_first(api_client):
    NotificationPreference.objects.filter(camera__isnull=True).delete()

    body = api_client.patch(URL, {"enabled": False}, format="json").json()

    assert body["enabled"] is False and body["severities"] == ["medium", "high", "critical"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"enabled": "false"}, "enabled"),
        ({"enabled": None}, "enabled"),
        ({"severities": []}, "severities"),
        ({"severities": None}, "severities"),
        ({"severities": "high"}, "severities"),
        ({"severities": ["high", "extreme"]}, "severities"),
        ({"min_risk_score": -1}, "min_risk_score"),
        ({"min_risk_score": 101}, "min_risk_score"),
        ({"min_risk_score": "50"}, "min_risk_score"),
        ({"min_risk_score": None}, "min_risk_score"),
        ({"sound": "siren"}, "sound"),
    ],
)
def test_invalid_preferences_are_422(api_client, body, field):
    assert field in error_fields(api_client.patch(URL, body, format="json"))
    assert not AuditLog.objects.exists()


# --- camera overrides ----------------------------------------------------------------------------------------------


def test_put_creates_an_override_with_201_then_updates_with_200(api_client, camera):
    created = api_client.put(f"{CAMERAS}/front_door", {"enabled": False}, format="json")

    assert created.status_code == 201, created.content
    body = created.json()
    assert set(body) == {"camera_id", "enabled", "severities", "min_risk_score", "updated_at"}
    assert (body["camera_id"], body["enabled"], body["severities"], body["min_risk_score"]) == (
        "front_door",
        False,
        None,
        None,
    )
    updated = api_client.patch(
        f"{CAMERAS}/front_door/", {"severities": ["critical"], "min_risk_score": 70}, format="json"
    )
    assert updated.status_code == 200
    assert (updated.json()["enabled"], updated.json()["severities"], updated.json()["min_risk_score"]) == (
        False,
        ["critical"],
        70,
    )
    rows = list(AuditLog.objects.filter(action="preferences_updated").order_by("id"))
    assert [row.resource_id for row in rows] == ["front_door", "front_door"]
    assert rows[0].details["created"] is True


def test_null_clears_an_override_field_back_to_inherit(api_client, camera):
    override(camera, severities=["high"], min_risk_score=50)

    body = api_client.patch(f"{CAMERAS}/front_door", {"severities": None, "min_risk_score": None}, format="json").json()

    assert body["severities"] is None and body["min_risk_score"] is None


def test_empty_override_body_changes_nothing(api_client, camera):
    override(camera, enabled=False)

    response = api_client.patch(f"{CAMERAS}/front_door", {}, format="json")

    assert response.status_code == 200 and response.json()["enabled"] is False
    assert not AuditLog.objects.exists()


def test_override_of_an_unknown_camera_is_404(api_client):
    problem(api_client.put(f"{CAMERAS}/nowhere", {"enabled": False}, format="json"), 404, "not_found")
    problem(api_client.get(f"{CAMERAS}/nowhere"), 404, "not_found")
    problem(api_client.delete(f"{CAMERAS}/nowhere"), 404, "not_found")
    assert NotificationPreference.objects.filter(camera__isnull=False).count() == 0


def test_get_without_an_override_is_404(api_client, camera):
    problem(api_client.get(f"{CAMERAS}/front_door"), 404, "not_found")
    problem(api_client.delete(f"{CAMERAS}/front_door"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"enabled": 0}, "enabled"),
        ({"severities": []}, "severities"),
        ({"severities": ["loud"]}, "severities"),
        ({"min_risk_score": 200}, "min_risk_score"),
        ({"min_risk_score": 1.5}, "min_risk_score"),
    ],
)
def test_invalid_override_is_422(api_client, camera, body, field):
    assert field in error_fields(api_client.put(f"{CAMERAS}/front_door", body, format="json"))
    assert not NotificationPreference.objects.filter(camera=camera).exists()


def test_get_and_list_overrides(api_client, camera, django_assert_max_num_queries):
    override(camera, severities=["high", "critical"])
    for index in range(12):
        override(CameraFactory(id=f"cam_{index:02}"), enabled=index % 2 == 0)

    detail = api_client.get(f"{CAMERAS}/front_door").json()
    with django_assert_max_num_queries(3):
        page = api_client.get(CAMERAS, {"limit": 5}).json()

    assert detail["severities"] == ["high", "critical"]
    assert [item["camera_id"] for item in page["items"]] == [f"cam_{i:02}" for i in range(5)]
    assert page["pagination"] == {"total": 13, "limit": 5, "offset": 0, "next_cursor": None, "has_more": True}
    assert "limit" in error_fields(api_client.get(CAMERAS, {"limit": 1001}))


def test_delete_reverts_the_camera_to_the_global_row(api_client, camera):
    override(camera, enabled=False)

    response = api_client.delete(f"{CAMERAS}/front_door")

    assert response.status_code == 204
    assert not NotificationPreference.objects.filter(camera=camera).exists()
    assert NotificationPreference.objects.filter(camera__isnull=True).exists()
    row = AuditLog.objects.get(action="preferences_updated")
    assert row.resource_id == "front_door" and row.details["deleted"] is True
    problem(api_client.get(f"{CAMERAS}/front_door"), 404, "not_found")
