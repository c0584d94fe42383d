"""Dependency health checks of ``GET /api/system/health`` (CONTRACT §2.11), also used by ``/ws/system`` (§3.6).

Every check returns ``{status: ok|degraded|error|disabled, latency_ms, message, details}``:

- ``database``: ``SELECT 1``; an error makes the whole system ``unhealthy`` (503).
- ``redis`` / ``channel_layer`` / ``broker``: a ``PING`` of the configured Redis; ``disabled`` without Redis (the
  in-memory channel layer is ``ok``; the broker is ``disabled`` in eager mode, where tasks never wait in one).
- ``detector`` / ``llm``: the backend's own health probe (HTTP backends only, cached ``PROBE_CACHE_SECONDS`` per
  process); embedded backends (OpenCV, ONNX, rules) are ``ok`` without probing. ``details`` carry ``backend``, the
  ``url`` without credentials and the ``circuit_state``; a breaker that is not closed makes the check ``degraded``.
- ``watcher`` / ``scheduler`` / ``workers``: heartbeats of §8.3 younger than ``HEARTBEAT_MAX_AGE_SECONDS``;
  ``workers`` is ``disabled`` in all-in-one (eager) mode.

Overall: ``unhealthy`` when the database is in error, ``degraded`` when any other check is in error or degraded,
``healthy`` otherwise.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from hsi.timeutils import utc_iso

logger = logging.getLogger("hsi.system.health")

OK, DEGRADED, ERROR, DISABLED = "ok", "degraded", "error", "disabled"
HEALTHY, UNHEALTHY = "healthy", "unhealthy"
PROBE_CACHE_SECONDS = 30.0
HEARTBEAT_MAX_AGE_SECONDS = 60.0
EMBEDDED_DETECTORS = ("opencv", "onnx")
CHECK_NAMES = ("database", "redis", "channel_layer", "broker", "detector", "llm", "watcher", "scheduler", "workers")

_lock = threading.Lock()
_redis_lock = threading.Lock()
_redis_clients: dict[tuple[int, str], object] = {}
_probe_cache: dict[tuple, tuple[float, bool]] = {}


# --- helpers ----------------------------------------------------------------------------------------------------


def url_without_credentials(url: str | None) -> str | None:
    """``url`` without user, password, query or fragment (a token may travel in any of them)."""
    if not url:
        return None
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return None
    return urlunsplit((parts.scheme, f"{host}{port}", parts.path, "", ""))


def run_mode() -> str:
    """``all_in_one`` when tasks run in process (eager), ``distributed`` with a broker (CONTRACT §0.1)."""
    return "all_in_one" if settings.CELERY_TASK_ALWAYS_EAGER else "distributed"


def _result(status: str, started: float, message: str = "", details: dict | None = None) -> dict:
    return {
        "status": status,
        "latency_ms": round((time.monotonic() - started) * 1000, 2),
        "message": message,
        "details": details or {},
    }


def _error_text(error: BaseException) -> str:
    """The failure's class only: driver messages may name hosts, users or paths."""
    return f"{type(error).__name__}"


def redis_client(url: str):
    """One pooled client per URL and process, with 1 s timeouts (health checks and queue depths)."""
    import redis

    key = (os.getpid(), url)
    with _redis_lock:
        client = _redis_clients.get(key)
        if client is None:
            client = _redis_clients[key] = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        return client


def _redis_ping(url: str) -> None:
    redis_client(url).ping()


def probe_cached(key: tuple, probe: Callable[[], bool], *, refresh: bool = True) -> bool | None:
    """``probe()``, remembered for ``PROBE_CACHE_SECONDS`` in this process (CONTRACT §10 on §2.11). With
    ``refresh=False`` only a remembered result is returned (None when there is none): no network call."""
    now = time.monotonic()
    with _lock:
        cached = _probe_cache.get(key)
    if cached is not None and now - cached[0] < PROBE_CACHE_SECONDS:
        return cached[1]
    if not refresh:
        return None
    try:
        ok = bool(probe())
    except Exception:
        logger.info("Health probe %s failed", key[0], exc_info=True)
        ok = False
    with _lock:
        _probe_cache[key] = (time.monotonic(), ok)
    return ok


