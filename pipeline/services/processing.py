"""``pipeline.process_file`` (CONTRACT §4.4): detect objects in one ingested file and store them durably.

1. Claim the file (``pending`` → ``processing``); a file already ``processed``/``no_detections``/``invalid``/``failed``
   is left alone, so a rerun never duplicates anything.
2. Image → one frame; video → sampled frames, detections collapsed per class. Each frame goes through the detector
   (``pipeline.detectors.detect``: breaker, timing, post-processing).
3. Zones, embeddings; then in ONE transaction: every Detection row, entity links, batching (§4.5) and the file's
   final status. The rows and the status change commit together, so a crash anywhere before the commit leaves the
   file ``processing`` with no detections, and ``pipeline.reconcile`` runs it again.
4. After commit: thumbnails (best effort), ``detection.new`` per detection, then the closed-batch side effects.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from collections.abc import Sequence

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cameras.geometry import point_in_polygon
from cameras.models import Zone
from events.entities import EntityChanges, entities_match, entities_save
from events.models import Detection, MediaType
from hsi import metrics
from hsi.api.counts import invalidate_counts
from hsi.realtime import send_now
from hsi.resilience import PipelineError
from hsi.timeutils import utc_iso
from pipeline.detectors.base import Frame, RawDetection
from pipeline.models import FileStatus, IngestedFile
from pipeline.previews import preview_take
from pipeline.services.batching import batch_add_detections, camera_lock, for_update, qualifies_for_fast_path

logger = logging.getLogger("hsi.pipeline.processing")

DONE_STATUSES = (FileStatus.PROCESSED, FileStatus.NO_DETECTIONS, FileStatus.INVALID, FileStatus.FAILED)
CLAIMABLE_STATUSES = (FileStatus.PENDING, FileStatus.PROCESSING)
# A colour histogram is taken from the reduced-size preview only when the box still spans this many pixels there
# (both sides); a smaller one is cropped from the full decode, so a histogram never stands on a handful of pixels.
HISTOGRAM_MIN_PREVIEW_PIXELS = 32


@dataclasses.dataclass
class VideoInfo:
    duration: float | None
    codec: str | None
    width: int
    height: int


@dataclasses.dataclass
class Found:
    """One kept detection, the frame it came from and the detector's model name."""

    frame: Frame
    raw: RawDetection
    model: str


@dataclasses.dataclass
class ProcessOutcome:
    file_id: int
    status: str
    detections: list[Detection]


@dataclasses.dataclass
class ChunkOutcome:
    """What ``files_process`` stored (one outcome per file it finished) and the files whose detection failed."""

    outcomes: list[ProcessOutcome]
    failed: dict[int, Exception]


@dataclasses.dataclass
class _Work:
    """One claimed file, what its detector found, its unsaved Detection rows and their embedding models."""

    file: IngestedFile
    found: list[Found]
    detections: list[Detection]
    models: list[str | None]


def file_process(file_id: int, *, now: dt.datetime | None = None) -> ProcessOutcome | None:
    """Detect, store and batch the detections of one IngestedFile; None when there is nothing to do.

    Raises ``PipelineError`` (or any exception) for a failed attempt; the task decides on retry or DLQ.
    """
    chunk = files_process([file_id], now=now)
    if file_id in chunk.failed:
        raise chunk.failed[file_id]
    return chunk.outcomes[0] if chunk.outcomes else None


