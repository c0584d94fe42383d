"""The built-in rules analyzer ``rules-v1`` (CONTRACT §4.6.3): a verdict from class weights and context.

It is always computed: it is the event verdict with the ``rules`` backend, the fallback when the LLM fails, and the
``rules_risk_score`` every EventAudit records. A pure function of the ``BatchContext``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

from django.conf import settings

from events.risk import risk_level_for
from pipeline.analyzers.base import BatchContext, DetectionContext, Verdict

RULES_MODEL = "rules-v1"

WEAPON_CLASSES = frozenset({"knife", "scissors", "baseball bat"})
VEHICLE_CLASSES = frozenset({"car", "truck", "bus", "motorcycle", "bicycle"})
ANIMAL_CLASSES = frozenset({"dog", "cat", "bird", "horse", "sheep", "cow", "bear"})
OTHER_CLASS_WEIGHT = 10

RECOMMENDED_ACTIONS = {
    "low": "No action needed",
    "medium": "Review when convenient",
    "high": "Review promptly",
    "critical": "Check the camera now",
}


def class_weight(object_type: str) -> int:
    name = object_type.lower()
    if name in WEAPON_CLASSES:
        return 60
    if name == "person":
        return 25
    if name in VEHICLE_CLASSES:
        return 15
    if name in ANIMAL_CLASSES or name == "motion":
        return 5
    return OTHER_CLASS_WEIGHT


def recommended_action_for(level: str) -> str:
    return RECOMMENDED_ACTIONS[level]


def local_time(moment: dt.datetime, timezone_name: str) -> dt.datetime:
    return moment.astimezone(ZoneInfo(timezone_name))


def is_night(moment: dt.datetime) -> bool:
    """Local night is 22:00–05:59 (``moment`` already in local time)."""
    return moment.hour >= 22 or moment.hour < 6


def first_detection_time(ctx: BatchContext) -> dt.datetime:
    """The batch's first detection time in local time (CONTRACT §10 on §4.6)."""
    moment = ctx.detections[0].detected_at if ctx.detections else ctx.started_at
    return local_time(moment, ctx.timezone)


def class_counts(detections: tuple[DetectionContext, ...] | list[DetectionContext]) -> list[tuple[str, int]]:
    """(class, count) pairs, count descending, then class name."""
    counts = Counter(d.object_type.lower() for d in detections)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def counts_text(detections) -> str:
    """``2 person, 1 car`` (count desc, then name)."""
    return ", ".join(f"{count} {name}" for name, count in class_counts(detections))


def _persons(ctx: BatchContext) -> list[DetectionContext]:
    return [d for d in ctx.detections if d.object_type.lower() == "person"]


def _person_in_entry_point(ctx: BatchContext) -> bool:
    entry_points = {zone.id for zone in ctx.zones if zone.zone_type == "entry_point"}
    return any(entry_points.intersection(d.zone_ids) for d in _persons(ctx))


def _factors(ctx: BatchContext) -> list[tuple[str, int]]:
    """Every applied factor as (description, points), the base first."""
    persons = _persons(ctx)
    factors: list[tuple[str, int]] = []
    if ctx.detections:
        top = max(ctx.detections, key=lambda d: (class_weight(d.object_type), d.object_type))
        factors.append((f"base: highest class weight ({top.object_type.lower()})", class_weight(top.object_type)))
    if is_night(first_detection_time(ctx)):
        if persons:
            factors.append(("night time (22:00-05:59) with a person", 25))
        else:
            factors.append(("night time (22:00-05:59)", 5))
    if _person_in_entry_point(ctx):
        factors.append(("person in an entry-point zone", 15))
    anomaly = ctx.anomaly_score
    if anomaly is not None and anomaly >= settings.BASELINE_ANOMALY_THRESHOLD:
        factors.append((f"unusual activity (anomaly score {anomaly:.2f})", 10))
    if any(d.entity is not None and d.entity.trust_status == "untrusted" for d in persons):
        factors.append(("person matched an untrusted entity", 20))
    if persons and all(d.entity is not None and d.entity.trust_status == "trusted" for d in persons):
        factors.append(("every person matched a trusted entity", -25))
    if ctx.detections and max(d.confidence for d in ctx.detections) < 0.6:
        factors.append(("low detection confidence (highest < 0.60)", -10))
    return factors


def _points(points: int) -> str:
    return f"{points:+d}"


def rules_verdict(ctx: BatchContext) -> Verdict:
    factors = _factors(ctx)
    score = max(0, min(100, sum(points for _, points in factors)))
    level = risk_level_for(score)
    when = first_detection_time(ctx).strftime("%H:%M")
    what = counts_text(ctx.detections) or "Nothing"
    summary = f"{what} detected on {ctx.camera_name} at {when}."
    applied = "; ".join(f"{text} {_points(points)}" for text, points in factors) or "no factors"
    reasoning = f"Rules analyzer {RULES_MODEL}: {applied}. Score {score} ({level})."
    return Verdict(
        risk_score=score,
        risk_level=level,
        summary=summary[:1000],
        reasoning=reasoning[:4000],
        recommended_action=recommended_action_for(level),
    )
