"""Reads of the alerts app: the JSON shapes of alerts and rules (CONTRACT §2.7), shared by the API and WebSocket
messages; the facts rule evaluation reads; alert lists and stats."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.db.models import Count, QuerySet

from alerts.evaluation import DetectionFacts, EventFacts, ZoneFacts, evaluation_order
from alerts.models import Alert, AlertRule, AlertStatus, Delivery, NotificationChannel
from cameras.models import Zone
from events.models import Detection, Event, EventDetection, RiskLevel
from hsi.api.errors import NotFound
from hsi.api.pagination import PageRequest, envelope, offset_slice
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


# --- rules ------------------------------------------------------------------------------------------------------


def rule_json(rule) -> dict:
    """AlertRule JSON of CONTRACT §2.7: every field of §1.3."""
    return {
        "id": str(rule.id),
        "name": rule.name,
        "description": rule.description,
        "enabled": rule.enabled,
        "trigger": rule.trigger,
        "severity": rule.severity,
        "risk_threshold": rule.risk_threshold,
        "object_types": rule.object_types,
        "camera_ids": rule.camera_ids,
        "zone_ids": rule.zone_ids,
        "min_confidence": rule.min_confidence,
        "schedule": rule.schedule,
        "dedup_key_template": rule.dedup_key_template,
        "cooldown_seconds": rule.cooldown_seconds,
        "channels": rule.channels,
        "created_at": utc_iso(rule.created_at),
        "updated_at": utc_iso(rule.updated_at),
    }


def rule_list() -> QuerySet[AlertRule]:
    return AlertRule.objects.order_by("name", "id")


def rules_in_evaluation_order(trigger: str) -> list[AlertRule]:
    """Enabled rules of ``trigger`` in descending severity, then name, then id (CONTRACT §5.2)."""
    rules = AlertRule.objects.filter(enabled=True, trigger=trigger)
    return sorted(rules, key=evaluation_order)


# --- evaluation facts -------------------------------------------------------------------------------------------


def _detection_facts(detection: Detection) -> DetectionFacts:
    return DetectionFacts(
        id=detection.id,
        object_type=detection.object_type,
        confidence=detection.confidence,
        detected_at=detection.detected_at,
        bbox_x=detection.bbox_x,
        bbox_y=detection.bbox_y,
        bbox_width=detection.bbox_width,
        bbox_height=detection.bbox_height,
        image_width=detection.image_width,
        image_height=detection.image_height,
    )


_DETECTION_COLUMNS = (
    "id",
    "object_type",
    "confidence",
    "detected_at",
    "bbox_x",
    "bbox_y",
    "bbox_width",
    "bbox_height",
    "image_width",
    "image_height",
)


def enabled_zones_by_camera(camera_ids: Iterable[str]) -> dict[str, list[ZoneFacts]]:
    """The enabled zones of each camera, read now (deleted or disabled zones never match; §5.2)."""
    zones: dict[str, list[ZoneFacts]] = defaultdict(list)
    rows = Zone.objects.filter(camera_id__in=set(camera_ids), enabled=True).values_list(
        "id", "camera_id", "name", "coordinates"
    )
    for zone_id, camera_id, name, coordinates in rows:
        zones[camera_id].append(ZoneFacts(id=str(zone_id), name=name, coordinates=coordinates))
    return zones


def event_facts_for(events: Sequence[Event]) -> dict[int, EventFacts]:
    """``EventFacts`` of each event: two queries however many events (their detections, their cameras' zones)."""
    if not events:
        return {}
    detections: dict[int, list[DetectionFacts]] = defaultdict(list)
    links = (
        EventDetection.objects.filter(event_id__in=[event.id for event in events])
        .select_related("detection")
        .only("event_id", *(f"detection__{column}" for column in _DETECTION_COLUMNS))
    )
    for link in links:
        detections[link.event_id].append(_detection_facts(link.detection))
    zones = enabled_zones_by_camera(event.camera_id for event in events)
    return {
        event.id: EventFacts(
            id=event.id,
            camera_id=event.camera_id,
            risk_score=event.risk_score,
            started_at=event.started_at,
            detections=tuple(sorted(detections[event.id], key=lambda d: (d.detected_at, d.id))),
            zones=tuple(zones.get(event.camera_id, ())),
        )
        for event in events
    }


def event_facts(event: Event) -> EventFacts:
    return event_facts_for([event])[event.id]


def channel_ids_enabled() -> list[str]:
    """Ids of every enabled notification channel, now (a rule's ``channels: null``)."""
    return [
        str(channel_id) for channel_id in NotificationChannel.objects.filter(enabled=True).values_list("id", flat=True)
    ]


# --- alerts -----------------------------------------------------------------------------------------------------


def alert_list() -> QuerySet[Alert]:
    return Alert.objects.order_by("-created_at", "-id")


def alert_page(queryset: QuerySet[Alert], page: PageRequest) -> dict:
    rows, has_more = offset_slice(queryset.order_by("-created_at", "-id"), page)
    return envelope([alert_json(alert) for alert in rows], total=queryset.count(), page=page, has_more=has_more)


def delivery_item(delivery: Delivery) -> dict:
    return {
        "id": delivery.id,
        "channel_id": str(delivery.channel_id),
        "channel_name": delivery.channel.name,
        "kind": delivery.channel.kind,
        "status": delivery.status,
        "suppressed_reason": delivery.suppressed_reason,
        "attempts": delivery.attempts,
        "sent_at": utc_iso(delivery.sent_at),
        "last_error": delivery.last_error,
    }


def alert_detail(alert_id) -> dict:
    """Alert JSON plus its ``deliveries`` (CONTRACT §2.7); 404 when unknown."""
    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None:
        raise NotFound(f"Alert {alert_id} not found")
    deliveries = Delivery.objects.filter(alert_id=alert.id).select_related("channel").order_by("id")
    return {**alert_json(alert), "deliveries": [delivery_item(delivery) for delivery in deliveries]}


def alert_stats(now: dt.datetime) -> dict:
    by_status = {status: 0 for status in AlertStatus.values}
    for status, count in Alert.objects.values_list("status").annotate(count=Count("id")).order_by():
        by_status[status] = count
    by_severity = {severity: 0 for severity in RiskLevel.values}
    for severity, count in Alert.objects.values_list("severity").annotate(count=Count("id")).order_by():
        by_severity[severity] = count
    last_24h = Alert.objects.filter(created_at__gt=now - dt.timedelta(hours=24)).count()
    return {"by_status": by_status, "by_severity": by_severity, "last_24h": last_24h}