def health_caches_clear() -> None:
    with _lock:
        _probe_cache.clear()


def circuit_state(name: str) -> str:
    from hsi.resilience import breaker

    try:
        return breaker(name).snapshot().state
    except Exception:  # noqa: BLE001 - the cache (Redis) is down: the state is unknown
        return "unknown"


# --- dependency checks --------------------------------------------------------------------------------------------


def database_health(db=None) -> dict:
    """``SELECT 1`` on ``db`` (default: this thread's default connection)."""
    db = db or connection
    started = time.monotonic()
    try:
        with db.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:
        logger.warning("Health check: the database did not answer", exc_info=True)
        return _result(ERROR, started, f"Database unreachable ({_error_text(error)})", {"vendor": db.vendor})
    return _result(OK, started, "Database answered", {"vendor": db.vendor})


def redis_health() -> dict:
    started = time.monotonic()
    if not settings.REDIS_URL:
        return _result(DISABLED, started, "REDIS_URL is not set")
    details = {"url": url_without_credentials(settings.REDIS_URL)}
    try:
        _redis_ping(settings.REDIS_URL)
    except Exception as error:  # noqa: BLE001
        return _result(ERROR, started, f"Redis unreachable ({_error_text(error)})", details)
    return _result(OK, started, "Redis answered", details)


def _layer_redis_url(config: dict) -> str | None:
    hosts = config.get("hosts") or []
    if not hosts:
        return None
    host = hosts[0]
    if isinstance(host, dict):
        return host.get("address")
    if isinstance(host, list | tuple):
        return f"redis://{host[0]}:{host[1]}"
    return str(host)


def channel_layer_health() -> dict:
    started = time.monotonic()
    layer = settings.CHANNEL_LAYERS.get("default", {})
    backend = layer.get("BACKEND", "")
    if "redis" not in backend.lower():
        return _result(OK, started, "In-process channel layer", {"backend": "in_memory"})
    url = _layer_redis_url(layer.get("CONFIG") or {})
    details = {"backend": "redis"}
    if not url or not url.startswith(("redis://", "rediss://", "unix://")):
        return _result(OK, started, "Redis channel layer (not probed)", details)
    try:
        _redis_ping(url)
    except Exception as error:  # noqa: BLE001
        return _result(ERROR, started, f"Channel layer unreachable ({_error_text(error)})", details)
    return _result(OK, started, "Channel layer answered", details)


def broker_health() -> dict:
    from system.status import broker_queue_depths

    started = time.monotonic()
    url = settings.CELERY_BROKER_URL
    if settings.CELERY_TASK_ALWAYS_EAGER or not url:
        return _result(DISABLED, started, "Tasks run in process (eager mode)")
    details: dict = {"url": url_without_credentials(url)}
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return _result(OK, started, "Broker configured (not probed)", details)
    try:
        details["queues"] = broker_queue_depths()
    except Exception as error:  # noqa: BLE001
        return _result(ERROR, started, f"Broker unreachable ({_error_text(error)})", details)
    return _result(OK, started, "Broker answered", details)


def _backend_result(
    started: float, name: str, backend: str, url: str | None, probe: Callable[[], bool] | None, refresh: bool
) -> dict:
    state = circuit_state(name)
    details = {"backend": backend, "url": url_without_credentials(url), "circuit_state": state}
    answered = None if probe is None else probe_cached((name, backend, url), probe, refresh=refresh)
    if probe is None:
        status, message = OK, f"Embedded {backend} backend"
    elif answered is None:
        status, message = OK, f"{backend} server not probed yet"
    elif answered:
        status, message = OK, f"{backend} server answered its health probe"
    else:
        status, message = ERROR, f"{backend} server did not answer its health probe"
    if status == OK and state not in ("closed", "unknown"):
        status, message = DEGRADED, f"Circuit breaker {name} is {state}"
    return _result(status, started, message, details)


