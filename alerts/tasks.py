"""Celery tasks of the alert engine and the delivery outbox (CONTRACT §5). Thin: ids in, one service call."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone


@shared_task(name="alerts.evaluate_event")
def evaluate_event(event_id: int) -> list[str]:
    """Evaluate every enabled ``event`` rule against a new event (and hand it to MQTT channels that publish
    events); returns the ids of the alerts created."""
    from alerts.services.alerts import alerts_evaluate_event
    from alerts.services.mqtt_publishing import event_publication_dispatch

    try:
        alert_ids = alerts_evaluate_event(event_id)
    finally:  # the event's MQTT publication does not depend on the alert evaluation succeeding
        event_publication_dispatch(event_id)
    return [str(alert_id) for alert_id in alert_ids]


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


@shared_task(name="alerts.mqtt_publish_event")
def mqtt_publish_event(event_id: int) -> int:
    """MQTT ``<prefix>/events`` and ``risk_score`` of a new event on channels with ``publish_events`` (§5.9)."""
    from alerts.services.mqtt_publishing import mqtt_publish_event as publish

    return publish(event_id)


@shared_task(name="alerts.mqtt_camera_status")
def mqtt_camera_status(camera_id: str, status: str) -> int:
    """The retained MQTT camera status topic on every enabled MQTT channel (§5.9)."""
    from alerts.services.mqtt_publishing import mqtt_publish_camera_status

    return mqtt_publish_camera_status(camera_id, status)


@shared_task(name="alerts.mqtt_discovery")
def mqtt_discovery(removed_camera_id: str | None = None) -> int:
    """Refresh Home Assistant discovery configs (camera created/renamed), or clear a deleted camera's (§5.9)."""
    from alerts.services.mqtt_publishing import mqtt_publish_discovery, mqtt_remove_discovery

    return mqtt_remove_discovery(removed_camera_id) if removed_camera_id else mqtt_publish_discovery()
