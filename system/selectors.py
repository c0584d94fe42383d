"""System reads: readiness and dependency checks."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

logger = logging.getLogger("hsi.system")

_migrations_state: dict[str, str] = {}


def database_check() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.warning("Database readiness check failed", exc_info=True)
        return "error"
    return "ok"


def redis_check() -> str:
    if not settings.REDIS_URL:
        return "disabled"
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
    except Exception:  # noqa: BLE001
        logger.warning("Redis readiness check failed")
        return "error"
    return "ok"


def migrations_check() -> str:
    """Unapplied migrations are looked for once per process (CONTRACT §2.1)."""
    if "result" not in _migrations_state:
        try:
            executor = MigrationExecutor(connection)
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except Exception:  # noqa: BLE001
            return "error"
        _migrations_state["result"] = "ok" if not plan else "error"
    return _migrations_state["result"]


def readiness_checks() -> dict[str, str]:
    database = database_check()
    return {
        "database": database,
        "redis": redis_check(),
        "migrations": migrations_check() if database == "ok" else "error",
    }


# --- /api/system reads (CONTRACT §2.11) -------------------------------------------------------------------------

SEVERITY_COLOURS = {"low": "#22C55E", "medium": "#EAB308", "high": "#F97316", "critical": "#EF4444"}
CAMERA_STATUSES = ("online", "offline", "error", "unknown")


def uptime_seconds() -> int:
    import time

    from system.status import PROCESS_STARTED

    return int(time.monotonic() - PROCESS_STARTED)


def system_stats(now=None) -> dict:
    """Counts of §2.11 ``/api/system/stats`` (soft-deleted events excluded)."""
    import datetime as dt

    from django.db.models import Count
    from django.utils import timezone

    from alerts.models import Alert, AlertStatus
    from cameras.models import Camera
    from events.models import Detection, Entity, Event

    now = now or timezone.now()
    day_ago = now - dt.timedelta(hours=24)
    by_status = dict(Camera.objects.order_by().values_list("status").annotate(n=Count("id")))
    events = Event.objects.filter(deleted_at__isnull=True)
    return {
        "total_cameras": sum(by_status.values()),
        "cameras_by_status": {status: int(by_status.get(status, 0)) for status in CAMERA_STATUSES},
        "total_events": events.count(),
        "events_last_24h": events.filter(started_at__gte=day_ago).count(),
        "unreviewed_events": events.filter(reviewed=False).count(),
        "total_detections": Detection.objects.count(),
        "detections_last_24h": Detection.objects.filter(detected_at__gte=day_ago).count(),
        "total_alerts": Alert.objects.count(),
        "pending_alerts": Alert.objects.filter(status=AlertStatus.PENDING).count(),
        "total_entities": Entity.objects.count(),
        "uptime_seconds": uptime_seconds(),
    }


GPU_FIELDS = ("gpu_name", "utilization", "memory_used", "memory_total", "temperature", "power_usage", "inference_fps")


def gpu_latest() -> dict:
    from system.gpu import gpu_stat_json
    from system.models import GPUStat

    stat = GPUStat.objects.order_by("-recorded_at", "-id").first()
    if stat is None:
        return {**dict.fromkeys(GPU_FIELDS), "recorded_at": None}
    return gpu_stat_json(stat)


def gpu_history(*, since=None, limit: int = 300) -> dict:
    """The ``limit`` most recent samples at or after ``since``, in ascending ``recorded_at`` order."""
    from system.gpu import gpu_stat_json
    from system.models import GPUStat

    queryset = GPUStat.objects.all()
    if since is not None:
        queryset = queryset.filter(recorded_at__gte=since)
    rows = list(queryset.order_by("-recorded_at", "-id")[:limit])
    rows.reverse()
    samples = [gpu_stat_json(stat) for stat in rows]
    return {"samples": samples, "count": len(samples), "limit": limit}


def severity_definitions() -> dict:
    low, medium, high = settings.SEVERITY_LOW_MAX, settings.SEVERITY_MEDIUM_MAX, settings.SEVERITY_HIGH_MAX
    bounds = [("low", 0, low), ("medium", low + 1, medium), ("high", medium + 1, high), ("critical", high + 1, 100)]
    return {
        "thresholds": {"low_max": low, "medium_max": medium, "high_max": high},
        "definitions": [
            {"level": level, "min_score": lo, "max_score": hi, "color": SEVERITY_COLOURS[level]}
            for level, lo, hi in bounds
        ],
    }


def _rate_text(rate) -> str | None:
    if rate is None:
        return None
    if isinstance(rate, str):
        return rate
    return str(rate)


def effective_config() -> dict:
    """Effective settings for ``/api/system/config``: never a secret, URLs without credentials (§2.11, §7)."""
    from django.db import connection

    from pipeline.analyzers import resolve_backend_name as llm_backend
    from pipeline.detectors import resolve_backend_name as detector_backend
    from system.auth import env_keys
    from system.health import run_mode, url_without_credentials
    from system.models import ApiKey

    layer = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    try:
        stored_keys = ApiKey.objects.filter(revoked_at__isnull=True).count()
    except Exception:  # noqa: BLE001 - the config is readable while the database is down
        stored_keys = 0
    return {
        "app_name": "Home Security Intelligence",
        "version": settings.HSI_VERSION,
        "run_mode": run_mode(),
        "database_vendor": connection.vendor,
        "channel_layer": "redis" if "redis" in layer.lower() else "in_memory",
        "task_mode": "eager" if settings.CELERY_TASK_ALWAYS_EAGER else "broker",
        "debug": bool(settings.DEBUG),
        "time_zone": settings.TIME_ZONE,
        "foscam_base_path": str(settings.FOSCAM_BASE_PATH),
        "data_dir": str(settings.HSI_DATA_DIR),
        "detector": {
            "backend": detector_backend(),
            "url": url_without_credentials(settings.DETECTOR_URL),
            "onnx_path": settings.DETECTOR_ONNX_PATH or None,
            "confidence_threshold": settings.DETECTION_CONFIDENCE_THRESHOLD,
        },
        "llm": {
            "backend": llm_backend(),
            "url": url_without_credentials(settings.LLM_URL),
            "model": settings.LLM_MODEL,
        },
        "batch": {
            "window_seconds": settings.BATCH_WINDOW_SECONDS,
            "idle_timeout_seconds": settings.BATCH_IDLE_TIMEOUT_SECONDS,
            "max_detections": settings.BATCH_MAX_DETECTIONS,
            "check_interval_seconds": settings.BATCH_CHECK_INTERVAL_SECONDS,
        },
        "fast_path": {
            "enabled": settings.FAST_PATH_ENABLED,
            "confidence_threshold": settings.FAST_PATH_CONFIDENCE_THRESHOLD,
            "object_types": list(settings.FAST_PATH_OBJECT_TYPES),
            "cooldown_seconds": settings.FAST_PATH_COOLDOWN_SECONDS,
        },
        "severity": severity_definitions()["thresholds"],
        "retention": {
            "retention_days": settings.RETENTION_DAYS,
            "log_retention_days": settings.LOG_RETENTION_DAYS,
            "audit_retention_days": settings.AUDIT_RETENTION_DAYS,
            "trash_retention_days": settings.TRASH_RETENTION_DAYS,
            "dlq_retention_days": settings.DLQ_RETENTION_DAYS,
            "delete_media": settings.RETENTION_DELETE_MEDIA,
        },
        "auth": {"api_key_enabled": settings.API_KEY_ENABLED, "api_key_count": len(env_keys()) + stored_keys},
        "throttle": {
            "enabled": settings.THROTTLE_ENABLED,
            "default": _rate_text(settings.THROTTLE_DEFAULT_RATE),
            "media": _rate_text(settings.THROTTLE_MEDIA_RATE),
            "search": _rate_text(settings.THROTTLE_SEARCH_RATE),
            "websocket": _rate_text(settings.THROTTLE_WEBSOCKET_RATE),
        },
        "websocket": {
            "ping_interval_seconds": settings.WEBSOCKET_PING_INTERVAL_SECONDS,
            "idle_timeout_seconds": settings.WEBSOCKET_IDLE_TIMEOUT_SECONDS,
        },
        "notifications": {
            "enabled": settings.NOTIFICATIONS_ENABLED,
            "email_configured": bool(settings.EMAIL_HOST),
            "mqtt_configured": bool(settings.MQTT_URL),
        },
    }


def circuit_breakers(now=None) -> dict:
    """Every breaker of §4.8 with its state, failure count and configuration."""
    import datetime as dt

    from django.utils import timezone

    from hsi.resilience import BREAKER_NAMES, OPEN, breaker
    from hsi.timeutils import utc_iso

    def instant(epoch):
        return utc_iso(dt.datetime.fromtimestamp(epoch, tz=dt.UTC)) if epoch is not None else None

    config = {
        "failure_threshold": settings.CIRCUIT_FAILURE_THRESHOLD,
        "recovery_timeout_seconds": settings.CIRCUIT_RECOVERY_SECONDS,
    }
    breakers = []
    for name in BREAKER_NAMES:
        state = breaker(name).snapshot()
        breakers.append(
            {
                "name": name,
                "state": state.state,
                "failure_count": state.failures,
                "last_failure_at": instant(state.last_failure_at),
                "opened_at": instant(state.opened_at) if state.state != "closed" else None,
                "config": dict(config),
            }
        )
    return {
        "breakers": breakers,
        "open_count": sum(1 for b in breakers if b["state"] == OPEN),
        "timestamp": utc_iso(now or timezone.now()),
    }


def _directory_usage(path) -> tuple[int, int]:
    import os

    count = size = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False):
                        count += 1
                        size += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    except OSError:
        return 0, 0
    return count, size


def storage_usage(now=None) -> dict:
    import shutil
    from pathlib import Path

    from django.utils import timezone

    from alerts.models import Alert
    from events.models import Detection, Event
    from hsi.timeutils import utc_iso
    from pipeline.models import FailedJob
    from system.models import AuditLog, GPUStat, LogEntry

    base = Path(settings.FOSCAM_BASE_PATH)
    try:
        disk = shutil.disk_usage(base)
        total, used, free = disk.total, disk.used, disk.free
    except OSError:
        total = used = free = 0
    files, size = _directory_usage(Path(settings.HSI_DATA_DIR) / "thumbnails")
    return {
        "disk": {
            "path": str(base),
            "total_bytes": total,
            "used_bytes": used,
            "free_bytes": free,
            "usage_percent": round(used / total * 100, 2) if total else 0.0,
        },
        "thumbnails": {"file_count": files, "size_bytes": size},
        "counts": {
            "events": Event.objects.count(),
            "detections": Detection.objects.count(),
            "alerts": Alert.objects.count(),
            "logs": LogEntry.objects.count(),
            "audit_logs": AuditLog.objects.count(),
            "gpu_stats": GPUStat.objects.count(),
            "failed_jobs": FailedJob.objects.count(),
        },
        "timestamp": utc_iso(now or timezone.now()),
    }


OPEN_BATCH_ITEMS = 100


def pipeline_overview(now=None) -> dict:
    """``/api/system/pipeline``: watchers (heartbeats), broker queues, batches, DLQ, deliveries, backends."""
    from django.db.models import Count
    from django.utils import timezone

    from alerts.models import Delivery, DeliveryStatus
    from hsi.timeutils import utc_iso
    from pipeline.analyzers import resolve_backend_name as llm_backend
    from pipeline.detectors import resolve_backend_name as detector_backend
    from pipeline.models import Batch, BatchStatus, FailedJob, JobQueue
    from system.health import circuit_state, watcher_heartbeats
    from system.status import BROKER_QUEUES, broker_queue_depths

    now = now or timezone.now()
    watcher_fields = ("host", "running", "mode", "root", "cameras_watched", "pending_files", "last_file_at")
    try:
        beats = watcher_heartbeats()
    except Exception:  # noqa: BLE001 - the cache (Redis) is down
        beats = []
    watchers = [
        {**{field: beat.get(field) for field in watcher_fields}, "heartbeat_at": beat.get("heartbeat_at")}
        for beat in beats
    ]
    try:
        depths = broker_queue_depths(with_default=True)
    except Exception:  # noqa: BLE001 - the broker is down: nothing known to wait
        depths = {}
    queues = {queue: int(depths.get(queue, 0)) for queue in (*BROKER_QUEUES, "default")}
    open_rows = Batch.objects.filter(status=BatchStatus.OPEN)
    open_count = open_rows.count()
    open_batches = list(
        open_rows.order_by("opened_at", "id").values(
            "id", "camera_id", "detection_count", "opened_at", "last_detection_at"
        )[:OPEN_BATCH_ITEMS]
    )
    oldest = open_batches[0]["opened_at"] if open_batches else None
    dlq = dict(FailedJob.objects.order_by().values_list("queue").annotate(n=Count("id")))
    deliveries = dict(
        Delivery.objects.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED])
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    )
    return {
        "watchers": watchers,
        "queues": queues,
        "batches": {
            "open": open_count,
            "analyzing": Batch.objects.filter(status=BatchStatus.ANALYZING).count(),
            "oldest_open_age_seconds": round((now - oldest).total_seconds(), 3) if oldest else None,
            "open_items": [
                {
                    "batch_id": str(row["id"]),
                    "camera_id": row["camera_id"],
                    "detection_count": row["detection_count"],
                    "opened_at": utc_iso(row["opened_at"]),
                    "last_detection_at": utc_iso(row["last_detection_at"]),
                }
                for row in open_batches
            ],
        },
        "dlq": {
            **{queue: int(dlq.get(queue, 0)) for queue in JobQueue.values},
            "total": int(sum(dlq.values())),
        },
        "deliveries": {
            "pending": int(deliveries.get(DeliveryStatus.PENDING, 0)),
            "failed": int(deliveries.get(DeliveryStatus.FAILED, 0)),
        },
        "detector": {"backend": detector_backend(), "circuit_state": circuit_state("detector")},
        "llm": {"backend": llm_backend(), "circuit_state": circuit_state("llm")},
        "timestamp": utc_iso(now),
    }
