"""Event writes: creation from an analysis and reanalysis (CONTRACT §4.6, §2.5), review/notes/flag/snooze updates,
soft delete and restore (§2.5, §3.6, §6.8).

Every write locks the event row (or creates it), bumps ``version`` on change (§0.7), writes its audit row in the
same transaction, invalidates the cached event totals and broadcasts after commit.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from hsi.api.counts import invalidate_counts
from hsi.api.errors import InvalidState, NotFound, VersionConflict
from hsi.realtime import broadcast
from system.models import AuditStatus
from system.services import Actor, audit_record, changes_between

from .feedback import feedback_suppresses
from .models import Detection, Event, EventAudit, EventDetection
from .risk import risk_level_for
from .selectors import event_list_item, iso

if TYPE_CHECKING:  # the analysis result is plain data handed over by the pipeline; events never imports it at run time
    from pipeline.analyzers.base import AnalysisOutcome

EDITABLE_FIELDS = ("reviewed", "notes", "flagged", "snooze_until")


def _locked_event(event_id: int) -> Event:
    event = Event.objects.select_for_update().filter(pk=event_id).first()
    if event is None:
        raise NotFound(f"Event {event_id} not found")
    return event


def _saved_with_new_version(event: Event, fields: list[str]) -> None:
    event.version += 1
    event.save(update_fields=[*fields, "version", "updated_at"])
    invalidate_counts("events")


def event_update(event_id: int, *, changes: dict, actor: Actor, expected_version: int | None = None) -> Event:
    """Apply ``changes`` (a subset of reviewed, notes, flagged, snooze_until) to a live event.

    A change that leaves every value as it was is a no-op: no version bump, no audit row, no broadcast.
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not editable through event_update: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        event = _locked_event(event_id)
        if event.deleted_at is not None:
            raise InvalidState(f"Event {event_id} is deleted; restore it first")
        if expected_version is not None and expected_version != event.version:
            raise VersionConflict(event.version)
        changed = [field for field in EDITABLE_FIELDS if field in changes and getattr(event, field) != changes[field]]
        if not changed:
            return event
        before = {field: getattr(event, field) for field in (*changed, "reviewed_at")}
        for field in changed:
            setattr(event, field, changes[field])
        if "reviewed" in changed:
            event.reviewed_at = timezone.now() if event.reviewed else None
        _saved_with_new_version(event, [*changed, "reviewed_at"] if "reviewed" in changed else changed)
        _audit_update(event, before, changed, actor)
        broadcast("events", "event.updated", event_updated_message(event, changed))
    return event


def _audit_update(event: Event, before: dict, changed: list[str], actor: Actor) -> None:
    """``event_reviewed``/``event_unreviewed`` for the review flag, ``event_updated`` for everything else."""

    def record(action: str, fields: list[str]) -> None:
        after = {field: getattr(event, field) for field in fields}
        changes = changes_between({field: before[field] for field in fields}, after)
        audit_record(actor, action, "event", event.id, details={"changes": changes, "version": event.version})

    if "reviewed" in changed:
        record("event_reviewed" if event.reviewed else "event_unreviewed", ["reviewed", "reviewed_at"])
    others = [field for field in changed if field != "reviewed"]
    if others:
        record("event_updated", others)


def event_updated_message(event: Event, changed_fields: list[str]) -> dict:
    """The ``event.updated`` data of CONTRACT §3.6 (also used by reanalysis)."""
    return {
        "id": event.id,
        "camera_id": event.camera_id,
        "changed_fields": list(changed_fields),
        "reviewed": event.reviewed,
        "flagged": event.flagged,
        "notes": event.notes,
        "risk_score": event.risk_score,
        "risk_level": event.risk_level,
        "version": event.version,
    }


def _lifecycle_message(event: Event) -> dict:
    return {"id": event.id, "camera_id": event.camera_id, "deleted_at": iso(event.deleted_at), "version": event.version}


def event_soft_delete(event_id: int, *, actor: Actor) -> Event:
    """Move a live event to the trash (``deleted_at`` set, version + 1); 409 if it already is there."""
    return _set_deleted(event_id, actor=actor, delete=True)


