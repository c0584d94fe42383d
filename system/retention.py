"""Retention (CONTRACT §4.13, §2.11 ``POST /api/system/cleanup``): delete what is older than its retention period.

``retention_run(now=...)`` deletes, in batches of ``batch_size`` (1000) rows chosen by primary key, each batch in
its own short transaction:

1. soft-deleted events whose ``deleted_at`` is older than ``TRASH_RETENTION_DAYS`` (``trashed_events_purged``);
2. events whose ``started_at`` is older than ``RETENTION_DAYS`` (``events_deleted``), with what they cascade to
   (§1.6: event-detection links, analysis audit, feedback, alerts and their deliveries);
3. detections older than ``RETENTION_DAYS`` with their thumbnails (and, with ``RETENTION_DELETE_MEDIA``, their
   source files inside ``FOSCAM_BASE_PATH``);
4. batches that are not open or analyzing, and ingested files (same media rule), older than ``RETENTION_DAYS``;
5. unknown entities last seen before ``RETENTION_DAYS``;
6. log entries and GPU stats (``LOG_RETENTION_DAYS``), audit rows (``AUDIT_RETENTION_DAYS``), dead-letter jobs
   (``DLQ_RETENTION_DAYS``);
7. orphan thumbnails: ``<id>_thumb.jpg`` files older than 24 h whose detection no longer exists.

Then a full baseline rebuild and the ``cleanup_executed`` audit row. A dry run counts the same rows and files and
changes nothing.

Every batch is chosen along an index (each table's time index, per camera / status / queue / entity type where the
index leads with that column) and the children of a batch are deleted explicitly by their indexed foreign key
before the parent, so every statement costs the same whatever the size of the tables, on PostgreSQL (which also
cascades at the database level, ``system.db_cascades``) and on SQLite alike.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from alerts.models import Alert, Delivery
from cameras.models import Camera
from events.baselines import baselines_rebuild
from events.models import Detection, Entity, EntityType, Event, EventAudit, EventDetection, EventFeedback, TrustStatus
from hsi.api.counts import invalidate_counts
from hsi.timeutils import utc_iso
from pipeline.models import Batch, BatchStatus, FailedJob, IngestedFile, JobQueue
from system.models import AuditLog, GPUStat, LogEntry
from system.services import Actor, audit_record

logger = logging.getLogger("hsi.retention")

BATCH_SIZE = 1000
ORPHAN_THUMBNAIL_AGE = dt.timedelta(hours=24)
THUMBNAIL_NAME = re.compile(r"^(\d+)_thumb\.jpg$")
DELETABLE_BATCH_STATUSES = (BatchStatus.CLOSED, BatchStatus.DONE, BatchStatus.FAILED)

COUNT_KEYS = (
    "events_deleted",
    "trashed_events_purged",
    "detections_deleted",
    "thumbnails_deleted",
    "media_files_deleted",
    "batches_deleted",
    "ingested_files_deleted",
    "entities_deleted",
    "logs_deleted",
    "audit_logs_deleted",
    "gpu_stats_deleted",
    "failed_jobs_deleted",
)

Progress = Callable[[str, int, int | None], None]
"""``progress(step, done, total)``: called as each step starts (done 0) and after each batch; ``total`` is the
number of rows the step will handle (counted up front)."""


def _days(name: str) -> dt.timedelta:
    return dt.timedelta(days=max(1, int(getattr(settings, name))))  # every retention period is at least 1 day


def retention_cutoffs(now: dt.datetime) -> dict[str, dt.datetime]:
    """The instant before which each kind of data is deleted."""
    data = now - _days("RETENTION_DAYS")
    logs = now - _days("LOG_RETENTION_DAYS")
    return {
        "events": data,
        "trashed_events": now - _days("TRASH_RETENTION_DAYS"),
        "detections": data,
        "batches": data,
        "ingested_files": data,
        "entities": data,
        "logs": logs,
        "gpu_stats": logs,
        "audit_logs": now - _days("AUDIT_RETENTION_DAYS"),
        "failed_jobs": now - _days("DLQ_RETENTION_DAYS"),
        "orphan_thumbnails": now - ORPHAN_THUMBNAIL_AGE,
    }


# --- one kind of rows: the batches of an indexed scan ---------------------------------------------------------


class _Scan:
    """The rows of one kind, as index-ordered slices: ``parts`` are querysets each served by one index range
    (``time_field`` ascending, then ``id``)."""

    def __init__(self, parts: Iterable[QuerySet], time_field: str, columns: tuple[str, ...] = ("id",)):
        self.parts = list(parts)
        self.time_field = time_field
        self.columns = columns

    def count(self) -> int:
        return sum(part.order_by().count() for part in self.parts)

    def batches(self, size: int) -> Iterator[list[tuple]]:
        """Successive batches of ``columns`` in (time, id) order. Each batch starts after the last row of the one
        before (a keyset bound, plus ``time >= t`` so the index scan starts there): a deleting run never walks
        again over the index entries of the rows it has just deleted, and a dry run moves past what it counted."""
        columns = (*self.columns, self.time_field, "id")
        for part in self.parts:
            after: tuple | None = None
            while True:
                queryset = part
                if after is not None:
                    t, pk = after
                    queryset = queryset.filter(
                        Q(**{f"{self.time_field}__gt": t}) | Q(**{self.time_field: t, "id__gt": pk}),
                        **{f"{self.time_field}__gte": t},
                    )
                rows = list(queryset.order_by(self.time_field, "id").values_list(*columns)[:size])
                if not rows:
                    break
                yield [row[: len(self.columns)] for row in rows]
                if len(rows) < size:
                    break
                after = (rows[-1][-2], rows[-1][-1])


def _raw_delete(queryset: QuerySet) -> int:
    """One ``DELETE … WHERE …`` statement, without Django's collector (children are deleted explicitly)."""
    return queryset._raw_delete(queryset.db) or 0


