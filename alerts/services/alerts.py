"""Alert creation and lifecycle (CONTRACT §5.2–5.6, §5.10).

- ``alerts_evaluate_event``: every enabled ``event`` rule against one new event (the ``alerts.evaluate_event`` task).
- ``alerts_evaluate_camera_offline``: ``camera_offline`` rules when a camera goes offline or into error (§5.5),
  driven by ``cameras.services.camera_status_changed`` (sent after the status change committed).
- ``alert_acknowledge`` / ``alert_dismiss``: the lifecycle of §5.10 with optimistic versions (§0.7).

Each alert is created in its own transaction holding ``SELECT … FOR UPDATE`` on its rule row, so the cooldown
check and the insert cannot interleave with another evaluation of the same rule. The alert's Delivery rows of the
outbox (``deliveries_create_for_alert``) are written in that same transaction. After commit: ``alert.created``
and the dispatch of the pending deliveries. A rule that fails (in its
evaluation or its insert, which is rolled back alone) is logged at ERROR as ``evaluation_error``; the others continue.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from django.db import transaction
from django.utils import timezone

from alerts import selectors
from alerts.evaluation import (
    EVALUATION_ERROR,
    IN_COOLDOWN,
    NOT_MATCHED,
    SUPPRESSED_BY_FEEDBACK,
    RuleMatch,
    dedup_key,
    evaluate_event_rule,
    evaluate_offline_rule,
)
from alerts.models import Alert, AlertKind, AlertRule, AlertStatus, RuleTrigger
from alerts.selectors import alert_json
from cameras.models import CameraStatus
from events.models import Event
from hsi.api.counts import invalidate_counts
from hsi.api.errors import InvalidState, NotFound, VersionConflict
from hsi.realtime import broadcast
from system.models import AuditStatus
from system.services import Actor, audit_record, changes_between

logger = logging.getLogger("hsi.alerts")

ALREADY_ALERTED = "already_alerted"
OFFLINE_STATUSES = (CameraStatus.OFFLINE, CameraStatus.ERROR)


def resolved_channels(rule: AlertRule) -> list[str]:
    """The rule's channel ids: null → every enabled channel now; ``[]`` → none."""
    if rule.channels is None:
        return selectors.channel_ids_enabled()
    return [str(channel_id) for channel_id in rule.channels]


def _skip(rule: AlertRule, subject: str, reason: str) -> None:
    logger.debug("Rule %s (%s) skipped for %s: %s", rule.id, rule.name, subject, reason)


# --- event rules (§5.2–5.4) -------------------------------------------------------------------------------------


def alerts_evaluate_event(event_id: int) -> list[uuid.UUID]:
    """Evaluate every enabled ``event`` rule against event ``event_id``; returns the ids of the alerts created.

    A missing event creates nothing; a suppressed event (§5.6) skips every rule. Running it again for the same
    event creates no second alert for a rule that already alerted on it.
    """
    event = Event.objects.filter(pk=event_id).first()
    if event is None:
        logger.info("Alert evaluation: event %s no longer exists", event_id)
        return []
    rules = selectors.rules_in_evaluation_order(RuleTrigger.EVENT)
    if not rules:
        return []
    subject = f"event {event.id}"
    if event.suppressed:
        for rule in rules:
            _skip(rule, subject, SUPPRESSED_BY_FEEDBACK)
        return []
    facts = selectors.event_facts(event)
    created = []
    for rule in rules:
        try:  # one rule failing, in its evaluation or its insert (rolled back alone), never stops the others
            match = evaluate_event_rule(rule, facts)
            if not match.matches:
                _skip(rule, subject, NOT_MATCHED)
                continue
            alert = _create_alert(rule, match, kind=AlertKind.EVENT, camera_id=event.camera_id, event=event)
        except Exception:
            logger.exception("Rule %s (%s) skipped for %s: %s", rule.id, rule.name, subject, EVALUATION_ERROR)
            continue
        if alert is not None:
            created.append(alert.id)
    return created


# --- camera_offline rules (§5.5) --------------------------------------------------------------------------------


def on_camera_status_changed(sender, *, camera_id: str, status: str, reason: str, changed_at=None, **kwargs) -> None:
    """Receiver of ``camera_status_changed`` (sent after the change committed): offline/error fires rules."""
    if status in OFFLINE_STATUSES:
        alerts_evaluate_camera_offline(camera_id, reason=reason, changed_at=changed_at or timezone.now())


def alerts_evaluate_camera_offline(camera_id: str, *, reason: str, changed_at: dt.datetime) -> list[uuid.UUID]:
    """Evaluate every enabled ``camera_offline`` rule for a camera that went offline (or into error) at
    ``changed_at``; returns the ids of the alerts created."""
    created = []
    subject = f"camera {camera_id} offline"
    for rule in selectors.rules_in_evaluation_order(RuleTrigger.CAMERA_OFFLINE):
        try:
            match = evaluate_offline_rule(rule, camera_id, changed_at)
            if not match.matches:
                _skip(rule, subject, NOT_MATCHED)
                continue
            alert = _create_alert(
                rule, match, kind=AlertKind.CAMERA_OFFLINE, camera_id=camera_id, event=None, extra={"reason": reason}
            )
        except Exception:
            logger.exception("Rule %s (%s) skipped for %s: %s", rule.id, rule.name, subject, EVALUATION_ERROR)
            continue
        if alert is not None:
            created.append(alert.id)
    return created


# --- creation with dedup and cooldown (§5.4) --------------------------------------------------------------------


