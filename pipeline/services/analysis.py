"""``pipeline.analyze_batch`` and reanalysis (CONTRACT §4.6 steps 1, 2, 5, 6, 7; §2.5 reanalyze).

1. Claim the batch in a short transaction with its row locked: an existing event means ``done``; a fresh
   ``analyzing`` batch belongs to another worker; else ``analyzing`` and ``analysis_attempts`` + 1. The lock is not
   held during the analyzer call; a failed attempt gives the claim back (``closed``) so the retry can take it.
2. Context from the database (``pipeline.context``), then ``pipeline.analyzers.analyze`` (never raises for LLM
   trouble: it falls back to the rules verdict).
5. One transaction: Event, EventDetection rows, EventAudit, batch ``done``; a unique-constraint race on
   ``Event.batch`` means another worker won, and its event is returned.
6. After commit: ``event.created`` and ``alerts.evaluate_event`` (when registered).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from events.models import Detection, Event
from events.services import event_create_from_analysis, event_reanalyzed
from hsi import dispatch
from hsi.api.errors import InvalidState, NotFound
from pipeline.analyzers.base import AnalysisOutcome, BatchContext
from pipeline.context import batch_context, detections_context
from pipeline.models import Batch, BatchStatus
from pipeline.services.batching import for_update
from system.models import AuditStatus
from system.services import Actor, audit_record

logger = logging.getLogger("hsi.pipeline.analysis")

ALERTS_TASK = "alerts.evaluate_event"


def _analyze(ctx: BatchContext) -> AnalysisOutcome:
    from pipeline.analyzers import analyze

    return analyze(ctx)


def batch_analyze(batch_id, *, now: dt.datetime | None = None) -> Event | None:
    """Analyse one closed batch into its Event; None when there is nothing (more) to do.

    Raises for a failed attempt (database trouble, an unexpected error); the task retries or dead-letters it.
    """
    now = now or timezone.now()
    batch = _claim(batch_id, now)
    if batch is None:
        return None
    try:
        ctx = batch_context(batch, now=now)
        if ctx is None:
            logger.warning("Batch %s has no detections left; nothing to analyse", batch_id)
            _finish(batch_id, now, error="no detections")
            return None
        outcome = _analyze(ctx)
        return _store(batch, ctx, outcome, now)
    except Exception:
        _release(batch_id, now)
        raise


def _claim(batch_id, now: dt.datetime) -> Batch | None:
    with transaction.atomic():
        batch = for_update(Batch.objects.filter(pk=batch_id)).first()
        if batch is None:
            return None
        if Event.objects.filter(batch_id=batch.pk).exists():
            if batch.status != BatchStatus.DONE:
                Batch.objects.filter(pk=batch.pk).update(status=BatchStatus.DONE, updated_at=now)
            return None
        if batch.status not in (BatchStatus.CLOSED, BatchStatus.ANALYZING):
            return None  # still open (closing dispatches it), done, or failed (only a DLQ requeue reopens it)
        fresh = (now - batch.updated_at).total_seconds() < settings.ANALYSIS_STUCK_SECONDS
        if batch.status == BatchStatus.ANALYZING and fresh:
            return None  # another worker owns it
        Batch.objects.filter(pk=batch.pk).update(
            status=BatchStatus.ANALYZING, analysis_attempts=F("analysis_attempts") + 1, updated_at=now
        )
        batch.status = BatchStatus.ANALYZING
        batch.analysis_attempts += 1
        return batch


def _release(batch_id, now: dt.datetime) -> None:
    """Give a failed attempt's claim back, so the next attempt (a retry or a requeue) can take it."""
    try:
        Batch.objects.filter(pk=batch_id, status=BatchStatus.ANALYZING).update(
            status=BatchStatus.CLOSED, updated_at=now
        )
    except Exception:  # the database itself may be what failed; reconcile picks the batch up later
        logger.warning("Could not release batch %s", batch_id, exc_info=True)


def _finish(batch_id, now: dt.datetime, *, error: str = "") -> None:
    Batch.objects.filter(pk=batch_id).update(status=BatchStatus.DONE, error=error, updated_at=now)


def _store(batch: Batch, ctx: BatchContext, outcome: AnalysisOutcome, now: dt.datetime) -> Event | None:
    with transaction.atomic():
        locked = for_update(Batch.objects.filter(pk=batch.pk)).first()
        if locked is None:
            return None  # the camera was deleted meanwhile
        existing = Event.objects.filter(batch_id=batch.pk).first()
        if existing is not None:
            _finish(batch.pk, now)
            return existing
        detections = list(
            Detection.objects.filter(pk__in=[d.id for d in ctx.detections], event_link__isnull=True)
            .only("id", "detected_at", "object_type")  # what the event is made of; its links carry the rest
            .order_by("detected_at", "id")
        )
        if not detections:
            _finish(batch.pk, now, error="no detections")
            return None
        try:
            event = event_create_from_analysis(
                camera_id=batch.camera_id,
                batch_id=batch.pk,
                detections=detections,
                outcome=outcome,
                anomaly_score=ctx.anomaly_score,
                is_fast_path=batch.is_fast_path,
                now=now,
            )
        except IntegrityError:
            event = Event.objects.filter(batch_id=batch.pk).first()
            if event is None:
                raise
            _finish(batch.pk, now)
            return event
        _finish(batch.pk, now)
        _dispatch_alerts(event.id)
    return event


def _dispatch_alerts(event_id: int) -> None:
    """``alerts.evaluate_event(event_id)`` after commit, once the alert engine registers that task."""
    from hsi.celery import app

    if ALERTS_TASK in app.tasks:
        dispatch.enqueue(ALERTS_TASK, event_id)


# --- Reanalysis (CONTRACT §2.5) ---------------------------------------------------------------------------------


def event_reanalyze_request(event_id: int, *, actor: Actor) -> None:
    """Queue ``pipeline.reanalyze_event``: 404 for an unknown event, 409 for one in the trash (audited)."""
    with transaction.atomic():
        event = Event.objects.filter(pk=event_id).only("id", "deleted_at").first()
        if event is None:
            raise NotFound(f"Event {event_id} not found")
        if event.deleted_at is not None:
            audit_record(
                actor,
                "event_reanalyzed",
                "event",
                event_id,
                details={"reason": "Event is deleted"},
                status=AuditStatus.FAILURE,
            )
        else:
            audit_record(actor, "event_reanalyzed", "event", event_id, details={"status": "queued"})
            dispatch.enqueue("pipeline.reanalyze_event", event_id)
    if event.deleted_at is not None:
        raise InvalidState(f"Event {event_id} is deleted; restore it first")


def event_reanalyze(event_id: int, *, now: dt.datetime | None = None) -> Event | None:
    """Run §4.6 again on the event's detections and replace its verdict and audit; None when it is gone."""
    now = now or timezone.now()
    event = Event.objects.filter(pk=event_id, deleted_at__isnull=True).first()
    if event is None:
        return None
    detections = list(Detection.objects.filter(event_link__event_id=event_id).defer("embedding"))
    ctx = detections_context(
        event.camera_id,
        detections,
        now=now,
        batch_id=str(event.batch_id) if event.batch_id else None,
        is_fast_path=event.is_fast_path,
        exclude_event_id=event.id,
    )
    if ctx is None:
        return None
    outcome = _analyze(ctx)
    return event_reanalyzed(event_id, outcome=outcome, anomaly_score=ctx.anomaly_score, now=now)
