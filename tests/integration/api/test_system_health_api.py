"""GET /api/system/health (CONTRACT §2.11, §8.3 heartbeats): every check, healthy / degraded / unhealthy."""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from django.db import connections
from django.test import override_settings

from hsi.resilience import breaker
from hsi.schedule import scheduler_heartbeat_write
from pipeline.watcher import heartbeat_key
from system.health import database_health, overall_status
from system.status import status_caches_clear
from system.tasks import worker_heartbeat_write

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 12, 0, 0, tzinfo=dt.UTC)
CHECKS = {"database", "redis", "channel_layer", "broker", "detector", "llm", "watcher", "scheduler", "workers"}


@pytest.fixture(autouse=True)
def _fresh_probe_results():
    status_caches_clear()  # probe results are remembered 30 s per process: never across tests
    yield
    status_caches_clear()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_heartbeats(at: dt.datetime) -> None:
    from django.core.cache import cache

    cache.set(heartbeat_key("cam-host"), {"host": "cam-host", "running": True, "heartbeat_at": _iso(at)}, 60)
    scheduler_heartbeat_write("beat", now=at)
    worker_heartbeat_write("celery@worker-1", queues=["detection"], now=at)


def _iso(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def health(api_client, expected_status: int = 200) -> dict:
    response = api_client.get("/api/system/health")
    assert response.status_code == expected_status, response.content
    return response.json()


def test_everything_up_is_healthy_with_every_check_described(api_client, time_machine):
    time_machine.move_to(NOW, tick=False)
    write_heartbeats(NOW - dt.timedelta(seconds=5))

    body = health(api_client)

    assert body["status"] == "healthy"
    assert set(body["checks"]) == CHECKS
    for name, check in body["checks"].items():
        assert set(check) == {"status", "latency_ms", "message", "details"}, name
        assert check["status"] == "ok", (name, check)
    assert body["checks"]["detector"]["details"] == {"backend": "opencv", "url": None, "circuit_state": "closed"}
    assert body["checks"]["llm"]["details"] == {"backend": "rules", "url": None, "circuit_state": "closed"}
    assert body["checks"]["workers"]["details"]["count"] == 1
    assert body["checks"]["scheduler"]["details"]["mode"] == "beat"
    assert body["version"] and isinstance(body["uptime_seconds"], int)
    assert body["timestamp"] == "2026-03-10T12:00:00Z"


def test_http_backends_are_probed_once_per_30_seconds_and_their_urls_lose_credentials(
    api_client, settings, fake_detector, fake_llm
):
    settings.DETECTOR_BACKEND = "http"
    settings.DETECTOR_URL = fake_detector.url.replace("http://", "http://det:det-pass-1@")
    settings.LLM_BACKEND = "llamacpp"
    settings.LLM_URL = fake_llm.url.replace("http://", "http://llm:llm-pass-2@")

    first = health(api_client)
    fake_detector.healthy = False  # within 30 s the remembered probe answers
    second = health(api_client)

    for body in (first, second):
        detector, llm = body["checks"]["detector"], body["checks"]["llm"]
        assert detector["status"] == "ok" and llm["status"] == "ok"
        assert detector["details"] == {"backend": "http", "url": fake_detector.url, "circuit_state": "closed"}
        assert llm["details"] == {"backend": "llamacpp", "url": fake_llm.url, "circuit_state": "closed"}
    assert len(fake_detector.requests_to("/health")) == 1
    assert len(fake_llm.requests_to("/health")) == 1


def test_a_dead_llm_or_detector_makes_the_system_degraded_not_unhealthy(api_client, settings, time_machine):
    time_machine.move_to(NOW, tick=False)
    write_heartbeats(NOW)
    settings.LLM_BACKEND = "openai"
    settings.LLM_URL = f"http://127.0.0.1:{closed_port()}"
    settings.DETECTOR_BACKEND = "http"
    settings.DETECTOR_URL = f"http://127.0.0.1:{closed_port()}"

    body = health(api_client, 200)

    assert body["status"] == "degraded"
    assert body["checks"]["llm"]["status"] == "error" and body["checks"]["detector"]["status"] == "error"
    assert body["checks"]["database"]["status"] == "ok"


def test_an_open_circuit_breaker_degrades_its_check(api_client, settings, time_machine):
    time_machine.move_to(NOW, tick=False)
    write_heartbeats(NOW)
    settings.CIRCUIT_FAILURE_THRESHOLD = 1
    breaker("detector").record_failure()

    body = health(api_client)

    assert body["status"] == "degraded"
    assert body["checks"]["detector"]["status"] == "degraded"
    assert body["checks"]["detector"]["details"]["circuit_state"] == "open"


def test_redis_down_is_degraded(api_client, time_machine):
    time_machine.move_to(NOW, tick=False)
    write_heartbeats(NOW)
    # Only around the request: the per-test cleanup must keep seeing the real Redis.
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"):
        body = health(api_client, 200)

    assert body["status"] == "degraded"
    assert body["checks"]["redis"]["status"] == "error"
    assert "127.0.0.1" in body["checks"]["redis"]["details"]["url"]
    assert body["checks"]["database"]["status"] == "ok"


def test_heartbeats_count_while_younger_than_60_seconds(api_client, time_machine):
    time_machine.move_to(NOW, tick=False)
    write_heartbeats(NOW)

    time_machine.move_to(NOW + dt.timedelta(seconds=59), tick=False)
    fresh = health(api_client)["checks"]
    time_machine.move_to(NOW + dt.timedelta(seconds=61), tick=False)
    body = health(api_client)

    assert {fresh[name]["status"] for name in ("watcher", "scheduler", "workers")} == {"ok"}
    assert body["status"] == "degraded"
    assert {body["checks"][name]["status"] for name in ("watcher", "scheduler", "workers")} == {"error"}
    assert body["checks"]["watcher"]["message"] == "Watcher heartbeat is stale"


def test_without_heartbeats_the_processes_are_reported_missing(api_client):
    checks = health(api_client)["checks"]

    assert checks["watcher"]["status"] == "error" and checks["watcher"]["message"] == "No watcher heartbeat"
    assert checks["scheduler"]["status"] == "error"
    assert checks["workers"]["status"] == "error"


def test_all_in_one_mode_disables_workers_and_the_broker(api_client, settings, time_machine):
    time_machine.move_to(NOW, tick=False)
    write_heartbeats(NOW)
    settings.CELERY_TASK_ALWAYS_EAGER = True

    body = health(api_client)

    assert body["checks"]["workers"]["status"] == "disabled"
    assert body["checks"]["broker"]["status"] == "disabled"
    assert body["status"] == "healthy"


def test_an_unreachable_database_is_an_error_check():
    broken = connections.create_connection("default")
    broken.alias = "unreachable"  # a pool of its own: pools are kept per alias
    options = dict(broken.settings_dict.get("OPTIONS", {}))
    if options.get("pool"):
        options["pool"] = {**options["pool"], "timeout": 1}
    broken.settings_dict = {**broken.settings_dict, "HOST": "127.0.0.1", "PORT": str(closed_port()), "OPTIONS": options}
    try:
        check = database_health(broken)
    finally:
        broken.close()
        if options.get("pool"):
            broken.close_pool()

    assert check["status"] == "error" and check["message"].startswith("Database unreachable")


def test_a_database_error_makes_the_system_unhealthy_and_other_errors_only_degrade():
    ok = {"status": "ok"}

    assert overall_status({"database": {"status": "error"}, "redis": ok}) == "unhealthy"
    assert overall_status({"database": ok, "redis": {"status": "error"}}) == "degraded"
    assert overall_status({"database": ok, "workers": {"status": "disabled"}}) == "healthy"


def test_ws_system_announces_heartbeats_going_stale(api_client, time_machine):
    from system.status import system_status_publish
    from tests.integration.pipeline_support import of_type, system_listener

    time_machine.move_to(NOW, tick=False)
    write_heartbeats(NOW)
    with system_listener() as stream:
        system_status_publish()
        time_machine.move_to(NOW + dt.timedelta(seconds=90), tick=False)
        snapshot = system_status_publish()
        messages = stream.drain()

    changes = {c["service"]: (c["previous_status"], c["status"]) for c in of_type(messages, "system.service_status")}
    assert changes == {
        "watcher": ("healthy", "unhealthy"),
        "scheduler": ("healthy", "unhealthy"),
        "workers": ("healthy", "unhealthy"),
    }
    assert snapshot["health"] == "healthy"  # system.status health covers the dependencies, not the heartbeats
