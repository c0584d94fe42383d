"""Per-camera batching of detections (CONTRACT §4.5): the durable ``Batch`` rows, their close rules and the
fast path.

All state lives in PostgreSQL (a restart or a Redis flush loses nothing): at most one ``open`` batch per camera
(partial unique constraint), held under a row lock while detections are added. Closing a batch is a status change
in the caller's transaction; after commit ``detection.batch`` is broadcast and ``pipeline.analyze_batch``
dispatched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from functools import partial

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet

from cameras.models import Camera
from events.models import Detection
from hsi import dispatch
from hsi.realtime import send_now
from hsi.timeutils import utc_iso
from pipeline.models import Batch, BatchStatus, CloseReason

logger = logging.getLogger("hsi.pipeline.batching")

OPEN_ATTEMPTS = 5


# --- Pure rules -------------------------------------------------------------------------------------------------


def due_reason(opened_at: dt.datetime, last_detection_at: dt.datetime, now: dt.datetime) -> str | None:
    """``window`` or ``idle`` when an open batch must close at ``now`` (both checked with ``>=``), else None."""
    if (now - opened_at).total_seconds() >= settings.BATCH_WINDOW_SECONDS:
        return CloseReason.WINDOW
    if (now - last_detection_at).total_seconds() >= settings.BATCH_IDLE_TIMEOUT_SECONDS:
        return CloseReason.IDLE
    return None


def qualifies_for_fast_path(detections: Sequence[tuple[str, float]]) -> bool:
    """Whether a file's (class, confidence) pairs trigger the fast path (cooldown aside)."""
    if not settings.FAST_PATH_ENABLED:
        return False
    classes = {name.lower() for name in settings.FAST_PATH_OBJECT_TYPES}
    threshold = settings.FAST_PATH_CONFIDENCE_THRESHOLD
    return any(name.lower() in classes and confidence >= threshold for name, confidence in detections)


# --- Locking ----------------------------------------------------------------------------------------------------


def for_update(queryset: QuerySet, *, skip_locked: bool = False) -> QuerySet:
    """``SELECT … FOR UPDATE`` on PostgreSQL; SQLite serialises writers itself (CONTRACT §1.7)."""
    if connection.vendor == "postgresql":
        return queryset.select_for_update(skip_locked=skip_locked)
    return queryset


def camera_lock(camera_id: str) -> None:
    """Row-lock the camera until commit (the fast-path cooldown check); always before the camera's open batch."""
    list(for_update(Camera.objects.filter(pk=camera_id)).values_list("pk"))


# --- Adding detections ------------------------------------------------------------------------------------------


def batch_add_detections(camera_id: str, detections: Sequence[Detection], *, now: dt.datetime) -> list[Batch]:
    """Put the ``detections`` of one file into batches, in order, inside the caller's transaction.

    Returns the batches they went to (a fast-path batch, or the open batch and any opened after a
    ``max_size`` split). ``Detection.batch`` is set on the objects, and on the rows when they are saved already
    (the pipeline batches its detections just before inserting them, in the same transaction).
    """
    if not detections:
        return []
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("batch_add_detections must run inside the transaction that stored the detections")
    if _fast_path_open(camera_id, detections, now):
        return [_fast_path_batch(camera_id, detections, now)]
    touched: list[Batch] = []
    remaining = list(detections)
    while remaining:
        batch = _open_batch(camera_id, now)
        room = settings.BATCH_MAX_DETECTIONS - batch.detection_count
        if room <= 0:
            batch_close(batch, CloseReason.MAX_SIZE, now=now)
            continue
        chunk, remaining = remaining[:room], remaining[room:]
        _attach(batch, chunk, now)
        if batch.detection_count >= settings.BATCH_MAX_DETECTIONS:
            batch_close(batch, CloseReason.MAX_SIZE, now=now)
        touched.append(batch)
    return touched


def _fast_path_open(camera_id: str, detections: Sequence[Detection], now: dt.datetime) -> bool:
    """Fast path applies and the camera had no fast-path batch opened within the cooldown.

    The camera row is locked first, so two files racing for the fast path are serialised and the cooldown holds.
    """
    if not qualifies_for_fast_path([(d.object_type, d.confidence) for d in detections]):
        return False
    camera_lock(camera_id)
    since = now - dt.timedelta(seconds=settings.FAST_PATH_COOLDOWN_SECONDS)
    return not Batch.objects.filter(camera_id=camera_id, is_fast_path=True, opened_at__gt=since).exists()


def _fast_path_batch(camera_id: str, detections: Sequence[Detection], now: dt.datetime) -> Batch:
    """A batch with every detection of the file, closed at creation (``fast_path``); the open batch is untouched."""
    batch = Batch.objects.create(
        camera_id=camera_id,
        status=BatchStatus.CLOSED,
        is_fast_path=True,
        opened_at=now,
        last_detection_at=now,
        closed_at=now,
        close_reason=CloseReason.FAST_PATH,
        detection_count=0,
        created_at=now,
        updated_at=now,
    )
    _attach(batch, detections, now)
    _announce_after_commit(batch)
    return batch


