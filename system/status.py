"""The ``system.status`` snapshot of ``/ws/system`` (CONTRACT §3.6), sent on connect and every
``SYSTEM_STATUS_INTERVAL_SECONDS`` by ``system.broadcast_status``.

``{health, cameras{total, online, offline, error, unknown}, queue{detection, analysis, notifications, open_batches,
dlq}, gpu{...} | null, detector{backend, circuit_state}, llm{backend, circuit_state}, uptime_seconds}``

- ``health``: the checks of ``system.health`` (``/api/system/health``) for the database, Redis, the detector and
  the LLM, aggregated the same way: ``unhealthy`` when the database does not answer; ``degraded`` when Redis (if
  configured) does not answer, a detector/LLM probe this process remembers failed, or their circuit breaker is not
  closed; ``healthy`` otherwise. (No network probe of the detector/LLM here: only the remembered result.)
- ``queue``: broker queue depths (Redis ``LLEN`` of the Celery queues, priority sub-queues included); 0 in eager
  mode, where tasks never wait in a broker. ``open_batches`` and ``dlq`` come from the database.
- ``gpu``: the first GPU as ``nvidia-smi`` reports it (cached for ``GPU_CACHE_SECONDS``), ``null`` without the
  binary or with ``GPU_MONITOR_ENABLED=false``; ``inference_fps`` = detector calls in the last minute / 60
  (``system.gpu``).
- ``uptime_seconds``: of this process (counted from when this module was first imported).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from django.conf import settings
from django.db.models import Count

from system import health as health_checks
from system.gpu import inference_fps, nvidia_smi_readings

logger = logging.getLogger("hsi.system.status")

PROCESS_STARTED = time.monotonic()
GPU_CACHE_SECONDS = 10.0
SNAPSHOT_CACHE_SECONDS = 2.0
BROKER_QUEUES = ("detection", "analysis", "notifications")
# kombu's Redis transport keeps priorities 3, 6 and 9 in sub-queues named ``<queue>\x06\x16<priority>``.
KOMBU_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
CAMERA_STATUSES = ("online", "offline", "error", "unknown")
SERVICE_STATUS_CACHE_KEY = "hsi:ws:service_status"
SERVICE_STATUS_TTL_SECONDS = 24 * 3600
HEARTBEAT_SERVICE_STATUS = {"ok": "healthy", "degraded": "degraded", "error": "unhealthy"}

_lock = threading.Lock()
_gpu_cache: tuple[float, dict | None] | None = None
_snapshot_cache: tuple[float, dict] | None = None
_last_service_status: dict[str, str] = {}


def _camera_counts() -> dict:
    from cameras.models import Camera

    by_status = dict(Camera.objects.order_by().values_list("status").annotate(n=Count("id")))
    counts = {status: int(by_status.get(status, 0)) for status in CAMERA_STATUSES}
    return {"total": sum(int(n) for n in by_status.values()), **counts}


def broker_queue_depths(*, with_default: bool = False) -> dict[str, int]:
    """Tasks waiting in the broker per pipeline queue (plus ``default``, Celery's default queue, when asked);
    0 each in eager mode or with a non-Redis broker."""
    queues = {queue: queue for queue in BROKER_QUEUES}
    if with_default:
        queues["default"] = settings.CELERY_TASK_DEFAULT_QUEUE
    url = settings.CELERY_BROKER_URL
    if settings.CELERY_TASK_ALWAYS_EAGER or not url or not url.startswith(("redis://", "rediss://", "unix://")):
        return dict.fromkeys(queues, 0)
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    pipe = health_checks.redis_client(url).pipeline(transaction=False)
    for queue in queues.values():
        for suffix in KOMBU_PRIORITY_SUFFIXES:
            pipe.llen(f"{prefix}{queue}{suffix}")
    lengths = pipe.execute()
    step = len(KOMBU_PRIORITY_SUFFIXES)
    return {label: int(sum(lengths[i * step : (i + 1) * step])) for i, label in enumerate(queues)}


def _database_counts() -> tuple[dict, int, int]:
    from pipeline.models import Batch, BatchStatus, FailedJob

    cameras = _camera_counts()
    open_batches = Batch.objects.filter(status=BatchStatus.OPEN).count()
    dlq = FailedJob.objects.count()
    return cameras, open_batches, dlq


def nvidia_smi_first_gpu() -> dict | None:
    """``{gpu_name, utilization, memory_used, memory_total, temperature}`` of GPU 0, or None (no binary, error)."""
    readings = nvidia_smi_readings()
    if not readings:
        return None
    first = readings[0]
    return {
        "gpu_name": first.name,
        "utilization": first.utilization,
        "memory_used": first.memory_used,
        "memory_total": first.memory_total,
        "temperature": first.temperature,
    }


def gpu_reading_refresh() -> dict | None:
    """The ``nvidia-smi`` reading, from the cache while it is younger than ``GPU_CACHE_SECONDS`` (no database: a
    caller may run it in any thread, so a slow ``nvidia-smi`` holds up nobody's database work)."""
    global _gpu_cache
    if settings.GPU_MONITOR_ENABLED in ("false", "0"):
        return None
    now = time.monotonic()
    with _lock:
        cached = _gpu_cache
    if cached is not None and now - cached[0] < GPU_CACHE_SECONDS:
        return cached[1]
    gpu = nvidia_smi_first_gpu()
    with _lock:
        _gpu_cache = (now, gpu)
    return gpu


def _gpu() -> dict | None:
    gpu = gpu_reading_refresh()
    if gpu is None:
        return None
    return {**gpu, "inference_fps": inference_fps()}


def _backends() -> tuple[dict, dict]:
    from pipeline.analyzers import resolve_backend_name as llm_backend
    from pipeline.detectors import resolve_backend_name as detector_backend

    states = {name: health_checks.circuit_state(name) for name in ("detector", "llm")}
    return (
        {"backend": detector_backend(), "circuit_state": states["detector"]},
        {"backend": llm_backend(), "circuit_state": states["llm"]},
    )


def _redis_answers() -> bool:
    return health_checks.run_check("redis")["status"] != health_checks.ERROR


def _dependency_checks(database_ok: bool) -> dict[str, dict]:
    """The ``/api/system/health`` checks that make up ``system.status``'s ``health`` (no network probes)."""
    database = {"status": health_checks.OK if database_ok else health_checks.ERROR}
    return {
        "database": database,
        "redis": health_checks.run_check("redis"),
        "detector": health_checks.run_check("detector", probe=False),
        "llm": health_checks.run_check("llm", probe=False),
    }


def system_status() -> dict:
    """The ``system.status`` data, built now (a few small queries, one Redis pipeline, a cached nvidia-smi)."""
    database_ok = True
    try:
        cameras, open_batches, dlq = _database_counts()
    except Exception:  # reported as health, never raised to a client
        logger.warning("system.status: the database did not answer", exc_info=True)
        database_ok = False
        cameras, open_batches, dlq = {"total": 0, **dict.fromkeys(CAMERA_STATUSES, 0)}, 0, 0
    try:
        queues = broker_queue_depths()
    except Exception:
        logger.warning("system.status: the broker did not answer", exc_info=True)
        queues = dict.fromkeys(BROKER_QUEUES, 0)
    detector, llm = _backends()
    try:
        gpu = _gpu() if database_ok else None
    except Exception:  # noqa: BLE001
        gpu = None
    health = health_checks.overall_status(_dependency_checks(database_ok))
    return {
        "health": health,
        "cameras": cameras,
        "queue": {**queues, "open_batches": open_batches, "dlq": dlq},
        "gpu": gpu,
        "detector": detector,
        "llm": llm,
        "uptime_seconds": int(time.monotonic() - PROCESS_STARTED),
    }


def system_status_recent(max_age: float = SNAPSHOT_CACHE_SECONDS) -> dict:
    """``system_status()``, reused for ``max_age`` seconds in this process (a burst of connections builds it once)."""
    global _snapshot_cache
    now = time.monotonic()
    with _lock:
        cached = _snapshot_cache
    if cached is not None and now - cached[0] < max_age:
        return cached[1]
    snapshot = system_status()
    with _lock:
        _snapshot_cache = (now, snapshot)
    return snapshot


def status_caches_clear() -> None:
    """Forget the cached snapshot, GPU reading and last health statuses (tests; a process that wants fresh figures
    at once)."""
    global _snapshot_cache, _gpu_cache
    with _lock:
        _snapshot_cache = _gpu_cache = None
        _last_service_status.clear()
    health_checks.health_caches_clear()


def system_status_publish() -> dict:
    """Broadcast a fresh snapshot to every ``/ws/system`` client (the periodic ``system.broadcast_status``), after
    a ``system.service_status`` for each health check that changed since the previous run."""
    from hsi.realtime import send_now

    global _snapshot_cache
    snapshot = system_status()
    with _lock:
        _snapshot_cache = (time.monotonic(), snapshot)
    checks = {"database": snapshot["health"] != "unhealthy", "redis": _redis_answers()}
    current = {name: "healthy" if ok else "unhealthy" for name, ok in checks.items()}
    for name in ("watcher", "scheduler", "workers"):  # heartbeats (§8.3); detector/llm: their breakers announce
        status = health_checks.run_check(name)["status"]
        if status != health_checks.DISABLED:
            current[name] = HEARTBEAT_SERVICE_STATUS.get(status, "unhealthy")
    for change in service_status_changes(current):
        send_now("system", "system.service_status", change)
    send_now("system", "system.status", snapshot)
    return snapshot


def service_status_changes(current: dict[str, str]) -> list[dict]:
    """The ``system.service_status`` data for each service whose status differs from the one recorded by the
    previous call (none on the first), and record ``current``. Kept in the cache, so whichever worker runs the
    periodic job compares with the last run anywhere; in this process while the cache (Redis) is down."""
    from django.core.cache import cache

    try:
        previous = cache.get(SERVICE_STATUS_CACHE_KEY)
    except Exception:  # noqa: BLE001 - Redis is down: that is one of the changes to report
        previous = None
    if previous is None:
        previous = dict(_last_service_status)
    changes = [
        {
            "service": service,
            "status": status,
            "previous_status": previous[service],
            "message": f"health check {previous[service]} -> {status}",
        }
        for service, status in current.items()
        if previous.get(service) not in (None, status)
    ]
    _last_service_status.update(current)
    with contextlib.suppress(Exception):  # Redis down: this process remembers
        cache.set(SERVICE_STATUS_CACHE_KEY, dict(current), SERVICE_STATUS_TTL_SECONDS)
    return changes
