"""Entity reads (CONTRACT §2.9): list pages, detail with recent detections and stats, as plain dicts.

A list page costs two queries whatever its size (the page from ``.values()`` rows, and its total); the embedding
columns are never read.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from hsi.api.errors import NotFound
from hsi.api.pagination import PageRequest, envelope, offset_slice
from hsi.timeutils import utc_iso as iso

from .models import Detection, Entity, EntityType, TrustStatus

ENTITY_COLUMNS = (
    "id",
    "entity_type",
    "label",
    "trust_status",
    "notes",
    "first_seen_at",
    "last_seen_at",
    "detection_count",
    "cameras_seen",
    "primary_detection_id",
    "created_at",
    "updated_at",
)
RECENT_DETECTIONS = 20
REPEAT_VISITOR_DETECTIONS = 2

Refine = Callable[[QuerySet], QuerySet]


def _unfiltered(queryset: QuerySet) -> QuerySet:
    return queryset


def all_entities() -> QuerySet[Entity]:
    return Entity.objects.all()


def seen_on_cameras(queryset: QuerySet[Entity], camera_ids: Iterable[str]) -> QuerySet[Entity]:
    """Entities with at least one detection on one of ``camera_ids`` (a semi-join: no duplicate rows)."""
    detections = Detection.objects.filter(entity_id=OuterRef("pk"), camera_id__in=list(camera_ids))
    return queryset.filter(Exists(detections))


def media_url(detection_id: int | None) -> str | None:
    return f"/api/media/detections/{detection_id}" if detection_id is not None else None


def entity_json(row: dict) -> dict:
    return {
        "id": str(row["id"]),
        "entity_type": row["entity_type"],
        "label": row["label"],
        "trust_status": row["trust_status"],
        "notes": row["notes"],
        "first_seen_at": iso(row["first_seen_at"]),
        "last_seen_at": iso(row["last_seen_at"]),
        "detection_count": row["detection_count"],
        "cameras_seen": row["cameras_seen"] or [],
        "primary_detection_id": row["primary_detection_id"],
        "thumbnail_url": media_url(row["primary_detection_id"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def entity_page(page: PageRequest, *, refine: Refine = _unfiltered) -> dict:
    """One page of Entity JSON, most recently seen first."""
    queryset = refine(all_entities())
    rows, has_more = offset_slice(queryset.order_by("-last_seen_at", "-id").values(*ENTITY_COLUMNS), page)
    total = queryset.order_by().count()
    return envelope([entity_json(row) for row in rows], total=total, page=page, has_more=has_more)


def entity_exists(entity_id: uuid.UUID) -> bool:
    return Entity.objects.filter(pk=entity_id).exists()


def entity_detail(entity_id: uuid.UUID) -> dict:
    """Entity JSON plus its ``recent_detections`` (at most 20, newest first); 404 problem when unknown."""
    row = Entity.objects.filter(pk=entity_id).values(*ENTITY_COLUMNS).first()
    if row is None:
        raise NotFound(f"Entity {entity_id} not found")
    recent = (
        Detection.objects.filter(entity_id=entity_id)
        .order_by("-detected_at", "-id")
        .values_list("id", "camera_id", "detected_at", "confidence", "entity_similarity")[:RECENT_DETECTIONS]
    )
    item = entity_json(row)
    item["recent_detections"] = [
        {
            "detection_id": detection_id,
            "camera_id": camera_id,
            "detected_at": iso(detected_at),
            "confidence": confidence,
            "similarity": similarity,
            "thumbnail_url": media_url(detection_id),
        }
        for detection_id, camera_id, detected_at, confidence, similarity in recent
    ]
    return item


def entity_stats(queryset: QuerySet[Entity], *, now: dt.datetime | None = None) -> dict:
    """``{total_entities, by_type, by_trust_status, repeat_visitors, seen_last_24h}`` over ``queryset`` (every type
    and trust status appears, with 0 when none): one aggregate query."""
    now = now or timezone.now()
    types, statuses = EntityType.values, TrustStatus.values
    aggregates = {
        "total": Count("id"),
        "repeat": Count("id", filter=Q(detection_count__gte=REPEAT_VISITOR_DETECTIONS)),
        "recent": Count("id", filter=Q(last_seen_at__gte=now - dt.timedelta(hours=24))),
    }
    aggregates |= {f"type_{name}": Count("id", filter=Q(entity_type=name)) for name in types}
    aggregates |= {f"trust_{name}": Count("id", filter=Q(trust_status=name)) for name in statuses}
    totals = queryset.order_by().aggregate(**aggregates)
    return {
        "total_entities": totals["total"],
        "by_type": {name: totals[f"type_{name}"] for name in types},
        "by_trust_status": {name: totals[f"trust_{name}"] for name in statuses},
        "repeat_visitors": totals["repeat"],
        "seen_last_24h": totals["recent"],
    }
