"""The ``websocket`` throttle tier (CONTRACT §6.2): connection attempts per client IP, in the shared cache.

A fixed window per client IP, counted atomically: ``cache.add`` creates the window's counter, ``cache.incr``
counts the attempt (Redis ``INCR`` in distributed mode; under the in-memory cache's lock in all-in-one), so
concurrent handshakes in several processes never both see the last free slot. The window is the period that
contains "now" (``10/min``: each clock minute); time comes from ``django.utils.timezone.now`` (so time-machine
drives it in tests).
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


def _count_attempt(key: str, period: int) -> int:
    """This attempt's number in the window ``key`` (1 for the first)."""
    for _ in range(3):
        cache.add(key, 0, period + 1)  # a no-op when another attempt created it first
        try:
            return cache.incr(key)
        except ValueError:  # the key expired between add and incr: create it again
            continue
    return 1  # the cache keeps losing the key: let the attempt through rather than refuse everyone


def websocket_attempt_allowed(client_ip: str | None) -> bool:
    """Count one connection attempt of ``client_ip``; False when it is over ``THROTTLE_WEBSOCKET_RATE``."""
    if not settings.THROTTLE_ENABLED:
        return True
    allowed, period = parse_rate(settings.THROTTLE_WEBSOCKET_RATE)
    window = int(timezone.now().timestamp() // period)
    key = f"hsi:throttle:websocket:{client_ip or 'unknown'}:{window}"
    return _count_attempt(key, period) <= allowed
