"""Activity and class baselines and the anomaly score (CONTRACT §4.11, §2.2 baseline endpoints).

Local time is ``settings.TIME_ZONE``. A camera's covered span runs from max(now − W days, camera ``created_at``)
rounded up to the next full local hour, to the start of the current local hour. "now − W days" is taken on the
local wall clock, so when an hour ends the hour leaving the window is the current local weekday-hour W days ago,
across DST changes too (bar a spring-forward gap W days back, which the nightly rebuild covers): the hourly
update recomputes exactly those two slots. Hours are counted as real
(UTC) hours mapped to their local weekday and hour, so a DST day has 23 or 25 of them.

Counting is done by the database (one grouped aggregate per kind, every camera at once); only the ≤ W × 24 hours
of each span are walked in Python to count slot occurrences.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.functions import ExtractHour, ExtractIsoWeekDay
from django.utils import timezone

from cameras.models import Camera
from hsi.api.errors import NotFound
from hsi.api.pagination import PageRequest
from hsi.dispatch import enqueue
from system.services import Actor, audit_record

from . import selectors
from .models import ActivityBaseline, ClassBaseline, Detection

HOUR = dt.timedelta(hours=1)
DAYS = range(7)
HOURS = range(24)
PEAK_FACTOR = 1.5
TOP_CLASSES = 10


# --- Local hours and spans ----------------------------------------------------------------------------------------


def local_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def floor_local_hour(instant: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The start (UTC) of the local hour holding ``instant``."""
    local = instant.astimezone(zone)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(dt.UTC)


