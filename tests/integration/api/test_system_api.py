"""/api/system reads and the circuit-breaker reset (CONTRACT §2.11): stats, GPU, config (no secret ever),
severity, pipeline, circuit breakers, storage."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache
from django.utils import timezone

from cameras.models import CameraStatus
from hsi.resilience import breaker
from pipeline.models import BatchStatus
from pipeline.watcher import heartbeat_key
from system.models import AuditLog
from tests.factories import (
    AlertFactory,
    BatchFactory,
    CameraFactory,
    DeliveryFactory,
    DetectionFactory,
    EntityFactory,
    EventFactory,
    FailedJobFactory,
    GPUStatFactory,
)
from tests.problems import error_fields

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 12, 0, 0, tzinfo=dt.UTC)


def get(api_client, path: str, expected: int = 200):
    response = api_client.get(path)
    assert response.status_code == expected, response.content
    return response.json()


# --- stats --------------------------------------------------------------------------------------------------------


def test_stats_count_rows_and_leave_out_soft_deleted_events(api_client):
    online = CameraFactory(status=CameraStatus.ONLINE)
    CameraFactory(status=CameraStatus.OFFLINE)
    EventFactory(camera=online, reviewed=True)
    EventFactory(camera=online, started_at=timezone.now() - dt.timedelta(days=3))
    EventFactory(camera=online, deleted_at=timezone.now())
    DetectionFactory(camera=online)
    DetectionFactory(camera=online, detected_at=timezone.now() - dt.timedelta(days=2))
    alert = AlertFactory(event=EventFactory(camera=online))
    AlertFactory(event=alert.event, status="acknowledged")
    EntityFactory()

    body = get(api_client, "/api/system/stats")

    assert body["total_cameras"] == 2
    assert body["cameras_by_status"] == {"online": 1, "offline": 1, "error": 0, "unknown": 0}
    assert body["total_events"] == 3 and body["events_last_24h"] == 2 and body["unreviewed_events"] == 2
    assert body["total_detections"] == 2 and body["detections_last_24h"] == 1
    assert body["total_alerts"] == 2 and body["pending_alerts"] == 1
    assert body["total_entities"] == 1 and isinstance(body["uptime_seconds"], int)


# --- GPU ----------------------------------------------------------------------------------------------------------


def test_gpu_without_samples_is_all_null(api_client):
    assert get(api_client, "/api/system/gpu") == {
        "gpu_name": None,
        "utilization": None,
        "memory_used": None,
        "memory_total": None,
        "temperature": None,
        "power_usage": None,
        "inference_fps": None,
        "recorded_at": None,
    }


def test_gpu_is_the_latest_sample_and_history_is_ascending_limited_and_filtered(api_client):
    for minutes in (3, 2, 1):
        GPUStatFactory(recorded_at=NOW - dt.timedelta(minutes=minutes), utilization=float(minutes))

    latest = get(api_client, "/api/system/gpu")
    everything = get(api_client, "/api/system/gpu/history")
    last_two = get(api_client, "/api/system/gpu/history?limit=2")
    since = get(api_client, "/api/system/gpu/history?since=2026-03-10T11:57:30Z")

    assert latest["utilization"] == 1.0 and latest["recorded_at"] == "2026-03-10T11:59:00Z"
    assert [s["utilization"] for s in everything["samples"]] == [3.0, 2.0, 1.0]
    assert everything["count"] == 3 and everything["limit"] == 300
    assert [s["utilization"] for s in last_two["samples"]] == [2.0, 1.0] and last_two["limit"] == 2
    assert [s["utilization"] for s in since["samples"]] == [2.0, 1.0]


@pytest.mark.parametrize("query", ["limit=0", "limit=5001", "limit=abc", "since=yesterday"])
def test_gpu_history_rejects_bad_parameters(api_client, query):
    response = api_client.get(f"/api/system/gpu/history?{query}")

    assert response.status_code == 422
    assert error_fields(response) == {query.split("=")[0]}


# --- config -------------------------------------------------------------------------------------------------------

SECRETS = (
    "sk-django-secret-0123456789",
    "hsi_env-key-abcdefghijklmnop",
    "det-api-key-secret",
    "llm-api-key-secret",
    "smtp-password-secret",
    "det-url-password",
    "llm-url-password",
    "redis-url-password",
    "mqtt-url-password",
    "token-in-query",
)


def test_config_never_shows_a_secret_and_strips_url_credentials(api_client, settings):
    settings.SECRET_KEY = SECRETS[0]
    settings.API_KEYS = f"ops={SECRETS[1]}"
    settings.DETECTOR_API_KEY = SECRETS[2]
    settings.LLM_API_KEY = SECRETS[3]
    settings.EMAIL_HOST = "smtp.example.com"
    settings.EMAIL_HOST_PASSWORD = SECRETS[4]
    settings.DETECTOR_BACKEND = "http"
    settings.DETECTOR_URL = f"http://user:{SECRETS[5]}@detector.local:8090?token={SECRETS[9]}"
    settings.LLM_BACKEND = "openai"
    settings.LLM_URL = f"https://me:{SECRETS[6]}@llm.local/v1"
    settings.MQTT_URL = f"mqtt://u:{SECRETS[8]}@broker.local:1883"

    response = api_client.get("/api/system/config")

    assert response.status_code == 200
    text = response.content.decode()
    for secret in SECRETS:
        assert secret not in text
    body = response.json()
    assert body["detector"]["url"] == "http://detector.local:8090"
    assert body["llm"] == {"backend": "openai", "url": "https://llm.local/v1", "model": settings.LLM_MODEL}
    assert body["notifications"] == {"enabled": True, "email_configured": True, "mqtt_configured": True}
    assert body["auth"] == {"api_key_enabled": False, "api_key_count": 1}


def test_config_describes_the_run_mode_and_settings(api_client):
    body = get(api_client, "/api/system/config")

    assert body["app_name"] == "Home Security Intelligence"
    assert body["run_mode"] == "distributed" and body["task_mode"] == "broker"
    assert body["channel_layer"] == "redis" and body["database_vendor"] == "postgresql"
    assert body["severity"] == {"low_max": 29, "medium_max": 59, "high_max": 84}
    assert body["batch"]["window_seconds"] == 90 and body["throttle"]["default"] == "60/min"
    assert set(body["retention"]) == {
        "retention_days",
        "log_retention_days",
        "audit_retention_days",
        "trash_retention_days",
        "dlq_retention_days",
        "delete_media",
    }


# --- severity -----------------------------------------------------------------------------------------------------


def test_severity_definitions_follow_the_thresholds(api_client):
    assert get(api_client, "/api/system/severity") == {
        "thresholds": {"low_max": 29, "medium_max": 59, "high_max": 84},
        "definitions": [
            {"level": "low", "min_score": 0, "max_score": 29, "color": "#22C55E"},
            {"level": "medium", "min_score": 30, "max_score": 59, "color": "#EAB308"},
            {"level": "high", "min_score": 60, "max_score": 84, "color": "#F97316"},
            {"level": "critical", "min_score": 85, "max_score": 100, "color": "#EF4444"},
        ],
    }


# --- pipeline -----------------------------------------------------------------------------------------------------


def test_pipeline_reports_watchers_batches_dlq_and_deliveries(api_client, time_machine):
    time_machine.move_to(NOW, tick=False)
    camera = CameraFactory(id="front_door")
    opened = NOW - dt.timedelta(seconds=40)
    batch = BatchFactory(camera=camera, status=BatchStatus.OPEN, opened_at=opened, detection_count=3)
    BatchFactory(camera=CameraFactory(), status=BatchStatus.ANALYZING)
    FailedJobFactory.create_batch(2, queue="detection")
    FailedJobFactory(queue="notification")
    DeliveryFactory(status="failed")
    DeliveryFactory(status="pending")
    DeliveryFactory(status="sent")
    beat = {
        "host": "nas",
        "running": True,
        "mode": "native",
        "root": "/export/foscam",
        "cameras_watched": 4,
        "pending_files": 1,
        "last_file_at": None,
        "heartbeat_at": "2026-03-10T11:59:55Z",
    }
    cache.set(heartbeat_key("nas"), beat, 60)

    body = get(api_client, "/api/system/pipeline")

    assert body["watchers"] == [beat]
    assert body["queues"] == {"detection": 0, "analysis": 0, "notifications": 0, "default": 0}
    assert body["batches"]["open"] == 1 and body["batches"]["analyzing"] == 1
    assert body["batches"]["oldest_open_age_seconds"] == 40
    assert body["batches"]["open_items"] == [
        {
            "batch_id": str(batch.id),
            "camera_id": "front_door",
            "detection_count": 3,
            "opened_at": "2026-03-10T11:59:20Z",
            "last_detection_at": batch.last_detection_at.isoformat().replace("+00:00", "Z"),
        }
    ]
    assert body["dlq"] == {"detection": 2, "analysis": 0, "notification": 1, "total": 3}
    assert body["deliveries"] == {"pending": 1, "failed": 1}
    assert body["detector"] == {"backend": "opencv", "circuit_state": "closed"}
    assert body["llm"] == {"backend": "rules", "circuit_state": "closed"}
    assert body["timestamp"] == "2026-03-10T12:00:00Z"


# --- circuit breakers ---------------------------------------------------------------------------------------------


def test_circuit_breakers_list_every_breaker_and_a_reset_closes_one_with_an_audit_row(api_client, settings):
    settings.CIRCUIT_FAILURE_THRESHOLD = 2
    breaker("llm").record_failure()
    breaker("llm").record_failure()
    breaker("webhook").record_failure()

    before = get(api_client, "/api/system/circuit-breakers")
    reset = api_client.post("/api/system/circuit-breakers/llm/reset")
    after = get(api_client, "/api/system/circuit-breakers")

    by_name = {b["name"]: b for b in before["breakers"]}
    assert list(by_name) == ["detector", "llm", "webhook", "email", "mqtt"]
    assert by_name["llm"]["state"] == "open" and by_name["llm"]["failure_count"] == 2
    assert by_name["llm"]["opened_at"] is not None and by_name["llm"]["last_failure_at"] is not None
    assert by_name["webhook"]["state"] == "closed" and by_name["webhook"]["failure_count"] == 1
    assert by_name["webhook"]["last_failure_at"] is not None and by_name["webhook"]["opened_at"] is None
    assert by_name["email"]["last_failure_at"] is None
    assert by_name["detector"]["config"] == {"failure_threshold": 2, "recovery_timeout_seconds": 30}
    assert before["open_count"] == 1
    assert reset.status_code == 200
    assert reset.json() == {"name": "llm", "previous_state": "open", "state": "closed"}
    assert after["open_count"] == 0
    llm_after = {b["name"]: b for b in after["breakers"]}["llm"]
    assert (llm_after["state"], llm_after["failure_count"]) == ("closed", 0)
    assert llm_after["last_failure_at"] == by_name["llm"]["last_failure_at"]  # history outlives the reset
    row = AuditLog.objects.get(action="circuit_breaker_reset")
    assert (row.resource_type, row.resource_id, row.status) == ("circuit_breaker", "llm", "success")


def test_resetting_an_unknown_breaker_is_404_and_writes_nothing(api_client):
    response = api_client.post("/api/system/circuit-breakers/nope/reset")

    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert not AuditLog.objects.filter(action="circuit_breaker_reset").exists()


# --- storage ------------------------------------------------------------------------------------------------------


def test_storage_reports_disk_thumbnails_and_row_counts(api_client, settings, data_dir):
    thumbnails = data_dir / "thumbnails"
    thumbnails.mkdir()
    (thumbnails / "1_thumb.jpg").write_bytes(b"x" * 100)
    (thumbnails / "2_thumb.jpg").write_bytes(b"x" * 50)
    EventFactory()
    FailedJobFactory()
    GPUStatFactory()

    body = get(api_client, "/api/system/storage")

    disk = body["disk"]
    assert disk["path"] == str(settings.FOSCAM_BASE_PATH)
    assert disk["total_bytes"] > 0 and disk["used_bytes"] + disk["free_bytes"] <= disk["total_bytes"]
    assert 0 < disk["usage_percent"] <= 100
    assert body["thumbnails"] == {"file_count": 2, "size_bytes": 150}
    assert body["counts"] == {
        "events": 1,
        "detections": 0,
        "alerts": 0,
        "logs": 0,
        "audit_logs": 0,
        "gpu_stats": 1,
        "failed_jobs": 1,
    }
