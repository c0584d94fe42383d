"""Event and detection reads: list pages, details and stats as plain dicts (CONTRACT §2.4, §2.5).

Lists are built from ``.values()`` rows, not model instances or DRF serializers, and cost a constant number of
queries whatever the page size (DESIGN §6): the page itself, with camera name and feedback joined and, on
PostgreSQL, each event's detection ids and highest-confidence detection as subqueries (elsewhere one more query
reads the detection links of the page); and a total cached by ``hsi.api.counts``.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable

from django.contrib.postgres.expressions import ArraySubquery
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import (
    Avg,
    Count,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
)
from django.db.models.expressions import RawSQL

from hsi.api.counts import cached_count
from hsi.api.errors import NotFound
from hsi.api.json_sql import PrerenderedItems, iso_sql, json_object_sql
from hsi.api.pagination import PageRequest, envelope, keyset_slice, offset_slice
from hsi.timeutils import utc_iso as iso

from .models import Detection, Event, EventDetection, MediaType, RiskLevel

EVENT_COLUMNS = (
    "id",
    "batch_id",
    "camera_id",
    "camera__name",
    "started_at",
    "ended_at",
    "risk_score",
    "risk_level",
    "summary",
    "recommended_action",
    "analysis_status",
    "is_fast_path",
    "anomaly_score",
    "suppressed",
    "object_types",
    "detection_count",
    "reviewed",
    "reviewed_at",
    "flagged",
    "notes",
    "snooze_until",
    "feedback__feedback_type",
    "deleted_at",
    "version",
    "created_at",
    "updated_at",
)

DETECTION_COLUMNS = (
    "id",
    "camera_id",
    "batch_id",
    "event_link__event_id",
    "entity_id",
    "file_path",
    "file_type",
    "media_type",
    "detected_at",
    "object_type",
    "confidence",
    "bbox_x",
    "bbox_y",
    "bbox_width",
    "bbox_height",
    "image_width",
    "image_height",
    "frame_time_seconds",
    "video_duration",
    "video_codec",
    "video_width",
    "video_height",
    "zone_ids",
    "entity_similarity",
    "enrichment_data",
    "created_at",
)

EVENT_COUNT_SCOPES = ("events",)
DETECTION_COUNT_SCOPES = ("detections",)

Refine = Callable[[QuerySet], QuerySet]
"""Applies a list's filters (``events.api.serializers.QueryFilters.apply``) to a queryset."""


def _unfiltered(queryset: QuerySet) -> QuerySet:
    return queryset


def _text_id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


# --- Event querysets and filter expressions ------------------------------------------------------------------


def live_events() -> QuerySet[Event]:
    return Event.objects.filter(deleted_at__isnull=True)


def deleted_events() -> QuerySet[Event]:
    return Event.objects.filter(deleted_at__isnull=False)


def object_types_any_of(classes: Iterable[str]) -> Q:
    """Events whose comma-joined ``object_types`` holds any of ``classes`` as a whole token.

    Case-sensitive LIKE patterns on the raw (lower-case) column, so the GIN trigram index
    ``events_object_types_trgm`` serves them (DESIGN §6); ``car`` does not match ``cart``.
    """
    condition = Q()
    for name in classes:
        condition |= (
            Q(object_types=name)
            | Q(object_types__startswith=f"{name},")
            | Q(object_types__endswith=f",{name}")
            | Q(object_types__contains=f",{name},")
        )
    return condition


def with_entity(queryset: QuerySet[Event], entity_id: uuid.UUID) -> QuerySet[Event]:
    """Events having at least one detection of ``entity_id`` (a semi-join: no duplicate rows)."""
    linked = EventDetection.objects.filter(event_id=OuterRef("pk"), detection__entity_id=entity_id)
    return queryset.filter(Exists(linked))


# --- Event JSON -------------------------------------------------------------------------------------------------


