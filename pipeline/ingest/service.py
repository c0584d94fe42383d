"""``file_ingest``: from a stable file on disk to a ``pending`` IngestedFile and a dispatched
``pipeline.process_file`` (CONTRACT §4.1 camera mapping, §4.2 dedup, validation and acceptance).

Dedup is two-level: the cache key ``hsi:dedup:<sha>`` (holding the file id) answers most repeats without touching
the database; the unique ``sha256`` column is authoritative, so concurrent ingests of the same content (two
watchers, a watcher and an upload) leave exactly one row and every other caller sees ``duplicate``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat as stat_module
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from cameras.models import Camera, CameraStatus
from cameras.services import camera_register_from_folder, camera_set_status
from hsi.dispatch import enqueue
from hsi.metrics import files_not_stored, pipeline_stage_seconds
from pipeline.ingest.rules import camera_folder_of, is_accepted_path, media_type_for, sniff_file
from pipeline.ingest.validation import sha256_of_file, validate_media
from pipeline.models import FileStatus, IngestedFile, RejectReason
from pipeline.task_names import PROCESS_FILE_TASK
from system.models import AuditStatus
from system.services import Actor, audit_record

logger = logging.getLogger("hsi.pipeline.ingest")

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
INVALID = "invalid"
IGNORED = "ignored"
SKIPPED_DISABLED = "skipped_disabled"
STORED_RESULTS = (ACCEPTED, INVALID)  # the results that leave an IngestedFile row (counted from the rows, §2.12)
_REVIVED_STATUSES = (CameraStatus.OFFLINE, CameraStatus.UNKNOWN)


@dataclass(frozen=True)
class IngestOutcome:
    """What ingest did with one file. ``file`` is the new row (accepted, invalid) or the earlier one (duplicate,
    when it still exists); ``reason`` says why a file was invalid or ignored."""

    result: str
    file: IngestedFile | None = None
    reason: str | None = None
    camera: Camera | None = None


@dataclass(frozen=True)
class FileInspection:
    """Hash and validation already done by the caller (the upload endpoint), so ingest does not read the file."""

    size: int
    sha256: str
    mime_type: str
    reject_reason: str | None = None


def dedup_key(sha256: str) -> str:
    return f"hsi:dedup:{sha256}"


def dedup_remember(sha256: str, file_id: int) -> None:
    cache.set(dedup_key(sha256), file_id, settings.DEDUP_CACHE_TTL_SECONDS)


def dedup_lookup(sha256: str) -> tuple[bool, IngestedFile | None]:
    """(seen, row): seen when the cache or the database knows the hash; row is the recorded file if it exists."""
    cached_id = cache.get(dedup_key(sha256))
    row = IngestedFile.objects.filter(sha256=sha256).first()
    if row is not None:
        if cached_id is None:
            dedup_remember(sha256, row.id)
        return True, row
    return cached_id is not None, None


def dedup_forget(sha256: str) -> None:
    cache.delete(dedup_key(sha256))


def file_ingest(
    path: str | os.PathLike,
    *,
    source: str = "watcher",
    camera: Camera | None = None,
    received_at: dt.datetime | None = None,
    recheck_truncated: Callable[[], None] | None = None,
    inspection: FileInspection | None = None,
) -> IngestOutcome:
    """Map, dedup, validate and record one stable file; dispatch ``pipeline.process_file`` when accepted.

    Without ``camera`` the camera is the folder's (§4.1, auto-created when allowed). ``recheck_truncated`` is called
    once when the image decodes as truncated; it should wait one stability period, after which the file is hashed
    and validated again before it is rejected.
    """
    started = time.perf_counter()
    path = Path(os.path.abspath(path))
    actor = Actor.system(source)
    camera, refusal = _camera_accepting(path, camera, actor)
    if refusal is not None:
        return _finish(refusal, started)
    media_type = media_type_for(path)
    if media_type is None:
        return _finish(IngestOutcome(IGNORED, reason="not_media", camera=camera), started)
    if inspection is None:
        inspection = _inspect(path, media_type, recheck_truncated)
    elif inspection.sha256:
        inspection = _skip_if_known(inspection)
    if isinstance(inspection, _Skip):
        skipped = IngestOutcome(inspection.result, file=inspection.file, reason=inspection.reason, camera=camera)
        return _finish(skipped, started)
    outcome = _record(camera, path, media_type, inspection, source=source, received_at=received_at, actor=actor)
    return _finish(outcome, started)


def files_ingest(
    paths: Sequence[str | os.PathLike],
    *,
    source: str = "watcher",
    recheck_truncated: Callable[[], None] | None = None,
) -> list[IngestOutcome]:
    """``file_ingest`` for a burst of stable files from the camera folders, one outcome per path, in order.

    Every file is mapped, hashed and validated as by ``file_ingest``, but the statements are shared: one camera
    lookup per folder, one dedup lookup, one INSERT and one ``last_seen_at`` update per camera, in one transaction.
    The exceptions take the single-file path after the others: content repeated within the burst (it then meets
    the first copy as a duplicate), an image that looks truncated (it gets its recheck), and every file of a burst
    whose INSERT fails (a concurrent ingest of the same content, a camera deleted meanwhile).
    """
    started = time.perf_counter()
    actor = Actor.system(source)
    outcomes: dict[int, IngestOutcome] = {}
    fresh: list[tuple[int, Path, Camera, str, FileInspection]] = []
    alone: list[int] = []
    cameras: dict[str | None, tuple[Camera | None, str]] = {}
    for index, raw in enumerate(paths):
        path = Path(os.path.abspath(raw))
        camera, refusal = _camera_accepting(path, None, actor, cameras)
        media_type = media_type_for(path) if refusal is None else None
        if refusal is None and media_type is None:
            refusal = IngestOutcome(IGNORED, reason="not_media", camera=camera)
        measured = _measure(path) if refusal is None else None
        if refusal is not None or isinstance(measured, _Skip):
            outcomes[index] = refusal or IngestOutcome(measured.result, reason=measured.reason, camera=camera)
            continue
        fresh.append((index, path, camera, media_type, measured))
    fresh, repeated = _first_copies(fresh)
    alone += repeated
    known = dedup_lookup_many([inspection.sha256 for *_, inspection in fresh if inspection.sha256])
    to_record = []
    for index, path, camera, media_type, inspection in fresh:
        if inspection.sha256 in known:
            outcomes[index] = IngestOutcome(DUPLICATE, file=known[inspection.sha256], camera=camera)
            continue
        try:
            reason = inspection.reject_reason or validate_media(
                path, media_type=media_type, size=inspection.size, sha256=inspection.sha256
            )
        except FileNotFoundError:
            outcomes[index] = IngestOutcome(IGNORED, reason="missing", camera=camera)
            continue
        if reason == RejectReason.TRUNCATED and recheck_truncated is not None:
            alone.append(index)
            continue
        to_record.append((index, path, camera, media_type, replace(inspection, reject_reason=reason)))
    outcomes.update(_record_many(to_record, source=source, actor=actor))
    share = (time.perf_counter() - started) / max(len(paths), 1)
    finished = {index: _finish(outcome, time.perf_counter() - share) for index, outcome in outcomes.items()}
    errors = {}
    for index in sorted(alone):  # counted and timed by file_ingest itself
        try:
            finished[index] = file_ingest(paths[index], source=source, recheck_truncated=recheck_truncated)
        except Exception as error:  # noqa: BLE001 - the rest of the burst is recorded: say which files were not
            errors[index] = error
    if errors:
        raise BurstIngestError(finished, errors)
    return [finished[index] for index in range(len(paths))]


class BurstIngestError(Exception):
    """Some files of a burst failed after the others were recorded: ``outcomes`` and ``errors`` by path index."""

    def __init__(self, outcomes: dict[int, IngestOutcome], errors: dict[int, Exception]):
        super().__init__(f"{len(errors)} file(s) of the burst failed: {next(iter(errors.values()))}")
        self.outcomes = outcomes
        self.errors = errors


def dedup_lookup_many(sha256s: Sequence[str]) -> dict[str, IngestedFile | None]:
    """The hashes the cache or the database knows (``dedup_lookup`` for many: two round trips), each with its
    recorded file when that still exists."""
    if not sha256s:
        return {}
    cached = cache.get_many([dedup_key(sha256) for sha256 in sha256s])
    rows = {row.sha256: row for row in IngestedFile.objects.filter(sha256__in=list(sha256s))}
    missing = {dedup_key(sha256): row.id for sha256, row in rows.items() if dedup_key(sha256) not in cached}
    if missing:
        cache.set_many(missing, settings.DEDUP_CACHE_TTL_SECONDS)
    return {sha256: rows.get(sha256) for sha256 in sha256s if sha256 in rows or dedup_key(sha256) in cached}


def _first_copies(fresh: list) -> tuple[list, list[int]]:
    """The entries whose content is the first of its kind in the burst, and the indexes of the later copies."""
    first, later, seen = [], [], set()
    for entry in fresh:
        sha256 = entry[-1].sha256
        if sha256 and sha256 in seen:
            later.append(entry[0])
        else:
            seen.add(sha256)
            first.append(entry)
    return first, later


def _record_many(entries: list, *, source: str, actor: Actor) -> dict[int, IngestOutcome]:
    """Insert the rows of a burst together (see ``files_ingest``); one by one when the INSERT fails."""
    if not entries:
        return {}
    now = timezone.now()
    try:
        with transaction.atomic():
            rows = IngestedFile.objects.bulk_create(
                [
                    _new_row(camera, path, media_type, inspection, source, now)
                    for _, path, camera, media_type, inspection in entries
                ]
            )
            remembered = {dedup_key(row.sha256): row.id for row in rows if row.sha256}
            transaction.on_commit(lambda: cache.set_many(remembered, settings.DEDUP_CACHE_TTL_SECONDS))
            for row in rows:
                if row.reject_reason:
                    _audit_rejection(row, actor)
            seen = {entry[2].pk: entry[2] for entry in entries if not entry[-1].reject_reason}
            for camera_id in sorted(seen):  # the order processing locks cameras in: no deadlock between them
                _mark_camera_seen(seen[camera_id])
            for row in rows:
                if not row.reject_reason:
                    enqueue(PROCESS_FILE_TASK, row.id)
    except IntegrityError:
        logger.info("A burst of %d files met a concurrent change; recording them one by one", len(entries))
        return {
            index: _record(camera, path, media_type, inspection, source=source, actor=actor)
            for index, path, camera, media_type, inspection in entries
        }
    return {entry[0]: _recorded(row, entry[2]) for entry, row in zip(entries, rows, strict=True)}


def _camera_accepting(
    path: Path, camera: Camera | None, actor: Actor, folders: dict | None = None
) -> tuple[Camera | None, IngestOutcome | None]:
    """The camera that takes ``path`` (the given one, else the folder's), or the outcome that refuses the file.
    ``folders`` remembers each folder's camera across the calls of one burst."""
    if camera is None:
        camera, why = _camera_for_path(path, actor, folders)
        if camera is None:
            return None, IngestOutcome(IGNORED, reason=why)
    if not camera.enabled:
        return camera, IngestOutcome(SKIPPED_DISABLED, reason="camera_disabled", camera=camera)
    return camera, None


def file_record_unstable(
    path: str | os.PathLike, *, source: str = "watcher", camera: Camera | None = None
) -> IngestOutcome:
    """Record a file that never became stable (§4.1): an ``invalid`` row with reason ``unstable`` and no hash."""
    started = time.perf_counter()
    path = Path(os.path.abspath(path))
    actor = Actor.system(source)
    camera, refusal = _camera_accepting(path, camera, actor)
    if refusal is not None:
        return _finish(refusal, started)
    media_type = media_type_for(path)
    try:
        size = path.stat().st_size
        mime_type = sniff_file(path)
    except OSError:
        return _finish(IngestOutcome(IGNORED, reason="missing", camera=camera), started)
    if media_type is None:
        return _finish(IngestOutcome(IGNORED, reason="not_media", camera=camera), started)
    inspection = FileInspection(size=size, sha256="", mime_type=mime_type, reject_reason=RejectReason.UNSTABLE)
    return _finish(_record(camera, path, media_type, inspection, source=source, actor=actor), started)


# --- steps -----------------------------------------------------------------------------------------------------


def _camera_for_path(path: Path, actor: Actor, folders: dict | None = None) -> tuple[Camera | None, str]:
    root = settings.FOSCAM_BASE_PATH
    folder = camera_folder_of(path, root)
    if folder is None:
        return None, "outside_camera_folder"
    if not is_accepted_path(path, root):
        return None, "not_accepted"
    if folders is not None and folder in folders:
        return folders[folder], "no_camera"
    camera = camera_register_from_folder(folder, actor=actor)
    if folders is not None:
        folders[folder] = camera
    return camera, "no_camera"


@dataclass(frozen=True)
class _Skip:
    result: str
    reason: str | None = None
    file: IngestedFile | None = None


def _inspect(path: Path, media_type: str, recheck_truncated: Callable[[], None] | None) -> FileInspection | _Skip:
    """Hash, dedup, then validate (§4.2 order); a truncated image is measured and checked once more after
    ``recheck_truncated``."""
    for attempt in (1, 2):
        measured = _measure(path)
        if isinstance(measured, _Skip) or measured.reject_reason == RejectReason.EMPTY:
            return measured
        known = _skip_if_known(measured)
        if isinstance(known, _Skip):
            return known
        try:
            reason = validate_media(path, media_type=media_type, size=measured.size, sha256=measured.sha256)
        except FileNotFoundError:
            return _Skip(IGNORED, "missing")
        if reason == RejectReason.TRUNCATED and recheck_truncated is not None and attempt == 1:
            logger.info("%s looks truncated; checking it again after another stability period", path)
            recheck_truncated()
            continue
        return replace(measured, reject_reason=reason)
    raise AssertionError("unreachable")  # pragma: no cover


def _measure(path: Path) -> FileInspection | _Skip:
    """Size, SHA-256 and sniffed MIME type; an empty file is ``empty`` without a hash."""
    try:
        status = path.stat()
        if not stat_module.S_ISREG(status.st_mode):
            return _Skip(IGNORED, "not_a_file")
        if status.st_size == 0:
            return FileInspection(size=0, sha256="", mime_type="", reject_reason=RejectReason.EMPTY)
        return FileInspection(size=status.st_size, sha256=sha256_of_file(path), mime_type=sniff_file(path))
    except FileNotFoundError:
        return _Skip(IGNORED, "missing")


def _skip_if_known(inspection: FileInspection) -> FileInspection | _Skip:
    seen, earlier = dedup_lookup(inspection.sha256)
    return _Skip(DUPLICATE, file=earlier) if seen else inspection


def _record(
    camera: Camera,
    path: Path,
    media_type: str,
    inspection: FileInspection,
    *,
    source: str,
    actor: Actor,
    received_at: dt.datetime | None = None,
) -> IngestOutcome:
    reason = inspection.reject_reason
    sha256 = inspection.sha256 or None
    try:
        with transaction.atomic():
            row = _new_row(camera, path, media_type, inspection, source, received_at or timezone.now())
            row.save(force_insert=True)
            if sha256:
                transaction.on_commit(lambda: dedup_remember(sha256, row.id))
            if reason:
                _audit_rejection(row, actor)
            else:
                _mark_camera_seen(camera)
                enqueue(PROCESS_FILE_TASK, row.id)
    except IntegrityError:
        outcome = _integrity_outcome(camera, sha256)
        if outcome is None:
            raise
        return outcome
    return _recorded(row, camera)


def _new_row(
    camera: Camera, path: Path, media_type: str, inspection: FileInspection, source: str, received_at: dt.datetime
) -> IngestedFile:
    reason = inspection.reject_reason
    return IngestedFile(
        camera=camera,
        path=str(path),
        sha256=inspection.sha256 or None,
        size_bytes=inspection.size,
        media_type=media_type,
        mime_type=inspection.mime_type,
        source=source,
        status=FileStatus.INVALID if reason else FileStatus.PENDING,
        reject_reason=reason,
        received_at=received_at,
    )


def _recorded(row: IngestedFile, camera: Camera) -> IngestOutcome:
    """The outcome of a row just recorded, logged (a rejection as a WARNING, §4.2)."""
    if row.reject_reason:
        logger.warning(
            "Rejected %s from camera %s: %s", row.path, camera.id, row.reject_reason, extra={"camera_id": camera.id}
        )
        return IngestOutcome(INVALID, file=row, reason=row.reject_reason, camera=camera)
    logger.info("Accepted %s from camera %s as file %d", row.path, camera.id, row.id, extra={"camera_id": camera.id})
    return IngestOutcome(ACCEPTED, file=row, camera=camera)


def _integrity_outcome(camera: Camera, sha256: str | None) -> IngestOutcome | None:
    """The insert failed: another ingest recorded the same content first, or the camera was deleted meanwhile.
    None for any other integrity failure (a bug: the caller re-raises)."""
    earlier = IngestedFile.objects.filter(sha256=sha256).first() if sha256 else None
    if earlier is not None:
        dedup_remember(sha256, earlier.id)
        return IngestOutcome(DUPLICATE, file=earlier, camera=camera)
    if not Camera.objects.filter(pk=camera.pk).exists():
        return IngestOutcome(IGNORED, reason="camera_deleted", camera=camera)
    return None


def _mark_camera_seen(camera: Camera) -> None:
    """``last_seen_at = now``; an offline or unknown camera comes back online (reason ``files_received``)."""
    now = timezone.now()
    Camera.objects.filter(pk=camera.pk).update(last_seen_at=now)
    camera.last_seen_at = now
    current = Camera.objects.filter(pk=camera.pk).values_list("status", flat=True).first()
    if current in _REVIVED_STATUSES:
        camera_set_status(camera.id, CameraStatus.ONLINE, reason="files_received", actor=Actor.system())
        camera.status = CameraStatus.ONLINE


def _audit_rejection(row: IngestedFile, actor: Actor) -> None:
    audit_record(
        actor,
        "file_rejected",
        "ingested_file",
        row.id,
        details={"camera_id": row.camera_id, "path": row.path, "reason": row.reject_reason, "source": row.source},
        status=AuditStatus.FAILURE,
    )


def _finish(outcome: IngestOutcome, started: float) -> IngestOutcome:
    if outcome.result not in STORED_RESULTS:
        files_not_stored.labels(result=outcome.result).inc()
    if outcome.result != IGNORED:
        pipeline_stage_seconds.labels(stage="ingest").observe(time.perf_counter() - started)
    return outcome
