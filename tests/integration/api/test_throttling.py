"""HTTP throttling (CONTRACT §6.2): per client IP and tier, in the shared cache, for every /api/ request."""

from __future__ import annotations

import pytest
import time_machine
from django.test import Client

from system.models import AuditLog
from tests.problems import problem

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.integration.api._probe_views")]

READ = "/api/probe/read-only"


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


@pytest.fixture
def clock():
    with time_machine.travel("2026-12-04 10:00:20Z", tick=False) as traveller:
        yield traveller


def statuses(client, path, times, **extra):
    return [client.get(path, **extra).status_code for _ in range(times)]


def test_over_the_default_rate_is_429_with_retry_after_until_the_window_ends(client, settings, clock):
    settings.THROTTLE_DEFAULT_RATE = "3/min"

    assert statuses(client, READ, 3) == [200, 200, 200]
    refused = client.get(READ)

    body = problem(refused, 429, "rate_limited")
    assert body["instance"] == READ and body["request_id"] == refused["X-Request-ID"]
    assert refused["Retry-After"] == "40"  # 10:00:20 → the next slot frees at 10:01:00
    clock.shift(39.5)
    assert client.get(READ)["Retry-After"] == "1"
    clock.shift(0.5)
    assert client.get(READ).status_code == 200


def test_a_refusal_is_audited_once_per_ip_and_tier_per_minute(client, settings, clock):
    settings.THROTTLE_DEFAULT_RATE = "1/min"
    settings.THROTTLE_MEDIA_RATE = "1/min"

    statuses(client, READ, 4, HTTP_USER_AGENT="curl/8")
    statuses(client, "/api/media/thumbnails/a.jpg", 3)
    clock.shift(60)
    statuses(client, READ, 2)

    rows = AuditLog.objects.filter(action="rate_limit_exceeded").order_by("id")
    assert [row.details["tier"] for row in rows] == ["default", "media", "default"]
    first = rows[0]
    assert first.resource_type == "request" and first.status == "failure" and first.actor == "anonymous"
    assert first.details == {"tier": "default", "ip": "127.0.0.1", "path": READ}
    assert first.ip_address == "127.0.0.1" and first.user_agent == "curl/8" and first.request_id


def test_tiers_count_separately(client, settings, clock):
    settings.THROTTLE_DEFAULT_RATE = "1/min"
    settings.THROTTLE_SEARCH_RATE = "2/min"
    settings.THROTTLE_MEDIA_RATE = "2/min"

    assert statuses(client, READ, 2) == [200, 429]
    assert statuses(client, "/api/search", 3)[2] == 429
    assert statuses(client, "/api/detections/5/thumbnail", 2) == [200, 200]
    assert client.get("/api/cameras/front/snapshot").status_code == 429  # same media tier


def test_every_api_path_is_covered_even_unknown_routes(client, settings, clock):
    settings.THROTTLE_DEFAULT_RATE = "2/min"

    assert statuses(client, "/api/no-such-thing", 2) == [404, 404]
    assert client.get("/api/nul%00byte").status_code == 429
    assert AuditLog.objects.get(action="rate_limit_exceeded").details["path"] == "/api/nul%00byte"
    assert client.post("/api/probe/echo", data={}, content_type="application/json").status_code == 429


def test_probes_docs_metrics_admin_and_preflights_are_not_throttled(client, settings, clock):
    settings.THROTTLE_DEFAULT_RATE = "1/min"
    assert client.get(READ).status_code == 200  # the only slot of this minute is used

    for path in ("/", "/health", "/ready", "/api/metrics", "/api/docs", "/admin/login/"):
        assert client.get(path).status_code != 429, path
    preflight = client.options(READ, HTTP_ORIGIN="http://localhost:3000", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    assert preflight.status_code == 200 and preflight["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert client.get(READ).status_code == 429


def test_throttle_is_keyed_by_client_ip_with_forwarded_address_only_from_trusted_proxies(client, settings, clock):
    settings.THROTTLE_DEFAULT_RATE = "1/min"
    settings.TRUSTED_PROXIES = ["10.0.0.1"]

    proxied = [
        client.get(READ, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=ip).status_code
        for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.1")
    ]
    spoofed = [
        client.get(READ, REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR=ip).status_code
        for ip in ("198.51.100.3", "198.51.100.4")
    ]

    assert proxied == [200, 200, 429]
    assert spoofed == [200, 429]
    rows = AuditLog.objects.filter(action="rate_limit_exceeded")
    assert sorted(row.details["ip"] for row in rows) == ["198.51.100.1", "203.0.113.9"]


def test_throttle_runs_before_api_key_auth_so_key_guessing_is_throttled(client, settings, clock):
    settings.API_KEY_ENABLED = True
    settings.API_KEYS = "ops=right"
    settings.THROTTLE_DEFAULT_RATE = "2/min"

    guesses = statuses(client, READ, 3, HTTP_X_API_KEY="wrong")

    assert guesses == [401, 401, 429]
    assert client.get(READ, HTTP_X_API_KEY="right").status_code == 429


def test_throttle_enabled_false_disables_every_tier(client, settings, clock):
    settings.THROTTLE_ENABLED = False
    settings.THROTTLE_DEFAULT_RATE = "1/min"
    settings.THROTTLE_MEDIA_RATE = "1/min"

    assert statuses(client, READ, 3) == [200, 200, 200]
    assert statuses(client, "/api/media/thumbnails/a.jpg", 2) == [200, 200]
    assert not AuditLog.objects.filter(action="rate_limit_exceeded").exists()


def test_in_memory_cache_of_all_in_one_throttles_too(client, settings, clock):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "thr"}}
    settings.THROTTLE_DEFAULT_RATE = "2/min"

    assert statuses(client, READ, 3) == [200, 200, 429]
    clock.shift(40)
    assert client.get(READ).status_code == 200
