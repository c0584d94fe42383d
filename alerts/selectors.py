"""Reads of the alerts app: the JSON shapes of alerts (CONTRACT §2.7), shared by the API and WebSocket messages."""

from __future__ import annotations

from hsi.timeutils import utc_iso


def alert_json(alert) -> dict:
    """Alert JSON of CONTRACT §2.7 (without ``deliveries``): also the data of the ``alert.*`` WebSocket messages."""
    metadata = alert.metadata or {}
    return {
        "id": str(alert.id),
        "kind": alert.kind,
        "rule_id": str(alert.rule_id) if alert.rule_id else None,
        "rule_name": metadata.get("rule_name"),
        "event_id": alert.event_id,
        "camera_id": alert.camera_id,
        "severity": alert.severity,
        "status": alert.status,
        "dedup_key": alert.dedup_key,
        "channels": list(alert.channels or []),
        "metadata": metadata,
        "version": alert.version,
        "created_at": utc_iso(alert.created_at),
        "updated_at": utc_iso(alert.updated_at),
        "delivered_at": utc_iso(alert.delivered_at),
        "acknowledged_at": utc_iso(alert.acknowledged_at),
        "dismissed_at": utc_iso(alert.dismissed_at),
    }
