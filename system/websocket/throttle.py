"""The ``websocket`` throttle tier (CONTRACT §6.2): connection attempts per client IP, in the shared cache.

A sliding window, like DRF's rate throttles: the cache holds the times of the attempts of the last period. Time
comes from ``django.utils.timezone.now`` (so time-machine drives it in tests).
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``10/min`` → (10, 60): attempts allowed per period of seconds."""
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period.strip()[0]]


def websocket_attempt_allowed(client_ip: str | None) -> bool:
    """Count one connection attempt of ``client_ip``; False when it is over ``THROTTLE_WEBSOCKET_RATE``."""
    if not settings.THROTTLE_ENABLED:
        return True
    allowed, period = parse_rate(settings.THROTTLE_WEBSOCKET_RATE)
    key = f"hsi:throttle:websocket:{client_ip or 'unknown'}"
    now = timezone.now().timestamp()
    history = [moment for moment in cache.get(key, []) if moment > now - period]
    if len(history) >= allowed:
        return False
    history.append(now)
    cache.set(key, history, period)
    return True