def files_process(file_ids: Sequence[int], *, now: dt.datetime | None = None) -> ChunkOutcome:
    """``file_process`` for several files at once (a burst the watcher coalesced, ``pipeline.process_files``).

    Each file is detected on its own; a file whose detection fails is left ``processing`` and reported in
    ``failed`` (the task hands it on to ``pipeline.process_file``, which owns the retry and DLQ policy). The others
    are stored in ONE transaction, in the order they were received: the statements of a file are shared by the
    whole chunk, which is what makes a burst cheap. An error in that transaction raises for the whole chunk.
    """
    work, failed = [], {}
    zones: dict[str, list[Zone]] = {}
    files = _claim(file_ids)
    if files:
        metrics.files_per_task.observe(len(files))
    for file in files:
        try:
            work.append(_prepare(file, zones))
        except SoftTimeLimitExceeded:
            raise  # the task's time is up: nothing of the chunk is stored, every file goes on alone
        except Exception as error:  # noqa: BLE001 - handed back per file, whatever it is
            failed[file.id] = error
    if not work:
        return ChunkOutcome([], failed)
    return ChunkOutcome(_store(work, now or timezone.now()), failed)


def _prepare(file: IngestedFile, zones: dict[str, list[Zone]]) -> _Work:
    """Detect one claimed file and build its (unsaved) Detection rows; ``zones`` caches each camera's zones."""
    found, video = _detect(file)
    if file.camera_id not in zones:
        zones[file.camera_id] = list(
            Zone.objects.filter(camera_id=file.camera_id, enabled=True).order_by("-priority", "id")
        )
    detections = [_detection_row(file, item, zones[file.camera_id], video) for item in found]
    work = _Work(file, found, detections, _embed(found, detections))
    for frame in {id(item.frame): item.frame for item in found}.values():
        try:
            frame.keep_preview_only()
        except Exception:  # memory, not correctness: the file is detected and stays so
            logger.debug("Could not shrink the frame of file %d", file.id, exc_info=True)
    return work


