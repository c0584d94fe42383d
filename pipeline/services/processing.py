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
from hsi.timeutils import utc_iso
from pipeline.detectors.base import Frame, RawDetection
from pipeline.models import FileStatus, IngestedFile
from pipeline.resilience import PipelineError
from pipeline.services.batching import batch_add_detections, for_update

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


def file_process(file_id: int, *, now: dt.datetime | None = None) -> ProcessOutcome | None:
    """Detect, store and batch the detections of one IngestedFile; None when there is nothing to do.

    Raises ``PipelineError`` (or any exception) for a failed attempt; the task decides on retry or DLQ.
    """
    file = _claim(file_id)
    if file is None:
        return None
    found, video = _detect(file)
    zones = list(Zone.objects.filter(camera_id=file.camera_id, enabled=True).order_by("-priority", "id"))
    detections = [_detection_row(file, item, zones, video) for item in found]
    models = _embed(found, detections)
    now = now or timezone.now()
    with transaction.atomic():
        locked = for_update(IngestedFile.objects.filter(pk=file_id)).values_list("status", flat=True).first()
        if locked not in CLAIMABLE_STATUSES:
            return None  # another run finished (or the camera was deleted) meanwhile
        for detection in detections:
            detection.created_at = now
        entities = _match_entities(found, detections, models, now)
        transaction.on_commit(lambda: _after_commit(detections, found))  # detection.new before detection.batch
        batch_add_detections(file.camera_id, detections, now=now)
        Detection.objects.bulk_create(detections)  # already linked to their entities and batch: one INSERT
        if entities is not None:
            entities_save(entities)
        status = FileStatus.PROCESSED if detections else FileStatus.NO_DETECTIONS
        IngestedFile.objects.filter(pk=file_id).update(
            status=status, detection_count=len(detections), processed_at=now, error=""
        )
        if detections:
            invalidate_counts("detections")
    return ProcessOutcome(file_id=file_id, status=status, detections=detections)


def _claim(file_id: int) -> IngestedFile | None:
    """``pending``/``processing`` → ``processing`` in one conditional UPDATE (it takes the row lock itself)."""
    claimed = IngestedFile.objects.filter(pk=file_id, status__in=CLAIMABLE_STATUSES).update(
        status=FileStatus.PROCESSING
    )
    return IngestedFile.objects.filter(pk=file_id).first() if claimed else None


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
        metrics.detections_total.labels(object_type=detection.object_type).inc()
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
