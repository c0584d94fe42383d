"""Builders of ``BatchContext`` test data (plain dataclasses; no database)."""

from __future__ import annotations

import datetime as dt
import itertools

from pipeline.analyzers.base import BaselineContext, BatchContext, DetectionContext, EntityContext, ZoneContext

DAY = dt.datetime(2024, 5, 1, 14, 5, tzinfo=dt.UTC)  # a Wednesday, 14:05 UTC
NIGHT = dt.datetime(2024, 5, 1, 23, 30, tzinfo=dt.UTC)
PORCH = ZoneContext(id="11111111-1111-1111-1111-111111111111", name="Porch", zone_type="entry_point")
DRIVEWAY = ZoneContext(id="22222222-2222-2222-2222-222222222222", name="Driveway", zone_type="driveway")

_ids = itertools.count(1)


def det(
    object_type: str = "person",
    confidence: float = 0.9,
    *,
    at: dt.datetime = DAY,
    offset: float = 0.0,
    zones: tuple[ZoneContext, ...] = (),
    entity: EntityContext | None = None,
    bbox: tuple[int, int, int, int] = (600, 300, 80, 240),
    size: tuple[int | None, int | None] = (1280, 720),
) -> DetectionContext:
    return DetectionContext(
        id=next(_ids),
        object_type=object_type,
        confidence=confidence,
        detected_at=at + dt.timedelta(seconds=offset),
        bbox_x=bbox[0],
        bbox_y=bbox[1],
        bbox_width=bbox[2],
        bbox_height=bbox[3],
        image_width=size[0],
        image_height=size[1],
        zone_ids=tuple(zone.id for zone in zones),
        entity=entity,
    )


def entity(trust: str = "unknown", *, label: str = "", times_seen: int = 3, is_new: bool = False) -> EntityContext:
    return EntityContext(
        id=f"e{next(_ids)}", entity_type="person", trust_status=trust, label=label, times_seen=times_seen, is_new=is_new
    )


def baseline(anomaly: float | None = 0.2, *, established: bool = True, **overrides) -> BaselineContext:
    values = {
        "established": established,
        "coverage_days": 28.0 if established else 2.0,
        "expected_count": 2.5,
        "observed_last_hour": 7,
        "class_frequencies": {"person": 0.4},
        "anomaly_score": anomaly if established else None,
    }
    values.update(overrides)
    return BaselineContext(**values)


def ctx(
    *detections: DetectionContext,
    zones: tuple[ZoneContext, ...] = (PORCH, DRIVEWAY),
    timezone: str = "UTC",
    baseline_context: BaselineContext | None = None,
    history: dict | None = None,
    feedback: dict | None = None,
    camera_name: str = "Front Door",
) -> BatchContext:
    detections = detections or (det(),)
    ordered = tuple(sorted(detections, key=lambda d: (d.detected_at, d.id)))
    return BatchContext(
        camera_id="front_door",
        camera_name=camera_name,
        zones=zones,
        detections=ordered,
        started_at=ordered[0].detected_at,
        ended_at=ordered[-1].detected_at,
        timezone=timezone,
        baseline=baseline_context,
        history=history or {},
        feedback=feedback or {},
    )