# --- files --------------------------------------------------------------------------------------------------


def _thumbnail_dir() -> Path:
    return Path(settings.HSI_DATA_DIR) / "thumbnails"


def _thumbnail_files(detection_id: int, stored: str | None) -> set[Path]:
    """The conventional thumbnail of a detection and the stored one when it lies in the thumbnails folder."""
    folder = _thumbnail_dir()
    paths = {folder / f"{detection_id}_thumb.jpg"}
    if stored:
        candidate = Path(stored)
        if candidate.parent == folder:
            paths.add(candidate)
    return paths


def _media_root() -> str:
    return os.path.realpath(str(settings.FOSCAM_BASE_PATH))


def _contained_media(path: str, root: str) -> str | None:
    """The real path of a source file when it lies strictly inside ``FOSCAM_BASE_PATH`` (symlinks resolved)."""
    if not path:
        return None
    if not os.path.isabs(path):
        path = os.path.join(root, path)
    real = os.path.realpath(path)
    try:
        inside = os.path.commonpath([root, real]) == root and real != root
    except ValueError:  # different drives
        return None
    return real if inside else None


class _Files:
    """Files to remove after a batch commits (or, in a dry run, to count when they exist)."""

    def __init__(self, *, dry_run: bool):
        self.dry_run = dry_run
        self.media_root = _media_root()
        self.delete_media = bool(settings.RETENTION_DELETE_MEDIA)
        self.thumbnails = 0
        self.media = 0
        self._seen_media: set[str] = set()

    def remove_thumbnails(self, paths: Iterable[Path]) -> None:
        self.thumbnails += sum(1 for path in paths if self._remove(path))

    def remove_media(self, paths: Iterable[str]) -> None:
        if not self.delete_media:
            return
        for path in paths:
            real = _contained_media(path, self.media_root)
            if real is None or real in self._seen_media:
                continue
            self._seen_media.add(real)
            if self._remove(Path(real)):
                self.media += 1

    def _remove(self, path: Path) -> bool:
        if self.dry_run:
            return path.is_file()
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError:
            logger.warning("Retention could not remove %s", path, exc_info=True)
            return False
        return True


# --- the run ------------------------------------------------------------------------------------------------


