"""The ``websocket`` throttle tier (CONTRACT §6.2): connection attempts per client IP, in the shared cache.

The limiter is the one of the HTTP tiers (``hsi.throttle``): a fixed window per client IP, counted atomically in
the cache, so concurrent handshakes in several processes never both see the last free slot.
"""

from __future__ import annotations

from hsi.throttle import parse_rate, throttle_hit

__all__ = ["parse_rate", "websocket_attempt_allowed"]


def websocket_attempt_allowed(client_ip: str | None) -> bool:
    """Count one connection attempt of ``client_ip``; False when it is over ``THROTTLE_WEBSOCKET_RATE``."""
    return throttle_hit("websocket", client_ip).allowed