def _store(work: list[_Work], now: dt.datetime) -> list[ProcessOutcome]:
    """The Detection rows, entity links, batching and final status of every claimed file, in one transaction."""
    with transaction.atomic():
        live = set(
            for_update(IngestedFile.objects.filter(pk__in=[w.file.id for w in work], status__in=CLAIMABLE_STATUSES))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        work = [w for w in work if w.file.id in live]  # another run finished (or the camera was deleted) meanwhile
        if not work:
            return []
        found = [item for w in work for item in w.found]
        detections = [detection for w in work for detection in w.detections]
        for detection in detections:
            detection.created_at = now
        entities = _match_entities(found, detections, [model for w in work for model in w.models], now)
        transaction.on_commit(lambda: _after_commit(detections, found))  # detection.new before detection.batch
        _batch(work, now)
        Detection.objects.bulk_create(detections)  # already linked to their entities and batch: one INSERT
        if entities is not None:
            entities_save(entities)
        _mark_done(work, now)
        if detections:
            invalidate_counts("detections")
    return [ProcessOutcome(w.file.id, _final_status(w), w.detections) for w in work]


def _claim(file_ids: Sequence[int]) -> list[IngestedFile]:
    """``pending``/``processing`` → ``processing`` in one conditional UPDATE (it takes the row locks itself); the
    claimed files in the order they were received."""
    ids = list(dict.fromkeys(file_ids))
    if not IngestedFile.objects.filter(pk__in=ids, status__in=CLAIMABLE_STATUSES).update(status=FileStatus.PROCESSING):
        return []
    claimed = IngestedFile.objects.filter(pk__in=ids, status=FileStatus.PROCESSING)
    return list(claimed.order_by("received_at", "pk"))


def _batch(work: Sequence[_Work], now: dt.datetime) -> None:
    """Batching (§4.5), camera by camera (a fixed lock order), each camera's files in order: the detections of
    consecutive files go in together; a file that qualifies for the fast path is added on its own."""
    by_camera: dict[str, list[_Work]] = {}
    for item in work:
        by_camera.setdefault(item.file.camera_id, []).append(item)
    for camera_id in sorted(by_camera):
        fast = [
            qualifies_for_fast_path([(d.object_type, d.confidence) for d in w.detections]) for w in by_camera[camera_id]
        ]
        if any(fast):
            camera_lock(camera_id)  # before the open batch, as a single file's fast path takes them: no deadlock
        run: list[Detection] = []
        for item, qualifies in zip(by_camera[camera_id], fast, strict=True):
            if qualifies:
                batch_add_detections(camera_id, run, now=now)
                batch_add_detections(camera_id, item.detections, now=now)
                run = []
            else:
                run.extend(item.detections)
        batch_add_detections(camera_id, run, now=now)


def _final_status(item: _Work) -> str:
    return FileStatus.PROCESSED if item.detections else FileStatus.NO_DETECTIONS


def _mark_done(work: Sequence[_Work], now: dt.datetime) -> None:
    """Final status and ``detection_count``: one UPDATE per distinct count (one or two in a burst)."""
    by_count: dict[int, list[int]] = {}
    for item in work:
        by_count.setdefault(len(item.detections), []).append(item.file.id)
    for count, ids in by_count.items():
        status = FileStatus.PROCESSED if count else FileStatus.NO_DETECTIONS
        IngestedFile.objects.filter(pk__in=ids).update(status=status, detection_count=count, processed_at=now, error="")


# --- Detection --------------------------------------------------------------------------------------------------


def _detect(file: IngestedFile) -> tuple[list[Found], VideoInfo | None]:
    from pipeline.detectors import detect, get_detector

    detector = get_detector()
    if file.media_type == MediaType.VIDEO:
        from pipeline.video import collapse_video_detections, sample_video

        sample = sample_video(file.path, camera_id=file.camera_id)
        per_frame, models = [], {}
        for frame in sample.frames:
            result, _ = detect(frame, detector)
            per_frame.append((frame, result.detections))
            models[id(frame)] = result.model or detector.name
        kept = collapse_video_detections(per_frame, settings.VIDEO_MAX_DETECTIONS_PER_CLASS)
        video = VideoInfo(sample.duration, sample.codec or None, sample.width, sample.height)
        return [Found(frame, raw, models[id(frame)]) for frame, raw in kept], video
    frame = Frame(
        data=_read(file.path),
        filename=os.path.basename(file.path),
        mime_type=file.mime_type or "image/jpeg",
        camera_id=file.camera_id,
        _preview=preview_take(file.sha256),
    )
    result, _ = detect(frame, detector)
    return [Found(frame, raw, result.model or detector.name) for raw in result.detections], None


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise PipelineError(f"file {path} no longer exists", error_type="FileNotFoundError", retryable=False) from None
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error}", error_type=type(error).__name__) from error


# --- Rows -------------------------------------------------------------------------------------------------------


def zone_ids_for(raw: RawDetection, width: int, height: int, zones: Sequence[Zone]) -> list[str]:
    """Ids of the ``zones`` containing the bbox centre, in normalised frame coordinates."""
    if width <= 0 or height <= 0:
        return []
    x = (raw.x + raw.width / 2) / width
    y = (raw.y + raw.height / 2) / height
    return [str(zone.id) for zone in zones if point_in_polygon(x, y, zone.coordinates)]


def _detection_row(file: IngestedFile, item: Found, zones: Sequence[Zone], video: VideoInfo | None) -> Detection:
    frame, raw = item.frame, item.raw
    offset = frame.frame_time_seconds if video is not None else None
    width, height = frame.width, frame.height
    return Detection(
        camera_id=file.camera_id,
        source_file_id=file.id,
        file_path=file.path,
        file_type=file.mime_type or ("video/mp4" if video is not None else "image/jpeg"),
        media_type=file.media_type,
        detected_at=file.received_at + dt.timedelta(seconds=offset or 0),
        object_type=raw.object_type,
        confidence=float(raw.confidence),
        bbox_x=raw.x,
        bbox_y=raw.y,
        bbox_width=raw.width,
        bbox_height=raw.height,
        image_width=width,
        image_height=height,
        frame_time_seconds=offset,
        video_duration=video.duration if video else None,
        video_codec=video.codec if video else None,
        video_width=video.width if video else None,
        video_height=video.height if video else None,
        zone_ids=zone_ids_for(raw, width, height, zones),
        enrichment_data=raw.attributes or None,
    )