@functools.cache
def _event_rows(vendor: str, extra: tuple[str, ...]) -> QuerySet:
    """All events as list rows: a template, never evaluated, cloned by every list (resolving the column names of
    ``.values()`` costs more than cloning, DESIGN §6). On PostgreSQL it carries ``linked_detection_ids`` and
    ``best_detection_id`` as subqueries, which the planner evaluates only for the rows of the page (after
    ORDER BY … LIMIT), so a page is one statement; elsewhere ``attach_detection_links`` adds them.
    """
    if vendor != "postgresql":
        return Event.objects.values(*EVENT_COLUMNS, *extra)
    links = EventDetection.objects.filter(event_id=OuterRef("id"))
    return Event.objects.annotate(
        linked_detection_ids=ArraySubquery(links.order_by("detection_id").values("detection_id")),
        best_detection_id=Subquery(links.order_by("-detection__confidence", "detection_id").values("detection_id")[:1]),
    ).values(*EVENT_COLUMNS, *extra, "linked_detection_ids", "best_detection_id")


def event_rows(*extra: str) -> QuerySet:
    """Events as list rows (plus the ``extra`` columns), ready to filter, order and slice."""
    return _event_rows(connections[DEFAULT_DB_ALIAS].vendor, extra).all()


def attach_detection_links(rows: list[dict]) -> None:
    """Without the PostgreSQL subqueries: one query for the links of every event of the page."""
    if not rows or "linked_detection_ids" in rows[0]:
        return
    by_event = {row["id"]: row for row in rows}
    best_confidence: dict[int, float] = {}
    for row in rows:
        row["linked_detection_ids"], row["best_detection_id"] = [], None
    links = (
        EventDetection.objects.filter(event_id__in=list(by_event))
        .order_by("detection_id")
        .values_list("event_id", "detection_id", "detection__confidence")
    )
    for event_id, detection_id, confidence in links:
        row = by_event[event_id]
        row["linked_detection_ids"].append(detection_id)
        if confidence > best_confidence.get(event_id, -1.0):  # ties: the lowest id, as on PostgreSQL
            row["best_detection_id"], best_confidence[event_id] = detection_id, confidence


def event_json(row: dict, reasoning: str | None = None) -> dict:
    best = row["best_detection_id"]
    item = {
        "id": row["id"],
        "batch_id": _text_id(row["batch_id"]),
        "camera_id": row["camera_id"],
        "camera_name": row["camera__name"],
        "started_at": iso(row["started_at"]),
        "ended_at": iso(row["ended_at"]),
        "risk_score": row["risk_score"],
        "risk_level": row["risk_level"],
        "summary": row["summary"],
    }
    if reasoning is not None:
        item["reasoning"] = reasoning
    item.update(
        {
            "recommended_action": row["recommended_action"],
            "analysis_status": row["analysis_status"],
            "is_fast_path": row["is_fast_path"],
            "anomaly_score": row["anomaly_score"],
            "suppressed": row["suppressed"],
            "object_types": [name for name in row["object_types"].split(",") if name],
            "detection_count": row["detection_count"],
            "detection_ids": row["linked_detection_ids"] or [],
            "thumbnail_url": f"/api/media/detections/{best}" if best is not None else None,
            "reviewed": row["reviewed"],
            "reviewed_at": iso(row["reviewed_at"]),
            "flagged": row["flagged"],
            "notes": row["notes"],
            "snooze_until": iso(row["snooze_until"]),
            "feedback_type": row["feedback__feedback_type"],
            "deleted_at": iso(row["deleted_at"]),
            "version": row["version"],
            "created_at": iso(row["created_at"]),
            "updated_at": iso(row["updated_at"]),
        }
    )
    return item


def _event_items(rows: list[dict]) -> list[dict]:
    attach_detection_links(rows)
    return [event_json(row) for row in rows]


def _vendor() -> str:
    return connections[DEFAULT_DB_ALIAS].vendor


def _detection_links(outer: str = "id") -> QuerySet:
    return EventDetection.objects.filter(event_id=OuterRef(outer))


