"""The notification outbox (CONTRACT §5.7–5.8). Stub: the delivery work fills this in."""

from __future__ import annotations


def deliveries_create_for_alert(alert_id) -> list[int]:
    """Create one Delivery per target channel of a committed alert (§5.7 filters) and dispatch the pending ones
    after commit; returns the ids of the Delivery rows."""
    return []


def delivery_send(delivery_id: int) -> str | None:
    """Claim and send one due ``pending`` Delivery (§5.8); returns its status afterwards, None if not claimable."""
    return None


def deliveries_sweep(now) -> int:
    """Dispatch due ``pending`` deliveries and reset ``sending`` rows older than 5 minutes (§5.8)."""
    return 0
