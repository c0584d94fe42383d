"""Throttling (CONTRACT §6.2): one fixed-window limiter for the HTTP tiers and the WebSocket tier.

Every counted request or connection attempt belongs to a window: the period of the tier's rate that contains
"now" (``60/min``: each clock minute). The window's counter lives in the shared cache, keyed by tier, client IP
and window number, and is incremented atomically (on Redis one ``MULTI SET NX EX / INCR / EXEC`` round trip; in
the in-memory cache of all-in-one ``cache.add`` + ``cache.incr`` under its lock), so concurrent requests served by
several processes never both take the last free slot. A refused attempt is told honestly when a slot frees: at
the end of the current window (``Retry-After``, at least 1 second). Time comes from ``django.utils.timezone.now``
(so time-machine drives it in tests); ``THROTTLE_ENABLED`` and the rates are read from settings on every call.

``ThrottleMiddleware`` applies the HTTP tiers to every ``/api/`` request, whatever answers it (DRF views, plain
Django views, the 404 of an unknown route): a middleware rather than DRF throttle classes, which would only see
requests that reach a DRF view. It runs before API-key authentication, so guessing keys is throttled too, and
inside ``RequestIdMiddleware``/``CorsMiddleware``/``ApiResponseHeadersMiddleware``, so a 429 carries the request
id, the security and CORS headers and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.cache import caches
from django.utils import timezone

from hsi.api.errors import problem_response
from hsi.api.tiers import tier_for_path
from hsi.cache import RedisCache
from hsi.middleware import offered_api_key
from hsi.net import client_ip

logger = logging.getLogger("hsi.throttle")

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RATE_SETTINGS = {
    "default": "THROTTLE_DEFAULT_RATE",
    "media": "THROTTLE_MEDIA_RATE",
    "search": "THROTTLE_SEARCH_RATE",
    "websocket": "THROTTLE_WEBSOCKET_RATE",
}


@lru_cache(maxsize=32)
def parse_rate(rate: str) -> tuple[int, int]:
    """``10/min`` → (10, 60): attempts allowed per period of seconds."""
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period.strip()[0]]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # whole seconds until a slot frees (≥ 1 when refused)


def throttle_hit(tier: str, ip: str | None) -> Decision:
    """Count one attempt of ``ip`` in ``tier``; refused when it is over the tier's rate."""
    if not settings.THROTTLE_ENABLED:
        return Decision(True)
    allowed, period = parse_rate(getattr(settings, RATE_SETTINGS[tier]))
    now = timezone.now().timestamp()
    window = int(now // period)
    if _count(f"hsi:throttle:{tier}:{ip or 'unknown'}:{window}", period) <= allowed:
        return Decision(True)
    return Decision(False, max(1, math.ceil((window + 1) * period - now)))


def _count(key: str, period: int) -> int:
    """This attempt's number in the window ``key`` (1 for the first)."""
    cache = caches["default"]
    try:
        if isinstance(cache, RedisCache):
            return _redis_count(cache, key, period)
        return _cache_count(cache, key, period)
    except Exception:  # an unreachable cache lets requests through rather than taking the API down with it
        logger.warning("Throttle counter unavailable; the attempt is let through", exc_info=True)
        return 1


def _redis_count(cache, key: str, period: int) -> int:
    """One round trip. Django's Redis serializer stores integers as plain numbers, so the counter stays a
    regular cache entry (``cache.get`` reads it, ``cache.clear`` removes it)."""
    real_key = cache.make_and_validate_key(key)
    with cache._cache.get_client(real_key, write=True).pipeline(transaction=True) as pipe:
        pipe.set(real_key, 0, ex=period + 1, nx=True)
        pipe.incr(real_key)
        return int(pipe.execute()[1])


def _cache_count(cache, key: str, period: int) -> int:
    for _ in range(3):
        cache.add(key, 0, period + 1)  # a no-op when another attempt created it first
        try:
            return cache.incr(key)
        except ValueError:  # the key expired between add and incr: create it again
            continue
    return 1  # the cache keeps losing the key: let the attempt through rather than refuse everyone


def audit_rate_limited(
    ip: str | None,
    tier: str,
    *,
    path: str,
    resource_type: str,
    actor: Callable[[], str] = lambda: "anonymous",
    **actor_fields,
) -> None:
    """``rate_limit_exceeded``, at most one row per IP and tier per minute (§6.2, §6.8)."""
    from system.services import Actor, audit_record_throttled

    try:
        audit_record_throttled(
            lambda: Actor(name=actor(), ip_address=ip, **actor_fields),
            "rate_limit_exceeded",
            resource_type,
            key=f"{ip or 'unknown'}:{tier}",
            details={"tier": tier, "ip": ip, "path": path},
            status="failure",
        )
    except Exception:  # an audit row never decides a request
        logger.warning("Could not audit rate_limit_exceeded", exc_info=True)


def _offered_actor(request) -> str:
    """Who the refused request says it is: throttling runs before authentication, so the key is checked here, and
    only when a row is written (at most once per IP and tier per minute)."""
    from system.auth import authenticate_key

    name = authenticate_key(offered_api_key(request) or "")
    return f"api_key:{name}" if name else "anonymous"


def _is_preflight(request) -> bool:
    return request.method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.META


class ThrottleMiddleware:
    """The ``default``, ``media`` and ``search`` tiers for every ``/api/`` request (CONTRACT §6.2)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tier = tier_for_path(request.path)
        if tier is None or not settings.THROTTLE_ENABLED or _is_preflight(request):
            return self.get_response(request)
        ip = client_ip(request)
        decision = throttle_hit(tier, ip)
        if decision.allowed:
            return self.get_response(request)
        agent = request.META.get("HTTP_USER_AGENT")
        audit_rate_limited(
            ip,
            tier,
            path=request.path,
            resource_type="request",
            actor=lambda: _offered_actor(request),
            user_agent=agent[:500] if agent else None,
            request_id=getattr(request, "request_id", None),
        )
        return problem_response(
            request, 429, "rate_limited", "Rate limit exceeded", headers={"Retry-After": str(decision.retry_after)}
        )