def _event_item_sql() -> str:
    """The event list item of ``event_json`` as one PostgreSQL JSON expression (same keys, same values)."""
    e = '"events_event"'
    links = f"FROM events_eventdetection l WHERE l.event_id = {e}.id"
    plain = lambda *names: [(name, f"{e}.{name}") for name in names]  # noqa: E731
    fields = [
        *plain("id", "batch_id", "camera_id"),
        ("camera_name", f"(SELECT c.name FROM cameras_camera c WHERE c.id = {e}.camera_id)"),
        ("started_at", iso_sql(f"{e}.started_at")),
        ("ended_at", iso_sql(f"{e}.ended_at")),
        *plain("risk_score", "risk_level", "summary", "recommended_action", "analysis_status", "is_fast_path"),
        *plain("anomaly_score", "suppressed"),
        (
            "object_types",
            f"(CASE WHEN {e}.object_types = '' THEN '[]'::json"
            f" ELSE to_json(string_to_array({e}.object_types, ',')) END)",
        ),
        ("detection_count", f"{e}.detection_count"),
        ("detection_ids", f"to_json(ARRAY(SELECT l.detection_id {links} ORDER BY l.detection_id))"),
        (
            "thumbnail_url",
            "('/api/media/detections/' || (SELECT l.detection_id FROM events_eventdetection l"
            f" JOIN events_detection d ON d.id = l.detection_id WHERE l.event_id = {e}.id"
            " ORDER BY d.confidence DESC, l.detection_id LIMIT 1)::text)",
        ),
        ("reviewed", f"{e}.reviewed"),
        ("reviewed_at", iso_sql(f"{e}.reviewed_at")),
        *plain("flagged", "notes"),
        ("snooze_until", iso_sql(f"{e}.snooze_until")),
        ("feedback_type", f"(SELECT f.feedback_type FROM events_eventfeedback f WHERE f.event_id = {e}.id)"),
        ("deleted_at", iso_sql(f"{e}.deleted_at")),
        ("version", f"{e}.version"),
        ("created_at", iso_sql(f"{e}.created_at")),
        ("updated_at", iso_sql(f"{e}.updated_at")),
    ]
    return json_object_sql(fields)


def event_list_item_sql() -> str:
    """PostgreSQL: the list item JSON text of the ``"events_event"`` row in scope (for raw-SQL lists: search)."""
    return _event_item_sql()


@functools.cache
def _event_json_rows() -> QuerySet:
    """PostgreSQL: (item JSON text, started_at, deleted_at, id) per event; a template cloned by every list."""
    rows = Event.objects.annotate(item_json=RawSQL(_event_item_sql(), (), output_field=TextField()))
    return rows.values_list("item_json", "started_at", "deleted_at", "id")


def _event_page_rows(queryset_filter: Q, refine: Refine, page: PageRequest, time_field: str):
    """One page of event items: JSON rendered by PostgreSQL, or dicts built in Python elsewhere."""
    if _vendor() == "postgresql":
        position = {"started_at": 1, "deleted_at": 2}[time_field]
        queryset = refine(_event_json_rows().filter(queryset_filter))
        rows, has_more, next_cursor = keyset_slice(queryset, page, time_field, lambda r: (r[position], r[3]))
        return PrerenderedItems(row[0] for row in rows), has_more, next_cursor
    rows, has_more, next_cursor = keyset_slice(
        refine(event_rows().filter(queryset_filter)), page, time_field, lambda row: (row[time_field], row["id"])
    )
    return _event_items(rows), has_more, next_cursor


def _count_key(queryset: QuerySet) -> QuerySet:
    """The same rows, as the cheapest query to compile into the cache key of its total."""
    return queryset.order_by().values("pk")


def event_page(page: PageRequest, *, refine: Refine = _unfiltered, count_scopes=EVENT_COUNT_SCOPES) -> dict:
    """One page of live event list items, newest ``started_at`` first (offset or keyset cursor)."""
    items, has_more, next_cursor = _event_page_rows(Q(deleted_at__isnull=True), refine, page, "started_at")
    total = cached_count(_count_key(refine(live_events())), count_scopes)
    return envelope(items, total=total, page=page, has_more=has_more, next_cursor=next_cursor)


def deleted_event_page(page: PageRequest) -> dict:
    """The trash: soft-deleted events, most recently deleted first, with a cursor on (deleted_at, id)."""
    items, has_more, next_cursor = _event_page_rows(Q(deleted_at__isnull=False), _unfiltered, page, "deleted_at")
    total = cached_count(_count_key(deleted_events()), EVENT_COUNT_SCOPES)
    return envelope(items, total=total, page=page, has_more=has_more, next_cursor=next_cursor)


def event_list_item(event_id: int) -> dict | None:
    """The list item of one event (also the ``event.created`` message data, CONTRACT §3.6)."""
    rows = list(event_rows().filter(pk=event_id))
    return _event_items(rows)[0] if rows else None