def event_restore(event_id: int, *, actor: Actor) -> Event:
    """Bring an event back from the trash (``deleted_at`` cleared, version + 1); 409 if it is not deleted."""
    return _set_deleted(event_id, actor=actor, delete=False)


def _set_deleted(event_id: int, *, actor: Actor, delete: bool) -> Event:
    action = "event_deleted" if delete else "event_restored"
    with transaction.atomic():
        event = _locked_event(event_id)
        refusal = _lifecycle_refusal(event, delete)
        if refusal is not None:
            # A refused lifecycle action is audited as a failure (CONTRACT §6.8, §10) and changes nothing.
            audit_record(actor, action, "event", event.id, details={"reason": refusal}, status=AuditStatus.FAILURE)
        else:
            before = event.deleted_at
            event.deleted_at = timezone.now() if delete else None
            _saved_with_new_version(event, ["deleted_at"])
            audit_record(
                actor,
                action,
                "event",
                event.id,
                details={
                    "changes": changes_between({"deleted_at": before}, {"deleted_at": event.deleted_at}),
                    "version": event.version,
                },
            )
            broadcast("events", "event.deleted" if delete else "event.restored", _lifecycle_message(event))
    if refusal is not None:
        raise InvalidState(refusal)
    return event


def _lifecycle_refusal(event: Event, delete: bool) -> str | None:
    if delete and event.deleted_at is not None:
        return "Event is already deleted"
    if not delete and event.deleted_at is None:
        return "Event is not deleted"
    return None


# --- Events from analyses (CONTRACT §4.6 step 5, §2.5 reanalyze) ------------------------------------------------

SUMMARY_MAX, REASONING_MAX, ACTION_MAX = 1000, 4000, 500
RAW_RESPONSE_MAX = 65536
VERDICT_FIELDS = (
    "risk_score",
    "risk_level",
    "summary",
    "reasoning",
    "recommended_action",
    "analysis_status",
    "anomaly_score",
)


def _verdict_fields(outcome: AnalysisOutcome, anomaly_score: float | None) -> dict:
    """The event columns an analysis decides; the level is always derived from the clamped score (§4.7)."""
    verdict = outcome.verdict
    score = max(0, min(100, int(verdict.risk_score)))
    return {
        "risk_score": score,
        "risk_level": risk_level_for(score),
        "summary": (verdict.summary or "")[:SUMMARY_MAX],
        "reasoning": (verdict.reasoning or "")[:REASONING_MAX],
        "recommended_action": (verdict.recommended_action or "")[:ACTION_MAX],
        "analysis_status": outcome.analysis_status,
        "anomaly_score": anomaly_score,
    }


def _audit_fields(outcome: AnalysisOutcome) -> dict:
    """Every EventAudit column an analysis fills (CONTRACT §1.2); evaluation columns start over."""
    prompt = outcome.prompt or ""
    return {
        "backend": outcome.backend,
        "model": (outcome.model or "")[:200],
        "prompt": prompt,
        "prompt_chars": len(prompt),
        "prompt_token_estimate": math.ceil(len(prompt) / 4),
        "raw_response": (outcome.raw_response or "")[:RAW_RESPONSE_MAX],
        "parse_status": outcome.parse_status,
        "parse_error": outcome.parse_error or "",
        "llm_risk_score": outcome.llm_risk_score,
        "llm_risk_level": outcome.llm_risk_level[:20] if outcome.llm_risk_level else outcome.llm_risk_level,
        "rules_risk_score": outcome.rules_risk_score,
        "attempts": outcome.attempts,
        "latency_ms": outcome.latency_ms,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "fallback_reason": outcome.fallback_reason[:200] if outcome.fallback_reason else outcome.fallback_reason,
        "context_flags": dict(outcome.context_flags or {}),
        "context_usage_score": None,
        "reasoning_coherence_score": None,
        "risk_justification_score": None,
        "consistency_score": None,
        "overall_quality_score": None,
        "evaluation_status": "pending",
        "evaluation_critique": "",
        "evaluated_at": None,
    }


