"""Notification settings writes (CONTRACT §2.8, §6.8): channels and their test send, the global preference and
camera overrides, quiet hours, and the manual retry of a failed delivery.

Every write runs in one transaction with its audit row. A write that changes nothing is a no-op (no audit row,
``updated_at`` kept). Secrets never reach an audit row: channel configs are recorded redacted and the channel
secret as ``***``. The test send runs outside any transaction (it waits on the network).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from alerts.channel_config import REDACTED, redact_config, restore_redacted, validate_channel_config
from alerts.models import (
    AlertRule,
    ChannelKind,
    Delivery,
    DeliveryStatus,
    NotificationChannel,
    NotificationPreference,
    QuietHours,
    all_weekdays,
)
from alerts.resilience import NOTIFICATION_QUEUE
from cameras.models import Camera
from hsi import dead_letter
from hsi.api.errors import Conflict, FieldValidationError, InvalidState, NotFound
from hsi.dispatch import enqueue
from system.models import AuditStatus
from system.services import Actor, audit_record, changes_between

logger = logging.getLogger("hsi.alerts")

CHANNEL_FIELDS = ("name", "enabled", "config", "secret", "min_severity", "publish_events")
PREFERENCE_FIELDS = ("enabled", "severities", "min_risk_score", "sound")
CAMERA_PREFERENCE_FIELDS = ("enabled", "severities", "min_risk_score")
QUIET_HOURS_FIELDS = ("label", "camera_id", "start_time", "end_time", "days", "allow_critical", "enabled")
GLOBAL_SEVERITIES = ("medium", "high", "critical")
TIMES_EQUAL = "start_time must differ from end_time"


# --- channels --------------------------------------------------------------------------------------------------


def _channel_audit_fields(channel: NotificationChannel) -> dict:
    return {
        "name": channel.name,
        "kind": channel.kind,
        "enabled": channel.enabled,
        "config": redact_config(channel.config),
        "has_secret": bool(channel.secret),
        "min_severity": channel.min_severity,
        "publish_events": channel.publish_events,
    }


def _name_taken(name: str, exclude_id=None) -> NotificationChannel | None:
    queryset = NotificationChannel.objects.filter(name=name)
    if exclude_id is not None:
        queryset = queryset.exclude(pk=exclude_id)
    return queryset.first()


def _duplicate_name(name: str, existing_id) -> Conflict:
    return Conflict(f"A notification channel named {name!r} already exists", existing_id=str(existing_id))


def _audit_refusal(actor: Actor, action: str, resource_id, conflict: Conflict) -> None:
    details = {"reason": str(conflict.detail), "existing_id": conflict.extensions.get("existing_id")}
    audit_record(actor, action, "notification_channel", resource_id, details=details, status=AuditStatus.FAILURE)


def channel_create(*, data: dict, actor: Actor) -> NotificationChannel:
    """Create a channel from a validated body; ``config`` is checked for its kind (422) and the name is unique
    (409 ``conflict`` with ``existing_id``)."""
    config = validate_channel_config(data["kind"], data["config"], creating=True)
    try:
        with transaction.atomic():
            existing = _name_taken(data["name"])
            if existing is not None:
                raise _duplicate_name(data["name"], existing.id)
            channel = _insert_channel(data, config)
            audit_record(
                actor, "channel_created", "notification_channel", channel.id,
                details={"channel": _channel_audit_fields(channel)},
            )  # fmt: skip
    except Conflict as conflict:
        _audit_refusal(actor, "channel_created", None, conflict)
        raise
    return channel


def _insert_channel(data: dict, config: dict) -> NotificationChannel:
    try:
        with transaction.atomic():
            return NotificationChannel.objects.create(
                name=data["name"],
                kind=data["kind"],
                config=config,
                secret=data.get("secret") or "",
                enabled=data.get("enabled", True),
                min_severity=data.get("min_severity", "low"),
                publish_events=data.get("publish_events", False),
            )
    except IntegrityError:  # a concurrent create took the name between the check and the insert
        existing = _name_taken(data["name"])
        if existing is None:
            raise
        raise _duplicate_name(data["name"], existing.id) from None


def channel_update(channel_id, *, data: dict, actor: Actor) -> NotificationChannel:
    """Apply the fields present in ``data``. ``kind`` is immutable (422 when it differs); a ``config`` replaces the
    stored one after validation for the channel's kind, keeping any ``***`` the client echoed back; ``secret``
    ``""`` (or null) removes the secret. A new name taken by another channel is 409 ``conflict``."""
    try:
        with transaction.atomic():
            channel = NotificationChannel.objects.select_for_update().filter(pk=channel_id).first()
            if channel is None:
                raise NotFound(f"Notification channel {channel_id} not found")
            if "kind" in data and data["kind"] != channel.kind:
                raise FieldValidationError({"kind": f"The kind of a channel cannot be changed (it is {channel.kind})"})
            requested = {field: data[field] for field in CHANNEL_FIELDS if field in data}
            if "config" in requested:
                incoming = restore_redacted(requested["config"], channel.config)
                requested["config"] = validate_channel_config(channel.kind, incoming, creating=False)
            changed = [field for field in requested if getattr(channel, field) != requested[field]]
            if not changed:
                return channel
            if "name" in changed:
                existing = _name_taken(requested["name"], exclude_id=channel.id)
                if existing is not None:
                    raise _duplicate_name(requested["name"], existing.id)
            before = _channel_audit_fields(channel)
            for field in changed:
                setattr(channel, field, requested[field])
            _save_channel(channel, changed)
            changes = changes_between(before, _channel_audit_fields(channel))
            if "secret" in changed:
                changes["secret"] = {"old": REDACTED, "new": REDACTED}
            audit_record(actor, "channel_updated", "notification_channel", channel.id, details={"changes": changes})
            _drop_announcements_after_commit(channel)
    except Conflict as conflict:
        _audit_refusal(actor, "channel_updated", channel_id, conflict)
        raise
    return channel


def _save_channel(channel: NotificationChannel, fields: list[str]) -> None:
    try:
        with transaction.atomic():
            channel.save(update_fields=fields)
    except IntegrityError:
        existing = _name_taken(channel.name, exclude_id=channel.id)
        if existing is None:
            raise
        raise _duplicate_name(channel.name, existing.id) from None


def channel_delete(channel_id, *, actor: Actor) -> None:
    """Delete a channel and its deliveries, and drop its id from the rules that name it."""
    with transaction.atomic():
        channel = NotificationChannel.objects.select_for_update().filter(pk=channel_id).first()
        if channel is None:
            raise NotFound(f"Notification channel {channel_id} not found")
        fields = _channel_audit_fields(channel)
        rule_ids = _forget_channel_in_rules(str(channel.id))
        _drop_announcements_after_commit(channel)
        channel.delete()
        audit_record(
            actor,
            "channel_deleted",
            "notification_channel",
            channel_id,
            details={"channel": fields, "rules_updated": rule_ids},
        )


def _drop_announcements_after_commit(channel: NotificationChannel) -> None:
    """After commit, forget what an MQTT channel announces on each (re)connect (Home Assistant discovery): the
    channel was deleted, disabled or reconfigured, and the next publish registers what it should announce now."""
    if channel.kind != ChannelKind.MQTT:
        return
    channel_id = channel.id

    def drop() -> None:
        from alerts.services.mqtt_publishing import channel_announcements_drop  # looked up at call time

        channel_announcements_drop(channel_id)

    transaction.on_commit(drop, robust=True)


def _forget_channel_in_rules(channel_id: str) -> list[str]:
    """Drop a deleted channel's id from every rule's explicit ``channels`` list (rule validation only accepts
    existing channels, §5.1); an emptied list stays ``[]`` (no channel), never null (every channel)."""
    updated = []
    for rule in AlertRule.objects.select_for_update().filter(channels__isnull=False).only("id", "channels"):
        if isinstance(rule.channels, list) and channel_id in rule.channels:
            rule.channels = [item for item in rule.channels if item != channel_id]
            rule.save(update_fields=["channels"])
            updated.append(str(rule.id))
    return updated


def channel_test(channel_id, *, actor: Actor) -> dict:
    """Send the synthetic ``test`` payload now, with the channel's own timeout, even when the channel is disabled.

    No Delivery row is created and the channel's health fields are left alone; a failure is reported in the
    result. Writes ``notification_test`` with status success or failure.
    """
    from alerts.payloads import test_payload
    from alerts.transports import SendResult, transport_for

    channel = NotificationChannel.objects.filter(pk=channel_id).first()
    if channel is None:
        raise NotFound(f"Notification channel {channel_id} not found")
    started = time.monotonic()
    try:
        result = transport_for(channel.kind).send(channel, test_payload(), event_type="test", delivery_id="test")
    except Exception as error:  # a transport bug must still give the operator an answer, not a 500
        logger.exception("Test send over channel %s failed unexpectedly", channel.id)
        result = SendResult(
            success=False, error=f"{type(error).__name__}: {error}", latency_ms=(time.monotonic() - started) * 1000
        )
    body = {
        "channel_id": str(channel.id),
        "kind": channel.kind,
        "success": result.success,
        "status_code": result.status_code,
        "latency_ms": round(result.latency_ms, 1),
        "message": result.message or ("Test notification sent" if result.success else "Test notification failed"),
        "error": result.error or None,
    }
    audit_record(
        actor,
        "notification_test",
        "notification_channel",
        channel.id,
        details={k: body[k] for k in ("kind", "success", "status_code", "error")},
        status=AuditStatus.SUCCESS if result.success else AuditStatus.FAILURE,
    )
    return body


# --- preferences -----------------------------------------------------------------------------------------------


def preferences_global() -> NotificationPreference:
    """The global preference row, recreated with the §1.3 defaults when it is missing."""
    preference = NotificationPreference.objects.filter(camera__isnull=True).first()
    if preference is not None:
        return preference
    try:
        with transaction.atomic():
            return NotificationPreference.objects.create(
                camera=None, enabled=True, severities=list(GLOBAL_SEVERITIES), min_risk_score=0
            )
    except IntegrityError:  # recreated concurrently
        return NotificationPreference.objects.get(camera__isnull=True)


def preferences_update(*, data: dict, actor: Actor) -> NotificationPreference:
    preferences_global()
    with transaction.atomic():
        preference = NotificationPreference.objects.select_for_update().get(camera__isnull=True)
        changes = _apply(preference, data, PREFERENCE_FIELDS)
        if changes:
            audit_record(
                actor, "preferences_updated", "notification_preference", "global", details={"changes": changes}
            )
    return preference


def camera_preference_get(camera_id: str) -> NotificationPreference:
    if not Camera.objects.filter(pk=camera_id).exists():
        raise NotFound(f"Camera {camera_id} not found")
    preference = NotificationPreference.objects.filter(camera_id=camera_id).first()
    if preference is None:
        raise NotFound(f"Camera {camera_id} has no notification override")
    return preference


def camera_preference_set(camera_id: str, *, data: dict, actor: Actor) -> tuple[NotificationPreference, bool]:
    """Create or update the override of ``camera_id``; returns (row, created). 404 for an unknown camera."""
    with transaction.atomic():
        camera = Camera.objects.select_for_update().filter(pk=camera_id).first()
        if camera is None:
            raise NotFound(f"Camera {camera_id} not found")
        preference = NotificationPreference.objects.select_for_update().filter(camera=camera).first()
        if preference is None:
            preference = NotificationPreference.objects.create(
                camera=camera,
                enabled=data.get("enabled", True),
                severities=data.get("severities"),
                min_risk_score=data.get("min_risk_score"),
            )
            fields = {field: getattr(preference, field) for field in CAMERA_PREFERENCE_FIELDS}
            audit_record(
                actor,
                "preferences_updated",
                "notification_preference",
                camera.id,
                details={"camera_id": camera.id, "created": True, "changes": changes_between({}, fields)},
            )
            return preference, True
        changes = _apply(preference, data, CAMERA_PREFERENCE_FIELDS)
        if changes:
            audit_record(
                actor,
                "preferences_updated",
                "notification_preference",
                camera.id,
                details={"camera_id": camera.id, "changes": changes},
            )
    return preference, False


def camera_preference_delete(camera_id: str, *, actor: Actor) -> None:
    with transaction.atomic():
        preference = camera_preference_get(camera_id)
        before = {field: getattr(preference, field) for field in CAMERA_PREFERENCE_FIELDS}
        preference.delete()
        audit_record(
            actor,
            "preferences_updated",
            "notification_preference",
            camera_id,
            details={"camera_id": camera_id, "deleted": True, "previous": changes_between({}, before)},
        )


def _apply(preference: NotificationPreference, data: dict, fields: tuple[str, ...]) -> dict:
    requested = {field: data[field] for field in fields if field in data}
    changes = changes_between({field: getattr(preference, field) for field in requested}, requested)
    if changes:
        for field in changes:
            setattr(preference, field, requested[field])
        preference.updated_at = timezone.now()
        preference.save(update_fields=[*changes, "updated_at"])
    return changes


# --- quiet hours -----------------------------------------------------------------------------------------------


def _check_quiet_hours(values: dict) -> None:
    camera_id = values.get("camera_id")
    if camera_id is not None and not Camera.objects.filter(pk=camera_id).exists():
        raise FieldValidationError({"camera_id": f"Unknown camera {camera_id}"})
    if values["start_time"] == values["end_time"]:
        raise FieldValidationError({"start_time": TIMES_EQUAL}, detail=TIMES_EQUAL)


def quiet_hours_create(*, data: dict, actor: Actor) -> QuietHours:
    values = {
        "label": data.get("label", ""),
        "camera_id": data.get("camera_id"),
        "start_time": data["start_time"],
        "end_time": data["end_time"],
        "days": data.get("days") or all_weekdays(),
        "allow_critical": data.get("allow_critical", True),
        "enabled": data.get("enabled", True),
    }
    _check_quiet_hours(values)
    with transaction.atomic():
        period = QuietHours.objects.create(**values)
        audit_record(
            actor, "quiet_hours_created", "quiet_hours", period.id, details={"quiet_hours": changes_between({}, values)}
        )
    return period


def quiet_hours_update(period_id, *, data: dict, actor: Actor) -> QuietHours:
    with transaction.atomic():
        period = QuietHours.objects.select_for_update().filter(pk=period_id).first()
        if period is None:
            raise NotFound(f"Quiet hours {period_id} not found")
        requested = {field: data[field] for field in QUIET_HOURS_FIELDS if field in data}
        current = {field: getattr(period, field) for field in QUIET_HOURS_FIELDS}
        _check_quiet_hours({**current, **requested})
        changes = changes_between({field: current[field] for field in requested}, requested)
        if not changes:
            return period
        for field in changes:
            setattr(period, field, requested[field])
        period.save(update_fields=list(changes))
        audit_record(actor, "quiet_hours_updated", "quiet_hours", period.id, details={"changes": changes})
    return period


def quiet_hours_delete(period_id, *, actor: Actor) -> None:
    with transaction.atomic():
        period = QuietHours.objects.select_for_update().filter(pk=period_id).first()
        if period is None:
            raise NotFound(f"Quiet hours {period_id} not found")
        fields = changes_between({}, {field: getattr(period, field) for field in QUIET_HOURS_FIELDS})
        period.delete()
        audit_record(actor, "quiet_hours_deleted", "quiet_hours", period_id, details={"quiet_hours": fields})


# --- deliveries ------------------------------------------------------------------------------------------------


def delivery_retry(delivery_id: int, *, actor: Actor) -> Delivery:
    """Put a ``failed`` delivery back in the outbox (pending, attempts 0, due now), remove its dead letter (a later
    DLQ requeue must not send it a second time) and dispatch it after commit; 409 ``invalid_state`` for any other
    status (audited as a failure)."""
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().filter(pk=delivery_id).first()
        if delivery is None:
            raise NotFound(f"Delivery {delivery_id} not found")
        refused = delivery.status != DeliveryStatus.FAILED
        if not refused:
            previous: dict[str, Any] = {"status": delivery.status, "attempts": delivery.attempts}
            delivery.status = DeliveryStatus.PENDING
            delivery.attempts = 0
            delivery.next_attempt_at = None
            delivery.save(update_fields=["status", "attempts", "next_attempt_at"])
            dead_letter.resolve(NOTIFICATION_QUEUE, {"delivery_id": delivery.id})
            audit_record(actor, "delivery_retried", "delivery", delivery.id, details={"previous": previous})
            enqueue("alerts.deliver", delivery.id)
    if refused:
        detail = f"Delivery cannot be retried. Current status: {delivery.status}"
        audit_record(
            actor, "delivery_retried", "delivery", delivery_id, details={"reason": detail}, status=AuditStatus.FAILURE
        )
        raise InvalidState(detail)
    return delivery