def ceil_local_hour(instant: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """``instant`` when it starts a local hour, else the start (UTC) of the next local hour."""
    floor = floor_local_hour(instant, zone)
    return floor if floor == instant else floor_local_hour(floor + HOUR, zone)


def local_slot(instant: dt.datetime, zone: ZoneInfo) -> tuple[int, int]:
    """(day of week 0 = Monday, hour) of ``instant`` in local time."""
    local = instant.astimezone(zone)
    return local.weekday(), local.hour


@dataclass(frozen=True)
class Span:
    """The whole local hours a camera's baseline covers: [start, end), both local hour starts (UTC)."""

    start: dt.datetime
    end: dt.datetime

    @property
    def coverage_days(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0) / 86400

    @property
    def is_empty(self) -> bool:
        return self.end <= self.start

    def hour_starts(self) -> Iterable[dt.datetime]:
        hour = self.start
        while hour < self.end:
            yield hour
            hour += HOUR

    def slot_samples(self, zone: ZoneInfo) -> Counter:
        """How many whole hours of the span fall on each local (weekday, hour)."""
        return Counter(local_slot(hour, zone) for hour in self.hour_starts())

    def hour_samples(self, zone: ZoneInfo) -> Counter:
        """How many whole hours of the span fall on each local hour of the day."""
        return Counter(local_slot(hour, zone)[1] for hour in self.hour_starts())


def camera_span(created_at: dt.datetime, now: dt.datetime, zone: ZoneInfo) -> Span:
    window_start = now.astimezone(zone) - dt.timedelta(days=settings.BASELINE_WINDOW_DAYS)  # wall-clock days
    start = ceil_local_hour(max(window_start.astimezone(dt.UTC), created_at), zone)
    end = floor_local_hour(now, zone)
    return Span(start=min(start, end), end=end)


def _spans(cameras: Iterable[tuple[str, dt.datetime]], now: dt.datetime, zone: ZoneInfo) -> dict[str, Span]:
    return {camera_id: camera_span(created_at, now, zone) for camera_id, created_at in cameras}


def _in_spans(spans: Mapping[str, Span]) -> Q | None:
    """Detections of each camera inside its own span; None when no span covers an hour."""
    condition = None
    for camera_id, span in spans.items():
        if span.is_empty:
            continue
        term = Q(camera_id=camera_id, detected_at__gte=span.start, detected_at__lt=span.end)
        condition = term if condition is None else condition | term
    return condition


def _local_detections(condition: Q, zone: ZoneInfo):
    return (
        Detection.objects.filter(condition)
        .annotate(
            local_dow=ExtractIsoWeekDay("detected_at", tzinfo=zone), local_hour=ExtractHour("detected_at", tzinfo=zone)
        )
        .order_by()
    )


def _slot_counts(condition: Q, zone: ZoneInfo, only: Q | None = None) -> dict[tuple[str, int, int], int]:
    """{(camera, weekday 0–6, hour): detections}."""
    rows = _local_detections(condition, zone)
    if only is not None:
        rows = rows.filter(only)
    rows = rows.values("camera_id", "local_dow", "local_hour").annotate(n=Count("id"))
    return {(row["camera_id"], int(row["local_dow"]) - 1, int(row["local_hour"])): row["n"] for row in rows}


def _class_counts(condition: Q, zone: ZoneInfo, hours: set[int] | None = None) -> dict[tuple[str, str, int], int]:
    """{(camera, class, hour): detections}."""
    rows = _local_detections(condition, zone)
    if hours is not None:
        rows = rows.filter(local_hour__in=hours)
    rows = rows.values("camera_id", "object_type", "local_hour").annotate(n=Count("id"))
    return {(row["camera_id"], row["object_type"], int(row["local_hour"])): row["n"] for row in rows}


# --- Writes ---------------------------------------------------------------------------------------------------------

ALL_SLOTS = tuple((day, hour) for day in DAYS for hour in HOURS)


def baselines_rebuild(camera_id: str | None = None, *, now: dt.datetime | None = None) -> int:
    """Recompute every activity slot and class row of one camera (or all); returns the cameras rebuilt.

    A camera whose span holds no whole hour yet (created this hour) is left without baseline rows.
    """
    now = now or timezone.now()
    zone = local_zone()
    cameras = Camera.objects.order_by("pk")
    if camera_id is not None:
        cameras = cameras.filter(pk=camera_id)
    spans = _spans(cameras.values_list("id", "created_at"), now, zone)
    if not spans:
        return 0
    activity, classes = _recomputed_rows(spans, now, zone, ALL_SLOTS)
    with transaction.atomic():
        ActivityBaseline.objects.filter(camera_id__in=[cam for cam, span in spans.items() if span.is_empty]).delete()
        _upsert_activity(activity)
        _upsert_classes(classes)
        _delete_class_rows_except(list(spans), classes)
    return len(spans)


def baselines_update_hour(now: dt.datetime | None = None) -> int:
    """Recompute, for every camera, the activity slot and the class rows of the local hour that just ended.

    The slot and class rows of the current local hour are recomputed too: its oldest hour has just left the
    window, so after this run every row equals what a full rebuild would give. Returns the cameras updated.
    """
    now = now or timezone.now()
    zone = local_zone()
    hour_end = floor_local_hour(now, zone)
    ended = local_slot(floor_local_hour(hour_end - dt.timedelta(microseconds=1), zone), zone)
    slots = tuple(dict.fromkeys((ended, local_slot(hour_end, zone))))
    spans = {
        cam: span
        for cam, span in _spans(Camera.objects.values_list("id", "created_at"), now, zone).items()
        if not span.is_empty
    }
    if not spans:
        return 0
    activity, classes = _recomputed_rows(spans, now, zone, slots)
    with transaction.atomic():
        _upsert_activity(activity)
        _upsert_classes(classes)
        _delete_class_rows_except(list(spans), classes, hours={hour for _, hour in slots})
    return len(spans)


def _recomputed_rows(
    spans: Mapping[str, Span], now: dt.datetime, zone: ZoneInfo, slots: tuple[tuple[int, int], ...]
) -> tuple[list[ActivityBaseline], list[ClassBaseline]]:
    """Fresh activity rows of ``slots`` and class rows of their hours, for every camera with a non-empty span."""
    condition = _in_spans(spans)
    hours = {hour for _, hour in slots}
    everything = len(slots) == len(ALL_SLOTS)
    slot_counts, class_counts = {}, {}
    if condition is not None:
        only = None
        if not everything:
            only = Q()
            for day, hour in slots:
                only |= Q(local_dow=day + 1, local_hour=hour)
        slot_counts = _slot_counts(condition, zone, only)
        class_counts = _class_counts(condition, zone, None if everything else hours)
    activity, hour_samples = [], {}
    for cam, span in spans.items():
        if span.is_empty:
            continue
        slot_samples, hour_samples[cam] = span.slot_samples(zone), span.hour_samples(zone)
        activity.extend(
            _activity_row(cam, day, hour, slot_counts.get((cam, day, hour), 0), slot_samples[(day, hour)], now)
            for day, hour in slots
        )
    classes = [
        _class_row(cam, object_class, hour, count, hour_samples[cam][hour], now)
        for (cam, object_class, hour), count in sorted(class_counts.items())
    ]
    return activity, classes


def _activity_row(camera_id: str, day: int, hour: int, count: int, samples: int, now: dt.datetime):
    return ActivityBaseline(
        camera_id=camera_id,
        day_of_week=day,
        hour=hour,
        avg_count=count / samples if samples else 0.0,
        sample_count=samples,
        last_updated=now,
    )


def _class_row(camera_id: str, object_class: str, hour: int, count: int, samples: int, now: dt.datetime):
    return ClassBaseline(
        camera_id=camera_id,
        object_class=object_class,
        hour=hour,
        frequency=count / samples if samples else 0.0,
        sample_count=samples,
        last_updated=now,
    )


def _upsert_activity(rows: list[ActivityBaseline]) -> None:
    if rows:
        ActivityBaseline.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["camera", "day_of_week", "hour"],
            update_fields=["avg_count", "sample_count", "last_updated"],
        )


