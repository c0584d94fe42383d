"""GET /api/metrics (CONTRACT §2.12, §10): Prometheus text with the scrape-time and the process families."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cameras.models import CameraStatus
from hsi.resilience import breaker
from pipeline.models import BatchStatus
from tests.factories import (
    AlertFactory,
    BatchFactory,
    CameraFactory,
    DeliveryFactory,
    EventFactory,
    FailedJobFactory,
)

pytestmark = pytest.mark.django_db

SCRAPE_FAMILIES = {
    "hsi_cameras": "gauge",
    "hsi_open_batches": "gauge",
    "hsi_queue_depth": "gauge",
    "hsi_dlq_jobs": "gauge",
    "hsi_deliveries": "gauge",
    "hsi_alerts": "gauge",
    "hsi_events_last_24h": "gauge",
    "hsi_circuit_breaker_state": "gauge",
    "hsi_websocket_connections": "gauge",
    "hsi_build_info": "gauge",
}
# Counter families are named without their ``_total`` sample suffix.
PROCESS_FAMILIES = {
    "hsi_http_requests": "counter",
    "hsi_http_request_duration_seconds": "histogram",
    "hsi_files_ingested": "counter",
    "hsi_detections": "counter",
    "hsi_detector_inference_seconds": "histogram",
    "hsi_llm_request_seconds": "histogram",
    "hsi_batches_closed": "counter",
    "hsi_events_created": "counter",
    "hsi_alerts_created": "counter",
    "hsi_notifications": "counter",
    "hsi_pipeline_stage_duration_seconds": "histogram",
}


def scrape(client) -> dict:
    response = client.get("/api/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def values(family, label: str) -> dict[str, float]:
    return {sample.labels[label]: sample.value for sample in family.samples}


def test_every_required_family_is_exposed_with_its_type(client):
    families = scrape(client)

    for name, kind in {**SCRAPE_FAMILIES, **PROCESS_FAMILIES}.items():
        assert name in families, name
        assert families[name].type == kind, name


def test_scrape_time_families_count_what_is_stored(client, settings):
    online = CameraFactory(status=CameraStatus.ONLINE)
    CameraFactory(status=CameraStatus.ONLINE)
    CameraFactory(status=CameraStatus.OFFLINE)
    BatchFactory(camera=online, status=BatchStatus.OPEN)
    BatchFactory(camera=online, status=BatchStatus.DONE)
    FailedJobFactory.create_batch(2, queue="analysis")
    event = EventFactory(camera=online, risk_level="high", risk_score=70)
    EventFactory(camera=online, risk_level="low", deleted_at=event.created_at)
    AlertFactory(event=event, status="acknowledged")
    DeliveryFactory(alert=AlertFactory(event=event), status="failed")
    settings.CIRCUIT_FAILURE_THRESHOLD = 1
    breaker("mqtt").record_failure()

    families = scrape(client)

    assert values(families["hsi_cameras"], "status") == {"online": 2, "offline": 1, "error": 0, "unknown": 0}
    assert families["hsi_open_batches"].samples[0].value == 1
    assert values(families["hsi_dlq_jobs"], "queue") == {"detection": 0, "analysis": 2, "notification": 0}
    assert values(families["hsi_deliveries"], "status")["failed"] == 1
    assert values(families["hsi_alerts"], "status") == {
        "pending": 1,
        "delivered": 0,
        "acknowledged": 1,
        "dismissed": 0,
    }
    assert values(families["hsi_events_last_24h"], "risk_level") == {"low": 0, "medium": 0, "high": 1, "critical": 0}
    assert values(families["hsi_circuit_breaker_state"], "name") == {
        "detector": 0,
        "llm": 0,
        "webhook": 0,
        "email": 0,
        "mqtt": 2,
    }
    assert values(families["hsi_queue_depth"], "queue") == {
        "detection": 0,
        "analysis": 0,
        "notifications": 0,
        "default": 0,
    }
    assert values(families["hsi_websocket_connections"], "channel") == {"events": 0, "system": 0}
    assert values(families["hsi_build_info"], "version") == {settings.HSI_VERSION: 1}


def _requests_total(families, route: str, status: str = "200") -> float:
    return sum(
        sample.value
        for sample in families["hsi_http_requests"].samples
        if sample.name == "hsi_http_requests_total"
        and sample.labels == {"method": "GET", "route": route, "status": status}
    )


def test_http_requests_are_counted_by_route_name_not_raw_path(client):
    before = scrape(client)
    client.get("/api/system/severity")
    client.get("/api/system/severity/")
    client.get("/api/no-such-thing/12345")

    after = scrape(client)

    assert _requests_total(after, "system-severity") - _requests_total(before, "system-severity") == 2
    assert _requests_total(after, "unmatched", "404") - _requests_total(before, "unmatched", "404") == 1
    routes = {sample.labels.get("route") for sample in after["hsi_http_request_duration_seconds"].samples}
    assert "system-severity" in routes and not any(route and "/" in route for route in routes)


def test_metrics_need_no_api_key_unless_configured(client, settings):
    settings.API_KEY_ENABLED = True
    settings.API_KEYS = "ops=hsi_metrics-test-key-0123456789abcd"

    open_response = client.get("/api/metrics")
    settings.METRICS_REQUIRE_API_KEY = True
    refused = client.get("/api/metrics")
    allowed = client.get("/api/metrics", HTTP_X_API_KEY="hsi_metrics-test-key-0123456789abcd")

    assert open_response.status_code == 200
    assert refused.status_code == 401 and refused.json()["code"] == "authentication_required"
    assert allowed.status_code == 200


def test_metrics_are_never_throttled(client, settings):
    settings.THROTTLE_DEFAULT_RATE = "2/min"

    statuses = {client.get("/api/metrics").status_code for _ in range(4)}
    throttled = {client.get("/api/system/severity").status_code for _ in range(4)}

    assert statuses == {200}
    assert 429 in throttled  # the same client is throttled elsewhere


def test_multiprocess_mode_still_lists_every_family(client, settings, tmp_path):
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)  # no process has written samples yet

    families = scrape(client)

    for name in {**SCRAPE_FAMILIES, **PROCESS_FAMILIES}:
        assert name in families, name
    assert "process_cpu_seconds" not in families  # only the merged files, not this process's registry


def test_open_websocket_connections_are_counted_by_channel(client):
    from asgiref.sync import sync_to_async

    from system.status import status_caches_clear
    from tests.integration.websocket.support import connected, run

    status_caches_clear()

    async def scenario():
        system_socket, _ = await connected("/ws/system")
        events_a, _ = await connected("/ws/events")
        events_b, _ = await connected("/ws/events")
        while_open = await sync_to_async(scrape)(client)
        for communicator in (system_socket, events_a, events_b):
            await communicator.disconnect()
        return while_open

    while_open = run(scenario)
    after = scrape(client)

    assert values(while_open["hsi_websocket_connections"], "channel") == {"events": 2, "system": 1}
    assert values(after["hsi_websocket_connections"], "channel") == {"events": 0, "system": 0}
