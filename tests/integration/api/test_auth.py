"""API-key and staff-session authentication (CONTRACT §6.1) and its audit rows (§6.8)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from system.models import ApiKey, AuditLog
from system.services import api_key_create, api_key_revoke
from tests.factories import ApiKeyFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.integration.api._probe_views")]

PROTECTED = "/api/probe/read-only"
MISSING_DETAIL = "API key required. Send it in the X-API-Key header."
T0 = dt.datetime(2030, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def auth_on(settings):
    settings.API_KEY_ENABLED = True
    settings.API_KEYS = "ops=abc,plainkey"
    settings.METRICS_REQUIRE_API_KEY = False


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


@pytest.fixture
def db_key():
    """An active database key and its plaintext."""
    created = api_key_create("dashboard")
    return created.api_key, created.plaintext


def assert_unauthorized(response, code: str, detail: str):
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"] == "ApiKey"
    body = response.json()
    assert body["code"] == code and body["detail"] == detail
    assert body["type"] == f"urn:hsi:problem:{code}" and body["title"] == "Unauthorized"


# --- Missing and wrong keys ---------------------------------------------------------------------------------


def test_request_without_key_is_401_authentication_required(client):
    assert_unauthorized(client.get(PROTECTED), "authentication_required", MISSING_DETAIL)


def test_wrong_key_is_401_invalid_api_key(client):
    assert_unauthorized(client.get(PROTECTED, HTTP_X_API_KEY="nope"), "invalid_api_key", "Invalid API key")


def test_unknown_api_route_needs_a_key_before_it_is_a_404(client):
    assert client.get("/api/no-such-thing").status_code == 401
    assert client.get("/api/no-such-thing", HTTP_X_API_KEY="abc").status_code == 404


def test_auth_off_leaves_every_endpoint_open_and_actor_anonymous(client, settings):
    settings.API_KEY_ENABLED = False

    response = client.get("/api/probe/echo")

    assert response.status_code == 200
    assert response.json()["actor"] == "anonymous"


# --- Environment keys ---------------------------------------------------------------------------------------


def test_named_env_key_authenticates_as_its_name(client):
    response = client.get("/api/probe/echo", HTTP_X_API_KEY="abc")

    assert response.status_code == 200
    assert response.json()["actor"] == "api_key:ops"


def test_bare_env_key_is_named_by_its_position(client):
    response = client.get("/api/probe/echo", HTTP_X_API_KEY="plainkey")

    assert response.json()["actor"] == "api_key:env-2"


def test_changing_api_keys_setting_takes_effect(client, settings):
    settings.API_KEYS = "first,second=zzz"

    assert client.get("/api/probe/echo", HTTP_X_API_KEY="first").json()["actor"] == "api_key:env-1"
    assert client.get("/api/probe/echo", HTTP_X_API_KEY="zzz").json()["actor"] == "api_key:second"
    assert client.get("/api/probe/echo", HTTP_X_API_KEY="abc").status_code == 401


def test_the_name_of_a_named_key_is_not_itself_a_key(client):
    assert client.get(PROTECTED, HTTP_X_API_KEY="ops").status_code == 401
    assert client.get(PROTECTED, HTTP_X_API_KEY="ops=abc").status_code == 401


# --- Database keys ------------------------------------------------------------------------------------------


def test_active_database_key_authenticates_as_its_name(client, db_key):
    _, plaintext = db_key

    response = client.get("/api/probe/echo", HTTP_X_API_KEY=plaintext)

    assert response.status_code == 200
    assert response.json()["actor"] == "api_key:dashboard"


def test_revoked_database_key_is_invalid(client, db_key):
    _, plaintext = db_key
    api_key_revoke("dashboard")

    assert_unauthorized(client.get(PROTECTED, HTTP_X_API_KEY=plaintext), "invalid_api_key", "Invalid API key")


def test_expired_database_key_is_invalid_and_unexpired_one_works(client):
    expired = api_key_create("old", expires_days=1)
    fresh = api_key_create("new", expires_days=1)
    ApiKey.objects.filter(pk=expired.api_key.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    assert_unauthorized(client.get(PROTECTED, HTTP_X_API_KEY=expired.plaintext), "invalid_api_key", "Invalid API key")
    assert client.get(PROTECTED, HTTP_X_API_KEY=fresh.plaintext).status_code == 200


def test_stored_hash_alone_does_not_authenticate(client, db_key):
    api_key, _ = db_key

    assert client.get(PROTECTED, HTTP_X_API_KEY=api_key.key_hash).status_code == 401


def test_created_key_stores_only_hash_and_prefix(db_key):
    api_key, plaintext = db_key

    assert plaintext.startswith("hsi_") and len(plaintext) == 36
    assert api_key.prefix == plaintext[:12]
    assert plaintext not in (api_key.key_hash, api_key.name)
    assert not ApiKey.objects.filter(key_hash=plaintext).exists()


def test_last_used_at_is_updated_at_most_once_per_minute(client, db_key):
    api_key, plaintext = db_key

    with time_machine.travel(T0, tick=False):
        client.get(PROTECTED, HTTP_X_API_KEY=plaintext)
    api_key.refresh_from_db()
    assert api_key.last_used_at == T0

    with time_machine.travel(T0 + dt.timedelta(seconds=59), tick=False):
        client.get(PROTECTED, HTTP_X_API_KEY=plaintext)
    api_key.refresh_from_db()
    assert api_key.last_used_at == T0

    with time_machine.travel(T0 + dt.timedelta(seconds=61), tick=False):
        client.get(PROTECTED, HTTP_X_API_KEY=plaintext)
    api_key.refresh_from_db()
    assert api_key.last_used_at == T0 + dt.timedelta(seconds=61)


def test_failed_attempt_does_not_touch_last_used_at(client):
    key = ApiKeyFactory()

    client.get(PROTECTED, HTTP_X_API_KEY="wrong")

    key.refresh_from_db()
    assert key.last_used_at is None


# --- Where the key is read ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/media/cameras/front_door/2024/img.jpg",
        "/api/media/thumbnails/42.jpg",
        "/api/detections/42/thumbnail",
        "/api/detections/42/image",
        "/api/detections/42/video/",
        "/api/cameras/front_door/snapshot",
    ],
)
def test_query_api_key_is_accepted_on_media_tier_paths(client, path):
    response = client.get(f"{path}?api_key=abc")

    assert response.status_code == 200, path
    assert response.json()["actor"] == "api_key:ops"


@pytest.mark.parametrize("path", ["/api/probe/echo", "/api/probe/read-only", "/api/metrics-extra"])
def test_query_api_key_is_ignored_elsewhere(client, path):
    assert_unauthorized(client.get(f"{path}?api_key=abc"), "authentication_required", MISSING_DETAIL)


def test_header_key_wins_over_query_key_on_media_paths(client):
    response = client.get("/api/media/thumbnails/1.jpg?api_key=abc", HTTP_X_API_KEY="wrong")

    assert_unauthorized(response, "invalid_api_key", "Invalid API key")


def test_wrong_query_key_on_media_path_is_invalid_api_key(client):
    response = client.get("/api/media/thumbnails/1.jpg?api_key=wrong")

    assert_unauthorized(response, "invalid_api_key", "Invalid API key")


# --- Exempt paths -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/health", "/ready", "/api/schema", "/api/docs", "/api/docs/", "/health/"])
def test_exempt_paths_need_no_key(client, path):
    assert client.get(path).status_code == 200, path


def test_metrics_is_exempt_unless_configured(client, settings):
    assert client.get("/api/metrics").status_code == 200

    settings.METRICS_REQUIRE_API_KEY = True

    assert_unauthorized(client.get("/api/metrics"), "authentication_required", MISSING_DETAIL)
    assert client.get("/api/metrics", HTTP_X_API_KEY="abc").status_code == 200


def test_admin_uses_its_own_login_not_the_api_key(client):
    response = client.get("/admin/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


# --- Staff session ------------------------------------------------------------------------------------------


@pytest.fixture
def staff():
    return get_user_model().objects.create_user("ops-admin", is_staff=True)


CSRF_TOKEN = "a" * 32


def test_staff_session_authenticates_as_user(client, staff):
    client.force_login(staff)

    response = client.get("/api/probe/echo")

    assert response.status_code == 200
    assert response.json()["actor"] == "user:ops-admin"


def test_non_staff_or_inactive_session_is_not_enough(client):
    user_model = get_user_model()
    plain = user_model.objects.create_user("viewer")
    inactive = user_model.objects.create_user("gone", is_staff=True, is_active=False)

    client.force_login(plain)
    assert client.get(PROTECTED).status_code == 401
    client.force_login(inactive)
    assert client.get(PROTECTED).status_code == 401


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_staff_session_needs_csrf_token_for_unsafe_methods(staff, method):
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(staff)

    response = getattr(client, method)("/api/probe/echo", data="{}", content_type="application/json")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "forbidden"
    assert not AuditLog.objects.filter(action="probe_written").exists()


def test_staff_session_with_csrf_token_may_write(staff):
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(staff)
    client.cookies["csrftoken"] = CSRF_TOKEN

    response = client.post(
        "/api/probe/echo", data='{"a": 1}', content_type="application/json", HTTP_X_CSRFTOKEN=CSRF_TOKEN
    )

    assert response.status_code == 200
    assert response.json()["actor"] == "user:ops-admin"


def test_staff_session_reads_need_no_csrf_token(staff):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)

    assert client.get("/api/probe/echo").status_code == 200


def test_api_key_writes_need_no_csrf_token():
    client = Client(enforce_csrf_checks=True)

    response = client.post("/api/probe/echo", data="{}", content_type="application/json", HTTP_X_API_KEY="abc")

    assert response.status_code == 200


# --- Audit of failures and actors ---------------------------------------------------------------------------


def test_auth_failure_writes_an_auth_failed_row(client):
    client.get(PROTECTED, REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="curl/8", HTTP_X_REQUEST_ID="req-1")

    row = AuditLog.objects.get(action="auth_failed")
    assert row.status == "failure"
    assert row.resource_type == "request"
    assert row.actor == "anonymous"
    assert row.ip_address == "203.0.113.7"
    assert row.user_agent == "curl/8"
    assert row.request_id == "req-1"
    assert row.details == {"path": PROTECTED, "method": "GET", "reason": "authentication_required"}


def test_wrong_key_failure_records_its_reason(client):
    client.get(PROTECTED, HTTP_X_API_KEY="nope", REMOTE_ADDR="203.0.113.8")

    assert AuditLog.objects.get(action="auth_failed").details["reason"] == "invalid_api_key"


def test_auth_failed_is_written_at_most_once_per_ip_per_minute(client):
    with time_machine.travel(T0, tick=False):
        for _ in range(3):
            client.get(PROTECTED, REMOTE_ADDR="198.51.100.1")
        client.get(PROTECTED, HTTP_X_API_KEY="wrong", REMOTE_ADDR="198.51.100.1")
        client.get(PROTECTED, REMOTE_ADDR="198.51.100.2")
    with time_machine.travel(T0 + dt.timedelta(seconds=30), tick=False):
        client.get(PROTECTED, REMOTE_ADDR="198.51.100.1")
    with time_machine.travel(T0 + dt.timedelta(seconds=61), tick=False):
        client.get(PROTECTED, REMOTE_ADDR="198.51.100.1")

    rows = AuditLog.objects.filter(action="auth_failed")
    by_ip = sorted((row.ip_address, row.timestamp) for row in rows)
    assert by_ip == [
        ("198.51.100.1", T0),
        ("198.51.100.1", T0 + dt.timedelta(seconds=61)),
        ("198.51.100.2", T0),
    ]


def test_auth_failed_uses_forwarded_client_ip_behind_a_trusted_proxy(client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    client.get(PROTECTED, REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="192.0.2.44, 10.1.2.3")
    client.get(PROTECTED, REMOTE_ADDR="192.0.2.99", HTTP_X_FORWARDED_FOR="192.0.2.45")

    assert sorted(AuditLog.objects.filter(action="auth_failed").values_list("ip_address", flat=True)) == [
        "192.0.2.44",
        "192.0.2.99",
    ]


def test_successful_requests_write_no_auth_failed(client, db_key):
    client.get(PROTECTED, HTTP_X_API_KEY="abc")
    client.get(PROTECTED, HTTP_X_API_KEY=db_key[1])

    assert not AuditLog.objects.filter(action="auth_failed").exists()


def test_audit_rows_of_a_write_name_the_api_key(client):
    response = client.post("/api/probe/echo", data='{"x": 1}', content_type="application/json", HTTP_X_API_KEY="abc")

    row = AuditLog.objects.get(pk=response.json()["audit_id"])
    assert row.actor == "api_key:ops"
    assert row.action == "probe_written" and row.details == {"keys": ["x"]}


def test_audit_rows_of_a_write_name_the_staff_user(staff):
    client = Client()
    client.force_login(staff)

    response = client.post("/api/probe/echo", data="{}", content_type="application/json")

    assert AuditLog.objects.get(pk=response.json()["audit_id"]).actor == "user:ops-admin"


def test_audit_rows_are_anonymous_when_auth_is_off(client, settings):
    settings.API_KEY_ENABLED = False

    response = client.post("/api/probe/echo", data="{}", content_type="application/json", HTTP_X_API_KEY="abc")

    assert AuditLog.objects.get(pk=response.json()["audit_id"]).actor == "anonymous"
