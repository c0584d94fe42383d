"""``POST /api/admin/seed`` and ``POST /api/admin/clear`` (CONTRACT §2.16, §6.8)."""

from __future__ import annotations

import pytest

from alerts.models import Alert, AlertRule, NotificationChannel
from cameras.models import Camera
from events.models import Detection, Event
from system.models import AuditLog, LogEntry
from tests.factories import (
    AlertRuleFactory,
    AuditLogFactory,
    CameraFactory,
    DetectionFactory,
    EventFactory,
    LogEntryFactory,
    NotificationChannelFactory,
)

pytestmark = pytest.mark.django_db

SEED_COUNT_KEYS = {"cameras_created", "events_created", "detections_created", "alerts_created", "cleared"}


@pytest.fixture
def admin_enabled(settings):
    settings.DEBUG = False
    settings.ADMIN_API_ENABLED = True


@pytest.fixture
def admin_disabled(settings):
    settings.DEBUG = False
    settings.ADMIN_API_ENABLED = False


def post(api_client, path, body=None):
    return api_client.post(path, body if body is not None else {}, format="json")


@pytest.mark.usefixtures("admin_disabled")
@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/admin/seed", {}),
        ("/api/admin/clear", {"confirm": "DELETE_ALL_DATA"}),
        ("/api/admin/clear/", {"confirm": "DELETE_ALL_DATA"}),
        ("/api/admin/anything-else", {}),
    ],
)
def test_every_admin_path_is_refused_while_the_admin_api_is_disabled(api_client, path, body):
    EventFactory()

    response = post(api_client, path, body)

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "admin_disabled" and problem["detail"] == "Admin API is disabled"
    assert problem["type"] == "urn:hsi:problem:admin_disabled" and problem["instance"] == path
    assert Event.objects.count() == 1 and not AuditLog.objects.filter(action__startswith="data_").exists()


@pytest.mark.usefixtures("admin_disabled")
def test_the_guard_comes_before_method_and_validation_checks(api_client):
    assert api_client.get("/api/admin/seed").json()["code"] == "admin_disabled"
    assert post(api_client, "/api/admin/seed", {"cameras": 99}).json()["code"] == "admin_disabled"


def test_debug_mode_enables_the_admin_api(api_client, settings):
    settings.DEBUG, settings.ADMIN_API_ENABLED = True, False

    response = post(api_client, "/api/admin/seed", {"cameras": 1, "events": 2})

    assert response.status_code == 201


@pytest.mark.usefixtures("admin_enabled")
def test_seed_returns_counts_that_match_the_database(api_client):
    AlertRuleFactory(risk_threshold=30, cooldown_seconds=0)

    response = post(api_client, "/api/admin/seed/", {"cameras": 4, "events": 50, "days": 3})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == SEED_COUNT_KEYS
    assert body["cameras_created"] == Camera.objects.count() == 4
    assert body["events_created"] == Event.objects.count() == 50
    assert body["detections_created"] == Detection.objects.count()
    assert body["alerts_created"] == Alert.objects.count() == Event.objects.filter(risk_score__gte=30).count()
    assert body["cleared"] is False


@pytest.mark.usefixtures("admin_enabled")
def test_seed_defaults_to_three_cameras_and_twenty_events(api_client):
    response = api_client.post("/api/admin/seed")

    assert response.status_code == 201
    assert response.json()["cameras_created"] == 3 and response.json()["events_created"] == 20
    assert sorted(Camera.objects.values_list("id", flat=True)) == ["backyard", "front_door", "garage"]


@pytest.mark.usefixtures("admin_enabled")
def test_seed_with_500_events_has_roughly_the_documented_risk_mix(api_client):
    response = post(api_client, "/api/admin/seed", {"events": 500, "days": 30})

    assert response.status_code == 201
    total = Event.objects.count()
    shares = {level: Event.objects.filter(risk_level=level).count() / total for level in ("low", "medium", "high")}
    assert total == 500
    assert abs(shares["low"] - 0.60) <= 0.05 and abs(shares["medium"] - 0.25) <= 0.05
    assert abs(shares["high"] - 0.12) <= 0.03
    assert Event.objects.filter(analysis_status="rules").count() == 500


@pytest.mark.usefixtures("admin_enabled")
def test_seeding_twice_reuses_the_demo_cameras(api_client):
    first = post(api_client, "/api/admin/seed", {"cameras": 6, "events": 5}).json()
    second = post(api_client, "/api/admin/seed", {"cameras": 6, "events": 5}).json()

    assert first["cameras_created"] == 6 and second["cameras_created"] == 0
    assert Camera.objects.count() == 6 and Event.objects.count() == 10


@pytest.mark.usefixtures("admin_enabled")
def test_seed_with_clear_existing_replaces_the_events(api_client):
    EventFactory.create_batch(3)

    body = post(api_client, "/api/admin/seed", {"events": 4, "clear_existing": True}).json()

    assert body["cleared"] is True and Event.objects.count() == 4


@pytest.mark.usefixtures("admin_enabled")
@pytest.mark.parametrize(
    "body, field",
    [
        ({"cameras": 0}, "cameras"),
        ({"cameras": 7}, "cameras"),
        ({"cameras": "3"}, "cameras"),
        ({"cameras": True}, "cameras"),
        ({"cameras": None}, "cameras"),
        ({"events": -1}, "events"),
        ({"events": 501}, "events"),
        ({"events": 2.5}, "events"),
        ({"days": 0}, "days"),
        ({"days": 31}, "days"),
        ({"clear_existing": "yes"}, "clear_existing"),
        ({"clear_existing": 1}, "clear_existing"),
        ({"create_media": None}, "create_media"),
    ],
)
def test_seed_rejects_each_invalid_field_with_422(api_client, body, field):
    response = post(api_client, "/api/admin/seed", body)

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert [error["field"] for error in problem["errors"]] == [field]
    assert not Camera.objects.exists() and not AuditLog.objects.filter(action="data_seeded").exists()


