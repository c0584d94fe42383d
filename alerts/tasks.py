"""Celery tasks of the alert engine and the delivery outbox (CONTRACT §5). Thin: ids in, one service call."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone


@shared_task(name="alerts.evaluate_event")
def evaluate_event(event_id: int) -> list[str]:
    """Evaluate every enabled ``event`` rule against a new event; returns the ids of the alerts created."""
    from alerts.services.alerts import alerts_evaluate_event

    return [str(alert_id) for alert_id in alerts_evaluate_event(event_id)]


@shared_task(name="alerts.deliver")
def deliver(delivery_id: int) -> str | None:
    """Work one Delivery of the outbox; returns its status afterwards (None when it was not claimable)."""
    from alerts.services.deliveries import delivery_send

    return delivery_send(delivery_id)


@shared_task(name="alerts.sweep_deliveries")
def sweep_deliveries() -> int:
    """Dispatch due ``pending`` deliveries and reset stale ``sending`` ones; returns how many were dispatched."""
    from alerts.services.deliveries import deliveries_sweep

    return deliveries_sweep(timezone.now())