def detector_health(*, probe: bool = True) -> dict:
    """``probe=False``: no network call, only a probe result this process remembers (``/ws/system``)."""
    from pipeline.detectors import get_detector, resolve_backend_name

    started = time.monotonic()
    backend = resolve_backend_name()
    if backend in EMBEDDED_DETECTORS:
        return _backend_result(started, "detector", backend, None, None, probe)
    url = settings.DETECTOR_URL
    if not url:
        return _result(
            ERROR,
            started,
            "DETECTOR_BACKEND=http needs DETECTOR_URL",
            {"backend": backend, "url": None, "circuit_state": circuit_state("detector")},
        )
    return _backend_result(started, "detector", backend, url, lambda: get_detector().health(), probe)


def _llm_probe() -> bool:
    from pipeline.analyzers import get_llm_backend

    client = get_llm_backend()
    if client is None:
        return False
    try:
        return client.health()
    finally:
        client.close()


def llm_health(*, probe: bool = True) -> dict:
    from pipeline.analyzers import resolve_backend_name

    started = time.monotonic()
    backend = resolve_backend_name()
    if backend == "rules":
        return _backend_result(started, "llm", backend, None, None, probe)
    url = settings.LLM_URL
    if not url:
        return _result(
            ERROR,
            started,
            f"LLM_BACKEND={backend} needs LLM_URL",
            {"backend": backend, "url": None, "circuit_state": circuit_state("llm")},
        )
    return _backend_result(started, "llm", backend, url, _llm_probe, probe)


# --- heartbeats -------------------------------------------------------------------------------------------------


def heartbeats(prefix: str) -> dict[str, dict]:
    """Every live cache entry whose key starts with ``prefix`` (``hsi:hb:watcher:``, ``hsi:hb:worker:``)."""
    keys: list[str] = []
    backend = cache
    client_getter = getattr(getattr(backend, "_cache", None), "get_client", None)
    marker = backend.make_key("")
    if client_getter is not None:  # Redis
        pattern = _glob_escape(backend.make_key(prefix)) + "*"
        client = client_getter()
        for raw in client.scan_iter(match=pattern, count=1000):
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            if text.startswith(marker):
                keys.append(text[len(marker) :])
    elif isinstance(getattr(backend, "_cache", None), dict):  # local memory
        full = backend.make_key(prefix)
        with backend._lock:
            keys = [key[len(marker) :] for key in list(backend._cache) if key.startswith(full)]
    values = backend.get_many(keys) if keys else {}
    return {key[len(prefix) :]: value for key, value in values.items() if isinstance(value, dict)}


def _glob_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


def heartbeat_age(payload: dict, field: str, now: dt.datetime) -> float | None:
    """Seconds since the heartbeat's ``field`` time; None when it has none or it does not parse."""
    raw = payload.get(field)
    if not isinstance(raw, str):
        return None
    try:
        stamp = parse_datetime(raw)
    except ValueError:
        return None
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return round((now - stamp).total_seconds(), 3)


def _fresh(age: float | None) -> bool:
    return age is not None and age < HEARTBEAT_MAX_AGE_SECONDS


def watcher_heartbeats() -> list[dict]:
    return sorted(heartbeats("hsi:hb:watcher:").values(), key=lambda beat: str(beat.get("host", "")))


def watcher_health(now: dt.datetime | None = None) -> dict:
    started = time.monotonic()
    now = now or timezone.now()
    try:
        beats = watcher_heartbeats()
    except Exception as error:  # noqa: BLE001
        return _result(ERROR, started, f"Heartbeats unreadable ({_error_text(error)})")
    watchers = [
        {"host": beat.get("host"), "heartbeat_at": beat.get("heartbeat_at"), "age_seconds": age}
        for beat in beats
        for age in [heartbeat_age(beat, "heartbeat_at", now)]
    ]
    fresh = [w for w in watchers if _fresh(w["age_seconds"])]
    details = {"watchers": watchers, "fresh": len(fresh)}
    if not watchers:
        return _result(ERROR, started, "No watcher heartbeat", details)
    if not fresh:
        return _result(ERROR, started, "Watcher heartbeat is stale", details)
    return _result(OK, started, f"{len(fresh)} watcher(s) alive", details)