def _upsert_classes(rows: list[ClassBaseline]) -> None:
    if rows:
        ClassBaseline.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["camera", "object_class", "hour"],
            update_fields=["frequency", "sample_count", "last_updated"],
        )


def _delete_class_rows_except(camera_ids: list[str], keep: list[ClassBaseline], *, hours: set[int] | None = None):
    """Class rows of these cameras (at ``hours`` only, if given) that the recomputation did not produce: classes
    no longer seen in the span."""
    kept = {(row.camera_id, row.object_class, row.hour) for row in keep}
    existing = ClassBaseline.objects.filter(camera_id__in=camera_ids)
    if hours is not None:
        existing = existing.filter(hour__in=hours)
    rows = existing.values_list("pk", "camera_id", "object_class", "hour")
    stale = [pk for pk, *key in rows if tuple(key) not in kept]
    if stale:
        ClassBaseline.objects.filter(pk__in=stale).delete()


def baseline_rebuild_request(camera_id: str, *, actor: Actor) -> None:
    """Queue ``events.rebuild_baselines(camera_id)`` after commit and audit it; 404 for an unknown camera."""
    with transaction.atomic():
        if not Camera.objects.filter(pk=camera_id).exists():
            raise NotFound(f"Camera {camera_id} not found")
        audit_record(actor, "baseline_rebuilt", "camera", camera_id, details={"status": "queued"})
        enqueue("events.rebuild_baselines", camera_id)


# --- Anomaly score --------------------------------------------------------------------------------------------------


def anomaly_score(class_frequencies: Mapping[str, float], observed: int, expected: float) -> float:
    """round(max(max rarity, activity), 3): rarity(c) = 1 / (1 + 4 × frequency), activity =
    clamp((observed / max(expected, 1) − 1) / 4, 0, 1)."""
    rarity = max((1.0 / (1.0 + 4.0 * frequency) for frequency in class_frequencies.values()), default=0.0)
    activity = min(max((observed / max(expected, 1.0) - 1.0) / 4.0, 0.0), 1.0)
    return round(max(rarity, activity), 3)


def _has_baseline_rows(camera_id: str) -> bool:
    return (
        ActivityBaseline.objects.filter(camera_id=camera_id).exists()
        or ClassBaseline.objects.filter(camera_id=camera_id).exists()
    )


def _observed_last_hour(camera_id: str, at: dt.datetime) -> int:
    return Detection.objects.filter(camera_id=camera_id, detected_at__gte=at - HOUR, detected_at__lt=at).count()


def _class_frequencies(camera_id: str, classes: Iterable[str], hour: int) -> dict[str, float]:
    wanted = list(dict.fromkeys(classes))
    stored = dict(
        ClassBaseline.objects.filter(camera_id=camera_id, hour=hour, object_class__in=wanted).values_list(
            "object_class", "frequency"
        )
    )
    return {name: float(stored.get(name, 0.0)) for name in wanted}


def anomaly_context(camera_id: str, classes: Iterable[str], at: dt.datetime) -> dict | None:
    """What the baseline says about a batch of ``classes`` ending at ``at``; None when the camera has no baseline
    rows at all (or does not exist)."""
    created_at = Camera.objects.filter(pk=camera_id).values_list("created_at", flat=True).first()
    if created_at is None:
        return None
    zone = local_zone()
    day, hour = local_slot(at, zone)
    expected = (
        ActivityBaseline.objects.filter(camera_id=camera_id, day_of_week=day, hour=hour)
        .values_list("avg_count", flat=True)
        .first()
    )
    if expected is None and not _has_baseline_rows(camera_id):
        return None
    expected = float(expected or 0.0)
    coverage_days = camera_span(created_at, at, zone).coverage_days
    established = coverage_days >= settings.BASELINE_MIN_DAYS
    observed = _observed_last_hour(camera_id, at)
    frequencies = _class_frequencies(camera_id, classes, hour)
    return {
        "established": established,
        "coverage_days": coverage_days,
        "expected_count": expected,
        "observed_last_hour": observed,
        "class_frequencies": frequencies,
        "anomaly_score": anomaly_score(frequencies, observed, expected) if established else None,
    }