def event_detail(event_id: int) -> dict:
    """The full Event JSON, soft-deleted events included; 404 problem when unknown."""
    rows = list(event_rows("reasoning").filter(pk=event_id))
    if not rows:
        raise NotFound(f"Event {event_id} not found")
    attach_detection_links(rows)
    return event_json(rows[0], rows[0]["reasoning"])


def event_stats(queryset: QuerySet[Event]) -> dict:
    """Totals over non-deleted events (CONTRACT §2.5 stats): one aggregate and one per-camera query."""
    levels = [level for level, _ in RiskLevel.choices]
    statuses = ("llm", "rules", "fallback")
    aggregates = {"total": Count("id"), "unscored": Count("id", filter=Q(risk_score__isnull=True))}
    aggregates |= {f"level_{level}": Count("id", filter=Q(risk_level=level)) for level in levels}
    aggregates |= {f"status_{status}": Count("id", filter=Q(analysis_status=status)) for status in statuses}
    aggregates["reviewed"] = Count("id", filter=Q(reviewed=True))
    totals = queryset.order_by().aggregate(**aggregates)
    by_camera = (
        queryset.order_by()
        .values("camera_id", "camera__name")
        .annotate(event_count=Count("id"))
        .order_by("-event_count", "camera_id")
    )
    return {
        "total_events": totals["total"],
        "events_by_risk_level": {level: totals[f"level_{level}"] for level in levels},
        "unscored_events": totals["unscored"],
        "events_by_camera": [
            {"camera_id": row["camera_id"], "camera_name": row["camera__name"], "event_count": row["event_count"]}
            for row in by_camera
        ],
        "reviewed_events": totals["reviewed"],
        "unreviewed_events": totals["total"] - totals["reviewed"],
        "events_by_analysis_status": {status: totals[f"status_{status}"] for status in statuses},
    }


# --- Detections -------------------------------------------------------------------------------------------------


def all_detections() -> QuerySet[Detection]:
    return Detection.objects.all()


def _detection_json(row: dict) -> dict:
    detection_id = row["id"]
    return {
        "id": detection_id,
        "camera_id": row["camera_id"],
        "batch_id": _text_id(row["batch_id"]),
        "event_id": row["event_link__event_id"],
        "entity_id": _text_id(row["entity_id"]),
        "file_path": row["file_path"],
        "file_type": row["file_type"],
        "media_type": row["media_type"],
        "detected_at": iso(row["detected_at"]),
        "object_type": row["object_type"],
        "confidence": row["confidence"],
        "bbox_x": row["bbox_x"],
        "bbox_y": row["bbox_y"],
        "bbox_width": row["bbox_width"],
        "bbox_height": row["bbox_height"],
        "image_width": row["image_width"],
        "image_height": row["image_height"],
        "frame_time_seconds": row["frame_time_seconds"],
        "video_duration": row["video_duration"],
        "video_codec": row["video_codec"],
        "video_width": row["video_width"],
        "video_height": row["video_height"],
        "zone_ids": row["zone_ids"],
        "entity_similarity": row["entity_similarity"],
        "enrichment_data": row["enrichment_data"],
        "thumbnail_url": f"/api/detections/{detection_id}/thumbnail",
        "image_url": f"/api/detections/{detection_id}/image",
        "video_url": f"/api/detections/{detection_id}/video" if row["media_type"] == MediaType.VIDEO else None,
        "created_at": iso(row["created_at"]),
    }


@functools.cache
def _detection_rows() -> QuerySet:
    """All detections as JSON rows: a template cloned by every list (see ``_event_rows``)."""
    return Detection.objects.values(*DETECTION_COLUMNS)


def _detection_item_sql() -> str:
    """The Detection JSON of ``_detection_json`` as one PostgreSQL JSON expression."""
    d = '"events_detection"'
    plain = lambda *names: [(name, f"{d}.{name}") for name in names]  # noqa: E731
    url = f"'/api/detections/' || {d}.id::text || "
    fields = [
        *plain("id", "camera_id", "batch_id"),
        ("event_id", f"(SELECT l.event_id FROM events_eventdetection l WHERE l.detection_id = {d}.id)"),
        *plain("entity_id", "file_path", "file_type", "media_type"),
        ("detected_at", iso_sql(f"{d}.detected_at")),
        *plain("object_type", "confidence", "bbox_x", "bbox_y", "bbox_width", "bbox_height", "image_width"),
        *plain("image_height", "frame_time_seconds", "video_duration", "video_codec", "video_width", "video_height"),
        *plain("zone_ids", "entity_similarity", "enrichment_data"),
        ("thumbnail_url", f"({url}'/thumbnail')"),
        ("image_url", f"({url}'/image')"),
        ("video_url", f"(CASE WHEN {d}.media_type = 'video' THEN {url}'/video' END)"),
        ("created_at", iso_sql(f"{d}.created_at")),
    ]
    return json_object_sql(fields)