@pytest.mark.usefixtures("admin_enabled")
def test_seed_reports_every_invalid_field_at_once(api_client):
    response = post(api_client, "/api/admin/seed", {"cameras": 9, "days": 99, "create_media": "no"})

    assert response.status_code == 422
    assert {error["field"] for error in response.json()["errors"]} == {"cameras", "days", "create_media"}


@pytest.mark.usefixtures("admin_enabled")
def test_seed_with_media_writes_images_served_from_the_camera_folder(api_client, foscam_root):
    response = post(api_client, "/api/admin/seed", {"cameras": 1, "events": 2, "create_media": True})

    assert response.status_code == 201
    files = list((foscam_root / "front_door").glob("*.jpg"))
    assert len(files) == response.json()["detections_created"]
    assert all(file.stat().st_size >= 10 * 1024 for file in files)


@pytest.mark.usefixtures("admin_enabled")
def test_seed_audit_row_names_the_api_key(api_client, settings):
    settings.API_KEY_ENABLED, settings.API_KEYS = True, "ops=hsi_test_ops_key_0123456789abcdef"

    response = api_client.post(
        "/api/admin/seed",
        {"cameras": 2, "events": 3},
        format="json",
        HTTP_X_API_KEY="hsi_test_ops_key_0123456789abcdef",
    )

    assert response.status_code == 201
    row = AuditLog.objects.get(action="data_seeded")
    assert row.actor == "api_key:ops" and row.resource_type == "system"
    assert row.details["parameters"]["cameras"] == 2 and row.details["counts"]["events_created"] == 3


@pytest.mark.usefixtures("admin_enabled")
def test_admin_api_still_requires_an_api_key_when_keys_are_enabled(api_client, settings):
    settings.API_KEY_ENABLED, settings.API_KEYS = True, "ops=hsi_test_ops_key_0123456789abcdef"

    response = post(api_client, "/api/admin/seed")

    assert response.status_code == 401 and not Camera.objects.exists()


@pytest.mark.usefixtures("admin_enabled")
@pytest.mark.parametrize("body", [{}, {"confirm": "delete_all_data"}, {"confirm": "yes"}, {"confirm": True}])
def test_clear_requires_the_exact_confirmation(api_client, body):
    EventFactory()

    response = post(api_client, "/api/admin/clear", body)

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["confirm"]
    assert Event.objects.count() == 1


@pytest.mark.usefixtures("admin_enabled")
def test_clear_rejects_a_non_boolean_keep_cameras(api_client):
    response = post(api_client, "/api/admin/clear", {"confirm": "DELETE_ALL_DATA", "keep_cameras": "true"})

    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "keep_cameras"


@pytest.mark.usefixtures("admin_enabled")
def test_clear_deletes_data_and_keeps_rules_channels_logs_and_audit(api_client):
    rule = AlertRuleFactory(risk_threshold=0, cooldown_seconds=0)
    channel = NotificationChannelFactory()
    LogEntryFactory()
    AuditLogFactory()
    seeded = post(api_client, "/api/admin/seed", {"cameras": 2, "events": 6}).json()
    audit_rows = AuditLog.objects.count()

    response = post(api_client, "/api/admin/clear", {"confirm": "DELETE_ALL_DATA"})

    assert response.status_code == 200
    assert response.json() == {
        "cameras_deleted": 2,
        "events_deleted": 6,
        "detections_deleted": seeded["detections_created"],
        "alerts_deleted": seeded["alerts_created"],
        "batches_deleted": 6,
        "entities_deleted": 0,
        "failed_jobs_deleted": 0,
    }
    assert not Camera.objects.exists() and not Event.objects.exists() and not Alert.objects.exists()
    assert AlertRule.objects.filter(pk=rule.pk).exists() and NotificationChannel.objects.filter(pk=channel.pk).exists()
    assert LogEntry.objects.filter(component="pipeline").count() == 1  # kept (clearing also logs lines of its own)
    assert AuditLog.objects.count() == audit_rows + 1
    row = AuditLog.objects.get(action="data_cleared")
    assert row.details["counts"] == response.json() and row.details["parameters"] == {"keep_cameras": False}


@pytest.mark.usefixtures("admin_enabled")
def test_clear_can_keep_the_cameras(api_client):
    camera = CameraFactory()
    EventFactory(camera=camera, detections=[DetectionFactory(camera=camera)])

    response = post(api_client, "/api/admin/clear/", {"confirm": "DELETE_ALL_DATA", "keep_cameras": True})

    assert response.status_code == 200
    assert response.json()["cameras_deleted"] == 0 and response.json()["detections_deleted"] == 1
    assert Camera.objects.filter(pk=camera.pk).exists() and not Event.objects.exists()


@pytest.mark.usefixtures("admin_enabled")
def test_clear_makes_list_totals_fresh(api_client):
    from hsi.api.counts import cached_count

    EventFactory.create_batch(2)
    assert cached_count(Event.objects.all(), scopes=("events",)) == 2

    post(api_client, "/api/admin/clear", {"confirm": "DELETE_ALL_DATA"})

    assert cached_count(Event.objects.all(), scopes=("events",)) == 0


@pytest.mark.usefixtures("admin_enabled")
def test_unknown_admin_paths_are_404_and_wrong_methods_405_when_enabled(api_client):
    assert post(api_client, "/api/admin/unknown").status_code == 404
    response = api_client.get("/api/admin/seed")
    assert response.status_code == 405 and "POST" in response["Allow"]
