"""GET /api/metrics (CONTRACT §2.12, §10): Prometheus text with the scrape-time and the process families."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from prometheus_client.parser import text_string_to_metric_families

from cameras.models import CameraStatus
from events.models import Detection
from hsi.resilience import breaker
from pipeline.ingest import file_ingest
from pipeline.models import BatchStatus, IngestedFile
from system.api.metrics import STORED_TOTALS_CACHE_KEY
from tests.factories import (
    AlertFactory,
    BatchFactory,
    CameraFactory,
    DeliveryFactory,
    DetectionFactory,
    EventFactory,
    FailedJobFactory,
    IngestedFileFactory,
    NotificationChannelFactory,
)
from tests.images import jpeg_bytes
from tests.integration.ingest_support import ensure_process_file_task, write
from tests.integration.metrics_support import scraped

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
STORED_FAMILIES = {
    "hsi_files_ingested": "counter",
    "hsi_detections": "counter",
    "hsi_batches_closed": "counter",
    "hsi_events_created": "counter",
    "hsi_alerts_created": "counter",
    "hsi_notifications": "counter",
}
PROCESS_FAMILIES = {
    "hsi_http_requests": "counter",
    "hsi_http_request_duration_seconds": "histogram",
    "hsi_detector_inference_seconds": "histogram",
    "hsi_llm_request_seconds": "histogram",
    "hsi_pipeline_stage_duration_seconds": "histogram",
}
ALL_FAMILIES = {**SCRAPE_FAMILIES, **STORED_FAMILIES, **PROCESS_FAMILIES}


def scrape(client) -> dict:
    response = client.get("/api/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def values(family, label: str) -> dict[str, float]:
    return {sample.labels[label]: sample.value for sample in family.samples}


def test_every_required_family_is_exposed_with_its_type(client):
    families = scrape(client)

    for name, kind in ALL_FAMILIES.items():
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


def totals(family) -> dict[tuple[str, ...], float]:
    """The non-zero ``_total`` samples of a counter family by their label values (in label order)."""
    return {
        tuple(sample.labels.values()): sample.value
        for sample in family.samples
        if sample.name == family.name + "_total" and sample.value
    }


STORED = {("accepted",), ("invalid",)}


def test_stored_totals_count_the_rows_whatever_process_stored_them(client):
    # Rows as the workers of other processes store them
    camera = CameraFactory()
    IngestedFileFactory.create_batch(2, camera=camera, status="processed")
    IngestedFileFactory(camera=camera, status="pending")
    IngestedFileFactory(camera=camera, status="invalid", reject_reason="too_small")
    DetectionFactory.create_batch(2, camera=camera, object_type="person")
    DetectionFactory(camera=camera, object_type="car")
    BatchFactory(camera=camera, status=BatchStatus.OPEN, close_reason=None, closed_at=None)  # not closed yet
    BatchFactory(camera=camera, status=BatchStatus.DONE, close_reason="idle")
    BatchFactory(camera=camera, status=BatchStatus.ANALYZING, close_reason="fast_path")
    event = EventFactory(camera=camera, analysis_status="llm", risk_level="high", risk_score=70)
    EventFactory(camera=camera, analysis_status="rules", risk_level="high", deleted_at=event.created_at)  # trashed
    EventFactory(camera=camera, analysis_status="fallback", risk_level=None, risk_score=None)
    alert = AlertFactory(event=event, severity="critical")
    AlertFactory(event=event, severity="high")
    DeliveryFactory(alert=alert, channel=NotificationChannelFactory(kind="webhook"), status="sent")
    DeliveryFactory(alert=alert, channel=NotificationChannelFactory(kind="mqtt"), status="failed")

    families = scrape(client)

    stored_results = {key: value for key, value in totals(families["hsi_files_ingested"]).items() if key in STORED}
    assert stored_results == {("accepted",): 3, ("invalid",): 1}  # duplicates etc. are this process's counters
    assert totals(families["hsi_detections"]) == {("person",): 2, ("car",): 1}
    assert totals(families["hsi_batches_closed"]) == {("idle",): 1, ("fast_path",): 1}
    assert totals(families["hsi_events_created"]) == {("llm", "high"): 1, ("rules", "high"): 1, ("fallback", "none"): 1}
    assert totals(families["hsi_alerts_created"]) == {("critical",): 1, ("high",): 1}
    assert totals(families["hsi_notifications"]) == {("webhook", "sent"): 1, ("mqtt", "failed"): 1}
    # Known label values are there before any row has them; the HELP says the total can fall
    assert values(families["hsi_alerts_created"], "severity") == {"low": 0, "medium": 0, "high": 1, "critical": 1}
    assert "falls when retention deletes" in families["hsi_detections"].documentation


def test_stored_totals_are_shared_for_10_seconds_then_fall_with_the_deleted_rows(client):
    DetectionFactory.create_batch(3, object_type="dog")
    first = scrape(client)
    Detection.objects.filter(pk__in=Detection.objects.values("pk")[:2]).delete()  # retention

    within_10_seconds = scrape(client)
    cache.delete(STORED_TOTALS_CACHE_KEY)  # the 10 s have passed
    later = scrape(client)

    assert totals(first["hsi_detections"]) == totals(within_10_seconds["hsi_detections"]) == {("dog",): 3}
    assert totals(later["hsi_detections"]) == {("dog",): 1}


def test_ingest_results_without_a_row_are_added_to_the_stored_family(client, foscam_root):
    ensure_process_file_task()
    data = jpeg_bytes(seed=77)
    duplicates_before = scraped("hsi_files_ingested", result="duplicate")

    file_ingest(write(foscam_root / "porch" / "a.jpg", data))
    file_ingest(write(foscam_root / "porch" / "copy.jpg", data))

    cache.delete(STORED_TOTALS_CACHE_KEY)  # more than 10 s after the first scrape
    text = client.get("/api/metrics").content.decode()
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "hsi_files_ingested"]
    assert IngestedFile.objects.count() == 1
    assert totals(family)[("accepted",)] == 1
    assert totals(family)[("duplicate",)] == duplicates_before + 1
    assert text.count("# TYPE hsi_files_ingested_total counter") == 1  # one family, never exposed twice
    assert "hsi_files_ingested_created" not in text


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

    for name in ALL_FAMILIES:
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