@functools.cache
def _detection_json_rows() -> QuerySet:
    """PostgreSQL: (item JSON text, detected_at, id) per detection; a template cloned by every list."""
    item = RawSQL(_detection_item_sql(), (), output_field=TextField())
    return Detection.objects.annotate(item_json=item).values_list("item_json", "detected_at", "id")


def detection_page(page: PageRequest, *, refine: Refine = _unfiltered, count_scopes=DETECTION_COUNT_SCOPES) -> dict:
    """One page of Detection JSON, newest ``detected_at`` first (offset or keyset cursor)."""
    if _vendor() == "postgresql":
        rows, has_more, next_cursor = keyset_slice(
            refine(_detection_json_rows().all()), page, "detected_at", lambda row: (row[1], row[2])
        )
        items = PrerenderedItems(row[0] for row in rows)
    else:
        rows, has_more, next_cursor = keyset_slice(
            refine(_detection_rows().all()), page, "detected_at", lambda row: (row["detected_at"], row["id"])
        )
        items = [_detection_json(row) for row in rows]
    total = cached_count(_count_key(refine(all_detections())), count_scopes)
    return envelope(items, total=total, page=page, has_more=has_more, next_cursor=next_cursor)


def detection_detail(detection_id: int) -> dict:
    row = _detection_rows().filter(pk=detection_id).first()
    if row is None:
        raise NotFound(f"Detection {detection_id} not found")
    return _detection_json(row)


def event_detection_page(event_id: int, page: PageRequest) -> dict:
    """The detections of one event (soft-deleted events included), oldest first; 404 when the event is unknown."""
    if not Event.objects.filter(pk=event_id).exists():
        raise NotFound(f"Event {event_id} not found")
    rows, has_more = offset_slice(
        _detection_rows().filter(event_link__event_id=event_id).order_by("detected_at", "id"), page
    )
    total = cached_count(_count_key(Detection.objects.filter(event_link__event_id=event_id)), ("events", "detections"))
    return envelope([_detection_json(row) for row in rows], total=total, page=page, has_more=has_more)


def detection_stats(queryset: QuerySet[Detection]) -> dict:
    queryset = queryset.order_by()
    totals = queryset.aggregate(total=Count("id"), average=Avg("confidence"))
    by_class = queryset.values("object_type").annotate(n=Count("id")).order_by("-n", "object_type")
    by_camera = queryset.values("camera_id").annotate(n=Count("id")).order_by("-n", "camera_id")
    average = totals["average"]
    return {
        "total_detections": totals["total"],
        "detections_by_class": {row["object_type"]: row["n"] for row in by_class},
        "detections_by_camera": {row["camera_id"]: row["n"] for row in by_camera},
        "average_confidence": round(average, 4) if average is not None else None,
    }


def entity_detection_page(entity_id: uuid.UUID, page: PageRequest) -> dict:
    """The detections of one entity as Detection JSON, newest first (offset paging; CONTRACT §2.9). The caller
    checks that the entity exists. The total is counted directly (the entity index makes it cheap), since linking
    a detection to an entity does not touch the cached detection totals."""
    ordered = ("-detected_at", "-id")
    if _vendor() == "postgresql":
        rows, has_more = offset_slice(_detection_json_rows().filter(entity_id=entity_id).order_by(*ordered), page)
        items = PrerenderedItems(row[0] for row in rows)
    else:
        rows, has_more = offset_slice(_detection_rows().filter(entity_id=entity_id).order_by(*ordered), page)
        items = [_detection_json(row) for row in rows]
    total = Detection.objects.filter(entity_id=entity_id).count()
    return envelope(items, total=total, page=page, has_more=has_more)