def object_types_text(detections: Sequence[Detection]) -> str:
    """Distinct lowercase classes, sorted, joined by ``,`` without spaces (``car,person``)."""
    return ",".join(sorted({d.object_type.lower() for d in detections}))[:500]


def event_create_from_analysis(
    *,
    camera_id: str,
    batch_id,
    detections: Sequence[Detection],
    outcome: AnalysisOutcome,
    anomaly_score: float | None,
    is_fast_path: bool,
    now: dt.datetime,
) -> Event:
    """Event + EventDetection rows + EventAudit for one analysed batch, in the caller's transaction.

    ``suppressed`` follows §5.6 (active matching feedback, not critical). After commit: ``event.created`` (the
    ``/api/events`` list item). Raises ``IntegrityError`` when the batch already
    has an event (the caller re-reads it).
    """
    if not detections:
        raise ValueError("an event needs at least one detection")
    fields = _verdict_fields(outcome, anomaly_score)
    object_types = object_types_text(detections)
    started_at = min(d.detected_at for d in detections)
    with transaction.atomic():
        event = Event.objects.create(
            camera_id=camera_id,
            batch_id=batch_id,
            started_at=started_at,
            ended_at=max(d.detected_at for d in detections),
            object_types=object_types,
            detection_count=len(detections),
            is_fast_path=is_fast_path,
            suppressed=feedback_suppresses(camera_id, object_types, started_at, fields["risk_level"], now=now),
            created_at=now,
            updated_at=now,
            **fields,
        )
        EventDetection.objects.bulk_create(
            [EventDetection(event=event, detection_id=d.id, created_at=now) for d in detections]
        )
        EventAudit.objects.create(event=event, created_at=now, **_audit_fields(outcome))
    invalidate_counts("events")
    broadcast("events", "event.created", event_list_item(event.id))
    return event


def event_reanalyzed(
    event_id: int, *, outcome: AnalysisOutcome, anomaly_score: float | None, now: dt.datetime | None = None
) -> Event | None:
    """Replace the verdict fields and the EventAudit of an event with a new analysis, bump ``version`` and
    broadcast ``event.updated`` (CONTRACT §2.5). Alerts are not re-evaluated. None when the event is gone or in
    the trash."""
    with transaction.atomic():
        event = Event.objects.select_for_update().filter(pk=event_id).first()
        if event is None or event.deleted_at is not None:
            return None
        fields = _verdict_fields(outcome, anomaly_score)
        changed = [name for name in VERDICT_FIELDS if getattr(event, name) != fields[name]]
        for name, value in fields.items():
            setattr(event, name, value)
        _saved_with_new_version(event, list(VERDICT_FIELDS))
        audit = {**_audit_fields(outcome), "created_at": now or timezone.now()}
        EventAudit.objects.update_or_create(event=event, defaults=audit)
        broadcast("events", "event.updated", event_updated_message(event, changed))
    return event


# --- Operator feedback (CONTRACT §2.5 feedback, §5.6) -----------------------------------------------------------