def _embed(found: Sequence[Found], detections: Sequence[Detection]) -> list[str | None]:
    """Set ``embedding`` on each detection (when re-identification is on); the embedding model of each."""
    if not settings.REID_ENABLED:
        return [None] * len(found)
    from events.entities import detection_embedding

    models: list[str | None] = []
    for item, detection in zip(found, detections, strict=True):
        raw = item.raw
        bbox = (raw.x, raw.y, raw.width, raw.height)
        pixels, scale = _decoded_or_none(item.frame) or (None, 1.0)
        if pixels is not None and scale < 1 and min(raw.width, raw.height) * scale < HISTOGRAM_MIN_PREVIEW_PIXELS:
            pixels, scale = _full_or_none(item.frame)  # a small box: its colours from the full-resolution crop
        embedded = detection_embedding(raw.object_type, bbox, pixels, raw.embedding, item.model, pixel_scale=scale)
        detection.embedding = embedded[0] if embedded else None
        models.append(embedded[1] if embedded else None)
    return models


def _match_entities(
    found: Sequence[Found], detections: Sequence[Detection], models: Sequence[str | None], now: dt.datetime
) -> EntityChanges | None:
    """Entity matching per frame (§4.10) inside the insert transaction, before the Detection rows are written."""
    if not settings.REID_ENABLED or not any(models):
        return None
    frames: dict[int, list[tuple[Detection, str]]] = {}
    for item, detection, model in zip(found, detections, models, strict=True):
        if model:
            frames.setdefault(id(item.frame), []).append((detection, model))
    return entities_match(list(frames.values()), now=now)


# --- After commit -----------------------------------------------------------------------------------------------


def _after_commit(detections: Sequence[Detection], found: Sequence[Found]) -> None:
    """Thumbnails (best effort; a failure is logged and retried on first request), then ``detection.new``."""
    from media_serving.thumbnails import thumbnails_generate

    try:
        pairs = [(detection, _decoded_or_none(item.frame)) for detection, item in zip(detections, found, strict=True)]
        thumbnails_generate(pairs)
    except Exception:
        logger.warning("Thumbnails of detections %s failed", [d.id for d in detections], exc_info=True)
    for detection in detections:
        send_now("events", "detection.new", detection_new_message(detection))


def _decoded_or_none(frame: Frame):
    """The frame's preview (pixels, scale); None when it cannot be decoded here (the thumbnail then reads the
    file itself and logs why it cannot, and no colour embedding is made)."""
    try:
        return frame.preview
    except Exception:  # noqa: BLE001 - DetectorError, or an OpenCV error on an odd file: best effort
        return None


def _full_or_none(frame: Frame) -> tuple:
    try:
        return frame.pixels, 1.0
    except Exception:  # noqa: BLE001 - as above
        return None, 1.0


def detection_new_message(detection: Detection) -> dict:
    """The ``detection.new`` data of CONTRACT §3.6 (``thumbnail_url`` as in the Detection JSON of §2.4)."""
    return {
        "id": detection.id,
        "camera_id": detection.camera_id,
        "batch_id": str(detection.batch_id) if detection.batch_id else None,
        "object_type": detection.object_type,
        "confidence": detection.confidence,
        "bbox_x": detection.bbox_x,
        "bbox_y": detection.bbox_y,
        "bbox_width": detection.bbox_width,
        "bbox_height": detection.bbox_height,
        "detected_at": utc_iso(detection.detected_at),
        "media_type": detection.media_type,
        "entity_id": str(detection.entity_id) if detection.entity_id else None,
        "thumbnail_url": f"/api/detections/{detection.id}/thumbnail",
    }
