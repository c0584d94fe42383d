"""CONTRACT §6.3 where ``test_conventions`` does not already look: throttled, media and HTTPS responses, and the
wildcard CORS origin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine
from django.test import Client

from tests.factories import CameraFactory

pytestmark = pytest.mark.django_db

ALLOWED_ORIGIN = "http://localhost:3000"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


@pytest.fixture
def porch(foscam_root):
    CameraFactory(id="porch", folder_path="porch")
    (foscam_root / "porch").mkdir()
    (foscam_root / "porch" / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"j" * 100)


def assert_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        assert response.get(name) == value, f"{name} missing on {response.status_code}"
    assert response.has_header("X-Request-ID")


def test_a_429_carries_security_cors_and_no_store_headers(client, settings):
    settings.THROTTLE_DEFAULT_RATE = "1/min"

    with time_machine.travel("2026-12-04 10:00:00Z", tick=False):
        client.get("/api/cameras", HTTP_ORIGIN=ALLOWED_ORIGIN)
        response = client.get("/api/cameras", HTTP_ORIGIN=ALLOWED_ORIGIN)

    assert response.status_code == 429
    assert_security_headers(response)
    assert response["Cache-Control"] == "no-store"
    assert response["Retry-After"] == "60"
    assert response["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "retry-after" in response["Access-Control-Expose-Headers"].lower()


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/api/media/cameras/porch/a.jpg", {}, 200),
        ("/api/media/cameras/porch/a.jpg", {"HTTP_RANGE": "bytes=0-9"}, 206),
    ],
)
def test_media_files_carry_the_security_headers_and_keep_their_own_cache_control(client, porch, path, headers, status):
    response = client.get(path, **headers)

    assert response.status_code == status
    assert_security_headers(response)
    assert response["Cache-Control"] == "private, max-age=3600"


def test_a_not_modified_media_answer_carries_the_security_headers(client, porch):
    etag = client.get("/api/media/cameras/porch/a.jpg")["ETag"]

    response = client.get("/api/media/cameras/porch/a.jpg", HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304
    assert_security_headers(response)


@pytest.mark.parametrize(
    ("path", "status"), [("/api/media/cameras/porch/a.txt", 403), ("/api/media/cameras/porch/b.jpg", 404)]
)
def test_media_refusals_are_problem_json_that_is_never_cached(client, porch, path, status):
    response = client.get(path)

    assert response.status_code == status
    assert_security_headers(response)
    assert response["Cache-Control"] == "no-store"


def test_wildcard_origin_is_answered_with_a_star_and_without_credentials(client, settings):
    settings.CORS_ALLOW_ALL_ORIGINS = True
    settings.CORS_ALLOW_CREDENTIALS = False

    simple = client.get("/health", HTTP_ORIGIN="https://anything.example")
    preflight = client.options(
        "/api/cameras",
        HTTP_ORIGIN="https://anything.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="PATCH",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-api-key",
    )

    for response in (simple, preflight):
        assert response.status_code == 200
        assert response["Access-Control-Allow-Origin"] == "*"
        assert not response.has_header("Access-Control-Allow-Credentials")
    assert preflight["Access-Control-Max-Age"] == "600"
    assert preflight["Access-Control-Allow-Headers"].lower() == "x-api-key"


def test_a_star_in_cors_allowed_origins_configures_the_wildcard_without_credentials():
    environment = {**os.environ, "CORS_ALLOWED_ORIGINS": "http://a.example,*", "SECRET_KEY": "x" * 50}
    code = "import hsi.settings as s; print(s.CORS_ALLOW_ALL_ORIGINS, s.CORS_ALLOW_CREDENTIALS)"

    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[3],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.stdout.split() == ["True", "False"], result.stderr


def test_https_redirect_spares_the_probes_and_trusts_the_configured_proxy_header(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client = Client()  # the security middleware reads its settings when the client builds the stack

    redirected = client.get("/api/cameras")
    probe = client.get("/health")
    proxied = client.get("/api/cameras", HTTP_X_FORWARDED_PROTO="https")

    assert redirected.status_code == 301 and redirected["Location"] == "https://testserver/api/cameras"
    assert probe.status_code == 200 and not probe.has_header("Strict-Transport-Security")
    assert proxied.status_code == 200
    assert proxied["Strict-Transport-Security"].startswith("max-age=3600")


def test_a_nul_byte_in_a_refused_path_is_a_401_audited_percent_encoded(client, settings):
    from system.models import AuditLog

    settings.API_KEY_ENABLED = True

    response = client.get("/api/cameras%00")

    assert response.status_code == 401
    assert AuditLog.objects.get(action="auth_failed").details["path"] == "/api/cameras%00"
