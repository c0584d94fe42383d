"""``BatchContext`` from the database (CONTRACT §4.6 step 2): what an analyzer knows about one batch.

Camera (name, id, enabled zones), detections ordered by time with zone membership and entity matches, the baseline
expectations and anomaly score (§4.11), the camera's events of the 24 h before the batch by risk level, and the
active operator feedback matching the batch (§5.6). Everything is plain data, so analyzers are pure functions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone

from cameras.models import Camera, Zone
from events.baselines import anomaly_context
from events.feedback import feedback_counts
from events.models import Detection, Entity, Event, RiskLevel
from pipeline.analyzers.base import (
    BaselineContext,
    BatchContext,
    DetectionContext,
    EntityContext,
    ZoneContext,
)
from pipeline.models import Batch

HISTORY_HOURS = 24


def batch_context(batch: Batch, *, now: dt.datetime | None = None) -> BatchContext | None:
    """The context of ``batch`` (its detections by ``detected_at``, ``id``); None when it has no detections."""
    # Without the 256-float embeddings: the prompt never shows them, and 50 of them cost more than the rest of the row.
    detections = list(Detection.objects.filter(batch_id=batch.pk).defer("embedding").order_by("detected_at", "id"))
    return detections_context(
        batch.camera_id, detections, now=now, batch_id=str(batch.pk), is_fast_path=batch.is_fast_path
    )


def detections_context(
    camera_id: str,
    detections: Sequence[Detection],
    *,
    now: dt.datetime | None = None,
    batch_id: str | None = None,
    is_fast_path: bool = False,
    exclude_event_id: int | None = None,
) -> BatchContext | None:
    """The context of any set of detections of one camera (a batch, or an event being reanalysed)."""
    if not detections:
        return None
    now = now or timezone.now()
    detections = sorted(detections, key=lambda d: (d.detected_at, d.id))
    camera = Camera.objects.only("id", "name").get(pk=camera_id)
    started_at, ended_at = detections[0].detected_at, detections[-1].detected_at
    classes = sorted({d.object_type for d in detections})
    return BatchContext(
        camera_id=camera.id,
        camera_name=camera.name,
        zones=zone_contexts(camera_id),
        detections=tuple(detection_contexts(detections)),
        started_at=started_at,
        ended_at=ended_at,
        timezone=settings.TIME_ZONE,
        baseline=baseline_context(camera_id, classes, ended_at),
        history=event_history(camera_id, ended_at, exclude_event_id=exclude_event_id, exclude_batch_id=batch_id),
        feedback=feedback_counts(camera_id, classes, started_at, now=now),
        batch_id=batch_id,
        is_fast_path=is_fast_path,
    )


def zone_contexts(camera_id: str) -> tuple[ZoneContext, ...]:
    zones = Zone.objects.filter(camera_id=camera_id, enabled=True).order_by("-priority", "name", "id")
    return tuple(ZoneContext(id=str(z.id), name=z.name, zone_type=z.zone_type) for z in zones)


def detection_contexts(detections: Sequence[Detection]) -> list[DetectionContext]:
    entities = _entity_contexts(detections)
    return [
        DetectionContext(
            id=d.id,
            object_type=d.object_type,
            confidence=d.confidence,
            detected_at=d.detected_at,
            bbox_x=d.bbox_x,
            bbox_y=d.bbox_y,
            bbox_width=d.bbox_width,
            bbox_height=d.bbox_height,
            image_width=d.image_width,
            image_height=d.image_height,
            zone_ids=tuple(str(zone_id) for zone_id in (d.zone_ids or ())),
            entity=entities.get(d.id),
        )
        for d in detections
    ]


def _entity_contexts(detections: Sequence[Detection]) -> dict[int, EntityContext]:
    """Per detection id, its entity; ``is_new`` when the entity's first detection is this one."""
    entity_ids = {d.entity_id for d in detections if d.entity_id}
    if not entity_ids:
        return {}
    entities = {
        e.id: e
        for e in Entity.objects.filter(pk__in=entity_ids).only(
            "id", "entity_type", "trust_status", "label", "detection_count"
        )
    }
    first = dict(
        Detection.objects.filter(entity_id__in=entity_ids)
        .values("entity_id")
        .annotate(first_id=Min("id"))
        .values_list("entity_id", "first_id")
    )
    contexts = {}
    for detection in detections:
        entity = entities.get(detection.entity_id)
        if entity is None:
            continue
        contexts[detection.id] = EntityContext(
            id=str(entity.id),
            entity_type=entity.entity_type,
            trust_status=entity.trust_status,
            label=entity.label,
            times_seen=entity.detection_count,
            is_new=first.get(entity.id) == detection.id,
        )
    return contexts


def baseline_context(camera_id: str, classes: Sequence[str], at: dt.datetime) -> BaselineContext | None:
    """The camera's baseline expectations at ``at`` (§4.11); None when it has no baseline rows at all."""
    found = anomaly_context(camera_id, classes, at)
    if found is None:
        return None
    return BaselineContext(
        established=bool(found["established"]),
        coverage_days=float(found["coverage_days"]),
        expected_count=float(found["expected_count"]),
        observed_last_hour=int(found["observed_last_hour"]),
        class_frequencies={str(k): float(v) for k, v in (found.get("class_frequencies") or {}).items()},
        anomaly_score=found.get("anomaly_score"),
    )


def event_history(
    camera_id: str,
    until: dt.datetime,
    *,
    exclude_event_id: int | None = None,
    exclude_batch_id: str | None = None,
) -> dict[str, int]:
    """This camera's live events that started in the 24 h up to ``until``, counted by risk level (all four keys)."""
    events = Event.objects.filter(
        camera_id=camera_id,
        deleted_at__isnull=True,
        started_at__gte=until - dt.timedelta(hours=HISTORY_HOURS),
        started_at__lte=until,
    )
    if exclude_event_id is not None:
        events = events.exclude(pk=exclude_event_id)
    if exclude_batch_id is not None:
        events = events.exclude(batch_id=exclude_batch_id)
    counts = dict(events.order_by().values("risk_level").annotate(n=Count("id")).values_list("risk_level", "n"))
    return {level: counts.get(level, 0) for level, _ in RiskLevel.choices}