# --- Reads for the API ------------------------------------------------------------------------------------------


def baseline_summary(camera_id: str, *, now: dt.datetime | None = None) -> dict:
    """The Baseline JSON of CONTRACT §2.2; 404 for an unknown camera."""
    camera = Camera.objects.filter(pk=camera_id).only("id", "created_at").first()
    if camera is None:
        raise NotFound(f"Camera {camera_id} not found")
    now = now or timezone.now()
    zone = local_zone()
    coverage_days = camera_span(camera.created_at, now, zone).coverage_days
    activity = _activity_slots(camera.id)
    classes = [
        {"object_class": c, "hour": h, "frequency": f, "sample_count": n}
        for c, h, f, n in ClassBaseline.objects.filter(camera_id=camera.id)
        .order_by("object_class", "hour")
        .values_list("object_class", "hour", "frequency", "sample_count")
    ]
    peak = max((slot for slot in activity if slot["avg_count"] > 0), key=lambda s: s["avg_count"], default=None)
    established = coverage_days >= settings.BASELINE_MIN_DAYS
    return {
        "camera_id": camera.id,
        "established": established,
        "coverage_days": coverage_days,
        "window_days": settings.BASELINE_WINDOW_DAYS,
        "activity": activity,
        "classes": classes,
        "peak_day": peak["day_of_week"] if peak else None,
        "peak_hour": peak["hour"] if peak else None,
        "top_classes": _top_classes(classes),
        "current": _current(camera.id, activity, bool(classes), established, now, zone),
    }


def _activity_slots(camera_id: str) -> list[dict]:
    stored = {
        (day, hour): (avg, samples)
        for day, hour, avg, samples in ActivityBaseline.objects.filter(camera_id=camera_id).values_list(
            "day_of_week", "hour", "avg_count", "sample_count"
        )
    }
    sampled = [avg for avg, samples in stored.values() if samples > 0]
    mean = sum(sampled) / len(sampled) if sampled else 0.0
    slots = []
    for day in DAYS:
        for hour in HOURS:
            avg, samples = stored.get((day, hour), (0.0, 0))
            slots.append(
                {
                    "day_of_week": day,
                    "hour": hour,
                    "avg_count": avg,
                    "sample_count": samples,
                    "is_peak": bool(sampled) and avg > PEAK_FACTOR * mean,
                }
            )
    return slots


def _top_classes(classes: list[dict]) -> list[dict]:
    per_day: dict[str, float] = {}
    for row in classes:
        per_day[row["object_class"]] = per_day.get(row["object_class"], 0.0) + row["frequency"]
    ranked = sorted(per_day.items(), key=lambda item: (-item[1], item[0]))[:TOP_CLASSES]
    return [{"object_class": name, "per_day": value} for name, value in ranked]


def _current(
    camera_id: str, activity: list[dict], has_class_rows: bool, established: bool, now: dt.datetime, zone: ZoneInfo
) -> dict:
    day, hour = local_slot(now, zone)
    expected = activity[day * 24 + hour]["avg_count"]
    recent = Detection.objects.filter(camera_id=camera_id, detected_at__gte=now - HOUR, detected_at__lt=now)
    observed = recent.count()
    score = None
    if established and (has_class_rows or any(slot["sample_count"] for slot in activity)):
        classes = recent.order_by().values_list("object_type", flat=True).distinct()
        score = anomaly_score(_class_frequencies(camera_id, classes, hour), observed, expected)
    return {
        "day_of_week": day,
        "hour": hour,
        "expected_count": expected,
        "observed_last_hour": observed,
        "anomaly_score": score,
    }


def baseline_anomaly_page(camera_id: str, *, days: int, page: PageRequest, now: dt.datetime | None = None) -> dict:
    """Live events of the camera started within ``days`` whose anomaly score reaches the threshold, newest
    first, as event list items; 404 for an unknown camera."""
    if not Camera.objects.filter(pk=camera_id).exists():
        raise NotFound(f"Camera {camera_id} not found")
    since = (now or timezone.now()) - dt.timedelta(days=days)
    threshold = settings.BASELINE_ANOMALY_THRESHOLD

    def refine(queryset):
        return queryset.filter(camera_id=camera_id, anomaly_score__gte=threshold, started_at__gte=since)

    body = selectors.event_page(page, refine=refine)
    body["pagination"]["next_cursor"] = None  # not a cursor-capable list (CONTRACT §0.5)
    return body