class _Run:
    def __init__(self, *, now: dt.datetime, dry_run: bool, progress: Progress | None, batch_size: int):
        self.now = now
        self.dry_run = dry_run
        self.progress = progress
        self.batch_size = batch_size
        self.cutoffs = retention_cutoffs(now)
        self.files = _Files(dry_run=dry_run)
        self.counts = dict.fromkeys(COUNT_KEYS, 0)

    def step(self, key: str, scan: _Scan, delete: Callable[[list[tuple]], int] | None, *, rows_only: bool = True):
        """Delete (or count) one kind of rows; ``delete(batch)`` removes one batch inside its transaction and
        returns the rows deleted. ``rows_only``: a dry run needs no batches (no files to look at), only the count."""
        total = scan.count() if (self.progress is not None or (self.dry_run and rows_only)) else None
        self._report(key, 0, total)
        if self.dry_run and rows_only:
            self.counts[key] = total or 0
            self._report(key, self.counts[key], total)
            return
        done = 0
        for batch in scan.batches(self.batch_size):
            if self.dry_run:
                done += len(batch)
                self.after_batch(key, batch)
            else:
                with transaction.atomic():
                    done += delete(batch)
                self.after_batch(key, batch)
            self._report(key, done, total)
        self.counts[key] = done

    def after_batch(self, key: str, batch: list[tuple]) -> None:
        if key == "detections_deleted":
            self.files.remove_thumbnails(path for pk, stored, _ in batch for path in _thumbnail_files(pk, stored))
            self.files.remove_media(source for _, _, source in batch)
        elif key == "ingested_files_deleted":
            self.files.remove_media(path for _, path in batch)

    def _report(self, key: str, done: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(key, done, total)

    # --- the steps ---

    def run(self) -> None:
        c = self.cutoffs
        trashed = Event.objects.filter(deleted_at__lt=c["trashed_events"])
        self.step("trashed_events_purged", _Scan([trashed], "deleted_at"), _delete_events)
        old_events = Event.objects.filter(started_at__lt=c["events"])
        if self.dry_run:  # not counted twice: the trash purge runs first
            old_events = old_events.exclude(deleted_at__lt=c["trashed_events"])
        self.step("events_deleted", _Scan([old_events], "started_at"), _delete_events)

        detections = Detection.objects.filter(detected_at__lt=c["detections"])
        self.step(
            "detections_deleted",
            _Scan([detections], "detected_at", ("id", "thumbnail_path", "file_path")),
            _delete_detections,
            rows_only=False,
        )

        batches = [
            Batch.objects.filter(status=status, opened_at__lt=c["batches"]) for status in DELETABLE_BATCH_STATUSES
        ]
        self.step("batches_deleted", _Scan(batches, "opened_at"), _delete_batches)

        camera_ids = list(Camera.objects.order_by("pk").values_list("pk", flat=True))
        files = [
            IngestedFile.objects.filter(camera_id=camera_id, received_at__lt=c["ingested_files"])
            for camera_id in camera_ids
        ]
        self.step(
            "ingested_files_deleted",
            _Scan(files, "received_at", ("id", "path")),
            _delete_ingested_files,
            rows_only=not self.files.delete_media,
        )

        entities = [
            Entity.objects.filter(entity_type=kind, trust_status=TrustStatus.UNKNOWN, last_seen_at__lt=c["entities"])
            for kind in EntityType.values
        ]
        self.step("entities_deleted", _Scan(entities, "last_seen_at"), _delete_entities)

        self.step(
            "logs_deleted", _Scan([LogEntry.objects.filter(timestamp__lt=c["logs"])], "timestamp"), _plain(LogEntry)
        )
        gpu = GPUStat.objects.filter(recorded_at__lt=c["gpu_stats"])
        self.step("gpu_stats_deleted", _Scan([gpu], "recorded_at"), _plain(GPUStat))
        audits = AuditLog.objects.filter(timestamp__lt=c["audit_logs"])
        self.step("audit_logs_deleted", _Scan([audits], "timestamp"), _plain(AuditLog))
        jobs = [FailedJob.objects.filter(queue=queue, created_at__lt=c["failed_jobs"]) for queue in JobQueue.values]
        self.step("failed_jobs_deleted", _Scan(jobs, "created_at"), _plain(FailedJob))

        self.orphan_thumbnails()
        self.counts["thumbnails_deleted"] = self.files.thumbnails
        self.counts["media_files_deleted"] = self.files.media

    def orphan_thumbnails(self) -> None:
        """``<id>_thumb.jpg`` files older than 24 h (by mtime) whose detection does not exist."""
        folder = _thumbnail_dir()
        if not folder.is_dir():
            return
        cutoff = self.cutoffs["orphan_thumbnails"].timestamp()
        self._report("orphan_thumbnails", 0, None)
        candidates: dict[int, Path] = {}
        for entry in os.scandir(folder):
            match = THUMBNAIL_NAME.match(entry.name)
            if not match or not entry.is_file(follow_symlinks=False):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
            except FileNotFoundError:
                continue
            candidates[int(match.group(1))] = Path(entry.path)
            if len(candidates) >= self.batch_size:
                self._remove_orphans(candidates)
                candidates = {}
        if candidates:
            self._remove_orphans(candidates)

    def _remove_orphans(self, candidates: dict[int, Path]) -> None:
        existing = set(Detection.objects.filter(pk__in=list(candidates)).values_list("pk", flat=True))
        self.files.remove_thumbnails(path for pk, path in candidates.items() if pk not in existing)

    def result(self, duration_ms: int) -> dict:
        return {
            "dry_run": self.dry_run,
            **self.counts,
            "cutoffs": {name: utc_iso(value) for name, value in self.cutoffs.items()},
            "duration_ms": duration_ms,
        }


# --- batch deletes (inside the batch's transaction) -----------------------------------------------------------


def _ids(batch: list[tuple]) -> list:
    return [row[0] for row in batch]


def _delete_events(batch: list[tuple]) -> int:
    """Events and what they cascade to (§1.6), children first, each by its indexed foreign key."""
    ids = _ids(batch)
    _raw_delete(Delivery.objects.filter(alert__event_id__in=ids))
    _raw_delete(Alert.objects.filter(event_id__in=ids))
    _raw_delete(EventDetection.objects.filter(event_id__in=ids))
    _raw_delete(EventAudit.objects.filter(event_id__in=ids))
    _raw_delete(EventFeedback.objects.filter(event_id__in=ids))
    return _raw_delete(Event.objects.filter(pk__in=ids))


def _delete_detections(batch: list[tuple]) -> int:
    ids = _ids(batch)
    Entity.objects.filter(primary_detection_id__in=ids).update(primary_detection=None)
    _raw_delete(EventDetection.objects.filter(detection_id__in=ids))
    return _raw_delete(Detection.objects.filter(pk__in=ids))


def _delete_batches(batch: list[tuple]) -> int:
    ids = _ids(batch)
    Event.objects.filter(batch_id__in=ids).update(batch=None)
    Detection.objects.filter(batch_id__in=ids).update(batch=None)
    return _raw_delete(Batch.objects.filter(pk__in=ids))


def _delete_ingested_files(batch: list[tuple]) -> int:
    ids = _ids(batch)
    Detection.objects.filter(source_file_id__in=ids).update(source_file=None)
    return _raw_delete(IngestedFile.objects.filter(pk__in=ids))


def _delete_entities(batch: list[tuple]) -> int:
    ids = _ids(batch)
    Detection.objects.filter(entity_id__in=ids).update(entity=None)
    return _raw_delete(Entity.objects.filter(pk__in=ids))


def _plain(model) -> Callable[[list[tuple]], int]:
    def delete(batch: list[tuple]) -> int:
        return _raw_delete(model.objects.filter(pk__in=_ids(batch)))

    return delete


def retention_run(
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
    actor: Actor | None = None,
) -> dict:
    """Run §4.13 once; returns the §2.11 cleanup body (counts, ``cutoffs``, ``duration_ms``, ``dry_run``).

    ``now`` is the instant the retention periods are measured from (default: the current time).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    now = now or timezone.now()
    started = time.monotonic()
    run = _Run(now=now, dry_run=dry_run, progress=progress, batch_size=batch_size)
    run.run()
    if not dry_run:
        invalidate_counts("events", "detections", "alerts")
        if progress is not None:
            progress("baselines", 0, None)
        baselines_rebuild(now=now)
    result = run.result(int((time.monotonic() - started) * 1000))
    if not dry_run:
        details = {key: result[key] for key in COUNT_KEYS} | {"cutoffs": result["cutoffs"]}
        audit_record(actor or Actor.system("retention"), "cleanup_executed", "system", None, details=details)
    counts = {key: result[key] for key in COUNT_KEYS}
    if dry_run:
        logger.debug("Retention dry run: %s", counts)  # DEBUG: stored log entries would be a change
    else:
        logger.info("Retention run: %s", counts)
    return result
