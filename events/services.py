"""Event writes: review/notes/flag/snooze updates, soft delete and restore (CONTRACT §2.5, §3.6, §6.8).

Every write locks the event row, bumps ``version`` (§0.7), writes its audit row in the same transaction,
invalidates the cached event totals and broadcasts after commit.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from hsi.api.counts import invalidate_counts
from hsi.api.errors import InvalidState, NotFound, VersionConflict
from hsi.realtime import broadcast
from system.models import AuditStatus
from system.services import Actor, audit_record, changes_between

from .models import Event
from .selectors import iso

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