def _create_alert(
    rule: AlertRule,
    match: RuleMatch,
    *,
    kind: str,
    camera_id: str,
    event: Event | None,
    extra: dict | None = None,
) -> Alert | None:
    subject = f"event {event.id}" if event is not None else f"camera {camera_id}"
    key = dedup_key(
        rule.dedup_key_template,
        camera_id=camera_id,
        rule_id=rule.id,
        object_type=match.object_type,
        severity=rule.severity,
    )
    with transaction.atomic():
        locked = AlertRule.objects.select_for_update().filter(pk=rule.pk).first()
        if locked is None:  # deleted meanwhile
            return None
        if event is not None and Alert.objects.filter(event=event, rule=locked).exists():
            _skip(locked, subject, ALREADY_ALERTED)
            return None
        now = timezone.now()
        if _in_cooldown(locked, key, now):
            _skip(locked, subject, IN_COOLDOWN)
            return None
        metadata = {
            "rule_name": locked.name,
            "matched_conditions": list(match.matched_conditions),
            "object_type": match.object_type,
            "matched_zone_ids": list(match.matched_zone_ids),
            **(extra or {}),
        }
        alert = Alert.objects.create(
            kind=kind,
            rule=locked,
            event=event,
            camera_id=camera_id,
            severity=locked.severity,
            status=AlertStatus.PENDING,
            dedup_key=key,
            channels=resolved_channels(locked),
            metadata=metadata,
            created_at=now,
            updated_at=now,
        )
        _after_creation(alert)
    logger.info("Alert %s created by rule %s (%s) for %s", alert.id, locked.id, locked.name, subject)
    return alert


def _in_cooldown(rule: AlertRule, key: str, now: dt.datetime) -> bool:
    """An alert of this rule and key created less than ``cooldown_seconds`` ago blocks; exactly that long ago and
    a cooldown of 0 never do."""
    if rule.cooldown_seconds <= 0:
        return False
    since = now - dt.timedelta(seconds=rule.cooldown_seconds)
    return Alert.objects.filter(rule=rule, dedup_key=key, created_at__gt=since).exists()


def _after_creation(alert: Alert) -> None:
    """In the alert's transaction: its Delivery rows (§5.7), so a crash right after the commit loses no
    notification (their dispatch to ``alerts.deliver`` waits for the commit); after commit: the broadcast."""
    from alerts.services import deliveries  # the outbox; looked up at call time

    deliveries.deliveries_create_for_alert(alert.id)
    invalidate_counts("alerts")  # cached totals of the alert scope (hsi.api.counts)
    broadcast("events", "alert.created", alert_json(alert))


# --- lifecycle (§5.10) ------------------------------------------------------------------------------------------

NOTE_MAX_LENGTH = 1000


def alert_acknowledge(alert_id, *, actor: Actor, note: str | None = None, expected_version: int | None = None) -> Alert:
    """pending/delivered → acknowledged; anything else is 409 ``invalid_state`` (audited as a failure)."""
    return _transition(
        alert_id,
        actor=actor,
        note=note,
        expected_version=expected_version,
        action="alert_acknowledged",
        allowed=(AlertStatus.PENDING, AlertStatus.DELIVERED),
        refusal="Alert cannot be acknowledged. Current status: {status}",
        new_status=AlertStatus.ACKNOWLEDGED,
        timestamp_field="acknowledged_at",
        note_key="ack_note",
        message_type="alert.acknowledged",
    )


def alert_dismiss(alert_id, *, actor: Actor, note: str | None = None, expected_version: int | None = None) -> Alert:
    """Any state but dismissed → dismissed; an already dismissed alert is 409 ``invalid_state``."""
    return _transition(
        alert_id,
        actor=actor,
        note=note,
        expected_version=expected_version,
        action="alert_dismissed",
        allowed=(AlertStatus.PENDING, AlertStatus.DELIVERED, AlertStatus.ACKNOWLEDGED),
        refusal="Alert cannot be dismissed. Current status: {status}",
        new_status=AlertStatus.DISMISSED,
        timestamp_field="dismissed_at",
        note_key="dismiss_note",
        message_type="alert.dismissed",
    )


def _transition(
    alert_id,
    *,
    actor: Actor,
    note: str | None,
    expected_version: int | None,
    action: str,
    allowed: tuple[str, ...],
    refusal: str,
    new_status: str,
    timestamp_field: str,
    note_key: str,
    message_type: str,
) -> Alert:
    error = None
    with transaction.atomic():
        alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
        if alert is None:
            raise NotFound(f"Alert {alert_id} not found")
        if alert.status not in allowed:
            error = InvalidState(refusal.format(status=alert.status))
        elif expected_version is not None and expected_version != alert.version:
            error = VersionConflict(alert.version)
        if error is not None:
            # A refused lifecycle action is audited as a failure (CONTRACT §6.8, §10) and changes nothing.
            details = {"reason": str(error.detail), "status": alert.status, "version": alert.version}
            audit_record(actor, action, "alert", alert.id, details=details, status=AuditStatus.FAILURE)
        else:
            before = {"status": alert.status, timestamp_field: getattr(alert, timestamp_field)}
            alert.status = new_status
            setattr(alert, timestamp_field, timezone.now())
            metadata = dict(alert.metadata or {})
            if note is not None:
                metadata[note_key] = note
            alert.metadata = metadata
            alert.version += 1
            alert.save(update_fields=["status", timestamp_field, "metadata", "version", "updated_at"])
            after = {"status": alert.status, timestamp_field: getattr(alert, timestamp_field)}
            details = {"changes": changes_between(before, after), "note": note, "version": alert.version}
            audit_record(actor, action, "alert", alert.id, details=details)
            invalidate_counts("alerts")
            broadcast("events", message_type, alert_json(alert))
    if error is not None:
        raise error
    return alert