def scheduler_health(now: dt.datetime | None = None) -> dict:
    from hsi.schedule import SCHEDULER_HEARTBEAT_KEY

    started = time.monotonic()
    now = now or timezone.now()
    try:
        beat = cache.get(SCHEDULER_HEARTBEAT_KEY)
    except Exception as error:  # noqa: BLE001
        return _result(ERROR, started, f"Heartbeat unreadable ({_error_text(error)})")
    if not isinstance(beat, dict):
        return _result(ERROR, started, "No scheduler heartbeat")
    age = heartbeat_age(beat, "time", now)
    details = {"mode": beat.get("mode"), "host": beat.get("host"), "heartbeat_at": beat.get("time"), "age_seconds": age}
    if not _fresh(age):
        return _result(ERROR, started, "Scheduler heartbeat is stale", details)
    return _result(OK, started, f"Scheduler ({beat.get('mode')}) alive", details)


def workers_health(now: dt.datetime | None = None) -> dict:
    started = time.monotonic()
    if run_mode() == "all_in_one":
        return _result(DISABLED, started, "Tasks run in process (all-in-one mode)")
    now = now or timezone.now()
    try:
        beats = heartbeats("hsi:hb:worker:")
    except Exception as error:  # noqa: BLE001
        return _result(ERROR, started, f"Heartbeats unreadable ({_error_text(error)})")
    workers = sorted(
        (
            {
                "hostname": beat.get("hostname", name),
                "queues": beat.get("queues", []),
                "heartbeat_at": beat.get("time"),
                "age_seconds": heartbeat_age(beat, "time", now),
            }
            for name, beat in beats.items()
        ),
        key=lambda w: str(w["hostname"]),
    )
    fresh = [w for w in workers if _fresh(w["age_seconds"])]
    details = {"workers": workers, "count": len(fresh)}
    if not fresh:
        return _result(ERROR, started, "No worker heartbeat younger than 60 s", details)
    return _result(OK, started, f"{len(fresh)} worker(s) alive", details)


# --- aggregation ------------------------------------------------------------------------------------------------

CHECKS: dict[str, Callable[[], dict]] = {
    "database": database_health,
    "redis": redis_health,
    "channel_layer": channel_layer_health,
    "broker": broker_health,
    "detector": detector_health,
    "llm": llm_health,
    "watcher": watcher_health,
    "scheduler": scheduler_health,
    "workers": workers_health,
}


def run_check(name: str, **options) -> dict:
    started = time.monotonic()
    try:
        return CHECKS[name](**options)
    except Exception as error:
        logger.warning("Health check %s raised", name, exc_info=True)
        return _result(ERROR, started, f"Check failed ({_error_text(error)})")


def overall_status(checks: dict[str, dict]) -> str:
    """``unhealthy`` when the database is in error; ``degraded`` when another check is; else ``healthy``."""
    if checks.get("database", {}).get("status") == ERROR:
        return UNHEALTHY
    if any(check.get("status") in (ERROR, DEGRADED) for name, check in checks.items() if name != "database"):
        return "degraded"
    return HEALTHY


def system_health(names: tuple[str, ...] = CHECK_NAMES) -> dict:
    from system.status import PROCESS_STARTED

    checks = {name: run_check(name) for name in names}
    return {
        "status": overall_status(checks),
        "checks": checks,
        "version": settings.HSI_VERSION,
        "uptime_seconds": int(time.monotonic() - PROCESS_STARTED),
        "timestamp": utc_iso(timezone.now()),
    }