def _open_batch(camera_id: str, now: dt.datetime) -> Batch:
    """The camera's open batch, locked; a due one is closed first and a new one opened.

    A concurrent opener makes the insert fail on the partial unique constraint: re-read and join its batch.
    """
    for _ in range(OPEN_ATTEMPTS):
        batch = for_update(Batch.objects.filter(camera_id=camera_id, status=BatchStatus.OPEN)).first()
        if batch is not None:
            reason = due_reason(batch.opened_at, batch.last_detection_at, now)
            if reason is None:
                return batch
            batch_close(batch, reason, now=now)
        try:
            with transaction.atomic():
                return Batch.objects.create(
                    camera_id=camera_id, opened_at=now, last_detection_at=now, created_at=now, updated_at=now
                )
        except IntegrityError:
            logger.debug("Concurrent open batch for %s; joining it", camera_id)
    raise RuntimeError(f"could not open a batch for camera {camera_id}")


def _attach(batch: Batch, detections: Sequence[Detection], now: dt.datetime) -> None:
    saved = [d.id for d in detections if d.id is not None]
    if saved:
        Detection.objects.filter(pk__in=saved).update(batch=batch)
    for detection in detections:
        detection.batch = batch
    Batch.objects.filter(pk=batch.pk).update(
        detection_count=F("detection_count") + len(detections), last_detection_at=now, updated_at=now
    )
    batch.detection_count += len(detections)
    batch.last_detection_at = batch.updated_at = now


# --- Closing ----------------------------------------------------------------------------------------------------


def batch_close(batch: Batch, reason: str, *, now: dt.datetime) -> None:
    """Close an open ``batch`` (locked by the caller) with ``reason``; announce and dispatch after commit."""
    Batch.objects.filter(pk=batch.pk).update(
        status=BatchStatus.CLOSED, closed_at=now, close_reason=reason, updated_at=now
    )
    batch.status, batch.closed_at, batch.close_reason, batch.updated_at = BatchStatus.CLOSED, now, reason, now
    _announce_after_commit(batch)


def batches_close_expired(*, now: dt.datetime) -> int:
    """Close every open batch that meets the window or idle condition at ``now``; returns how many closed.

    Rows another transaction holds are skipped (it is adding to them, and will close them itself if due).
    """
    window_start = now - dt.timedelta(seconds=settings.BATCH_WINDOW_SECONDS)
    idle_since = now - dt.timedelta(seconds=settings.BATCH_IDLE_TIMEOUT_SECONDS)
    due = Batch.objects.filter(status=BatchStatus.OPEN).filter(
        Q(opened_at__lte=window_start) | Q(last_detection_at__lte=idle_since)
    )
    closed = 0
    for batch_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            batch = for_update(Batch.objects.filter(pk=batch_id, status=BatchStatus.OPEN), skip_locked=True).first()
            reason = batch and due_reason(batch.opened_at, batch.last_detection_at, now)
            if reason:
                batch_close(batch, reason, now=now)
                closed += 1
    return closed


@dataclasses.dataclass(frozen=True)
class _Closed:
    batch_id: str
    camera_id: str
    reason: str


def _announce_after_commit(batch: Batch) -> None:
    closed = _Closed(str(batch.pk), batch.camera_id, batch.close_reason)
    transaction.on_commit(partial(_announce_closed, closed))


def _announce_closed(closed: _Closed) -> None:
    """After commit: ``detection.batch`` (read back from the database), the analysis dispatch."""
    row = (
        Batch.objects.filter(pk=closed.batch_id)
        .values("opened_at", "closed_at", "close_reason", "detection_count", "status")
        .first()
    )
    if row is not None:
        ids = list(Detection.objects.filter(batch_id=closed.batch_id).order_by("id").values_list("id", flat=True))
        send_now("events", "detection.batch", batch_closed_message(closed.batch_id, closed.camera_id, row, ids))
    dispatch.send("pipeline.analyze_batch", closed.batch_id)


def batch_closed_message(batch_id: str, camera_id: str, row: dict, detection_ids: list[int]) -> dict:
    """The ``detection.batch`` data of CONTRACT §3.6."""
    return {
        "batch_id": batch_id,
        "camera_id": camera_id,
        "detection_ids": detection_ids,
        "detection_count": len(detection_ids),
        "opened_at": utc_iso(row["opened_at"]),
        "closed_at": utc_iso(row["closed_at"]),
        "close_reason": row["close_reason"],
    }


close_expired_batches = batches_close_expired  # the name the periodic job carries (bench/pipeline.py uses it)