def event_feedback_create(event_id: int, *, data: dict, actor: Actor, now: dt.datetime | None = None):
    """Create or replace the feedback of an event; returns ``(feedback, created)``.

    ``suppress`` defaults to true for ``normal`` and ``false_positive``; with it, ``suppress_until`` is
    ``suppress_days`` (default ``FEEDBACK_SUPPRESSION_DAYS``) from now. The camera, object types and local time of
    day are copied from the event, so later events can be matched against it (§5.6).
    """
    from django.conf import settings

    from .feedback import local_minutes_of_day
    from .models import EventFeedback, FeedbackType

    now = now or timezone.now()
    feedback_type = data["feedback_type"]
    suppress = data.get("suppress")
    if suppress is None:
        suppress = feedback_type in (FeedbackType.NORMAL, FeedbackType.FALSE_POSITIVE)
    days = data.get("suppress_days") or settings.FEEDBACK_SUPPRESSION_DAYS
    values = {
        "feedback_type": feedback_type,
        "expected_severity": data.get("expected_severity"),
        "suggested_score": data.get("suggested_score"),
        "notes": data.get("notes") or "",
        "suppress": suppress,
        "suppress_until": now + dt.timedelta(days=days) if suppress else None,
    }
    with transaction.atomic():
        event = Event.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            raise NotFound(f"Event {event_id} not found")
        values |= {
            "camera_id": event.camera_id,
            "object_types": event.object_types,
            "time_of_day_minutes": local_minutes_of_day(event.started_at),
        }
        feedback = EventFeedback.objects.filter(event=event).first()
        created = feedback is None
        if created:
            feedback = EventFeedback.objects.create(event=event, created_at=now, updated_at=now, **values)
            changes = changes_between({}, {name: values[name] for name in values if name != "camera_id"})
        else:
            before = {name: getattr(feedback, name) for name in values}
            for name, value in values.items():
                setattr(feedback, name, value)
            feedback.created_at = now  # a replacement: its window runs from now (suppress_until = created_at + days)
            feedback.save()
            changes = changes_between(before, values)
        audit_record(
            actor,
            "event_feedback_set",
            "event",
            event.id,
            details={"feedback_type": feedback_type, "created": created, "changes": changes},
        )
    return feedback, created


def event_feedback_delete(event_id: int, *, actor: Actor) -> None:
    """Remove the feedback of an event (its suppression no longer applies to new events); 404 when none."""
    from .models import EventFeedback

    with transaction.atomic():
        if not Event.objects.filter(pk=event_id).exists():
            raise NotFound(f"Event {event_id} not found")
        feedback = EventFeedback.objects.select_for_update().filter(event_id=event_id).first()
        if feedback is None:
            raise NotFound(f"Event {event_id} has no feedback")
        feedback_type = feedback.feedback_type
        feedback.delete()
        audit_record(actor, "event_feedback_deleted", "event", event_id, details={"feedback_type": feedback_type})


# --- Entities (CONTRACT §2.9, §6.8) -----------------------------------------------------------------------------

ENTITY_EDITABLE_FIELDS = ("trust_status", "label", "notes")


def entity_update(entity_id, *, changes: dict, actor: Actor):
    """Apply ``changes`` (a subset of trust_status, label, notes) to an entity; writes ``entity_updated`` with
    ``details.changes`` when something changed. 404 when the entity is unknown. No WebSocket message exists for
    entities (§3.6)."""
    from .models import Entity

    unknown = set(changes) - set(ENTITY_EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not editable through entity_update: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        entity = Entity.objects.select_for_update().filter(pk=entity_id).first()
        if entity is None:
            raise NotFound(f"Entity {entity_id} not found")
        changed = [
            name for name in ENTITY_EDITABLE_FIELDS if name in changes and getattr(entity, name) != changes[name]
        ]
        if not changed:
            return entity
        before = {name: getattr(entity, name) for name in changed}
        for name in changed:
            setattr(entity, name, changes[name])
        entity.save(update_fields=[*changed, "updated_at"])
        details = {"changes": changes_between(before, {name: getattr(entity, name) for name in changed})}
        audit_record(actor, "entity_updated", "entity", entity.pk, details=details)
    return entity


def entity_delete(entity_id, *, actor: Actor) -> None:
    """Delete an entity; its detections stay, with ``entity_id`` null (§1.6). Writes ``entity_deleted``."""
    from .models import Entity

    with transaction.atomic():
        entity = Entity.objects.select_for_update().filter(pk=entity_id).first()
        if entity is None:
            raise NotFound(f"Entity {entity_id} not found")
        unlinked = Detection.objects.filter(entity_id=entity.pk).update(entity=None)
        details = {
            "entity_type": entity.entity_type,
            "label": entity.label,
            "trust_status": entity.trust_status,
            "detection_count": entity.detection_count,
            "detections_unlinked": unlinked,
        }
        Entity.objects.filter(pk=entity.pk)._raw_delete(Entity.objects.db)
        audit_record(actor, "entity_deleted", "entity", entity.pk, details=details)
        invalidate_counts("detections")  # totals of lists filtered by this entity (detections, events)
