"""Pure rule evaluation (CONTRACT §5.2–5.5): conditions, schedules and dedup keys, over plain data.

Nothing here touches the database: the services load an event into ``EventFacts`` (its detections and the enabled
zones of its camera) and hand it to ``evaluate_event_rule`` together with a rule (an ``AlertRule`` or any object
with the same attributes, such as an unsaved rule of a backtest).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cameras.geometry import point_in_polygon

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEDUP_VARIABLES = ("camera_id", "rule_id", "object_type", "severity")
DEDUP_KEY_MAX_LENGTH = 255
NO_OBJECT_TYPE = "none"
_UNSAFE_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9_:.\-]")
_TEMPLATE_TOKEN = re.compile(r"\{([^{}]*)\}")
_LITERAL = re.compile(r"[A-Za-z0-9_:.\-]*")

NOT_MATCHED = "not_matched"
IN_COOLDOWN = "in_cooldown"
SUPPRESSED_BY_FEEDBACK = "suppressed_by_feedback"
EVALUATION_ERROR = "evaluation_error"


@dataclass(frozen=True)
class DetectionFacts:
    id: int
    object_type: str
    confidence: float
    detected_at: dt.datetime
    bbox_x: int
    bbox_y: int
    bbox_width: int
    bbox_height: int
    image_width: int | None
    image_height: int | None

    def centre(self) -> tuple[float, float] | None:
        """The bbox centre normalised by the frame size; None without a (positive) frame size."""
        if not self.image_width or not self.image_height:
            return None
        return (
            (self.bbox_x + self.bbox_width / 2) / self.image_width,
            (self.bbox_y + self.bbox_height / 2) / self.image_height,
        )


@dataclass(frozen=True)
class ZoneFacts:
    id: str
    name: str
    coordinates: Sequence[Sequence[float]]


@dataclass(frozen=True)
class EventFacts:
    """What rule evaluation needs of one event. ``zones`` are the *enabled* zones of the event's camera."""

    id: int | None
    camera_id: str
    risk_score: int | None
    started_at: dt.datetime
    detections: Sequence[DetectionFacts] = ()
    zones: Sequence[ZoneFacts] = ()


@dataclass(frozen=True)
class RuleMatch:
    matches: bool
    matched_conditions: list[str] = field(default_factory=list)
    object_type: str | None = None  # class of the earliest matching detection; None without detection conditions
    matched_zone_ids: list[str] = field(default_factory=list)


def number_text(value: float | int) -> str:
    """Python's shortest repr of a number (``0.9``, ``70``)."""
    return repr(value)


def _list_text(values: Sequence[Any]) -> str:
    return "[" + ", ".join(str(value) for value in values) + "]"


def has_detection_conditions(rule: Any) -> bool:
    return bool(rule.object_types) or rule.min_confidence is not None or bool(rule.zone_ids)


def evaluate_event_rule(rule: Any, event: EventFacts, *, clock: dt.datetime | None = None) -> RuleMatch:
    """Whether every present condition of an ``event`` rule holds for ``event`` (CONTRACT §5.2).

    ``clock`` overrides the schedule clock (the rule test's ``test_time``); by default it is ``started_at``.
    """
    conditions: list[str] = []
    if rule.risk_threshold is not None:
        if event.risk_score is None or event.risk_score < rule.risk_threshold:
            return RuleMatch(False)
        conditions.append(f"risk_score >= {number_text(rule.risk_threshold)}")
    if rule.camera_ids:
        if event.camera_id not in rule.camera_ids:
            return RuleMatch(False)
        conditions.append(f"camera_id in {_list_text(rule.camera_ids)}")
    object_type = None
    zone_ids: list[str] = []
    if has_detection_conditions(rule):
        found = first_matching_detection(rule, event.detections, event.zones)
        if found is None:
            return RuleMatch(False)
        detection, zone_ids = found
        object_type = detection.object_type.lower()
        if rule.object_types:
            conditions.append(f"object_type in {_list_text(rule.object_types)}")
        if rule.min_confidence is not None:
            conditions.append(f"confidence >= {number_text(rule.min_confidence)}")
        if rule.zone_ids:
            conditions.append(f"zone in {_list_text(zone_ids)}")
    if rule.schedule:
        if not schedule_allows(rule.schedule, clock or event.started_at):
            return RuleMatch(False)
        conditions.append("within_schedule")
    return RuleMatch(True, conditions or ["no_conditions"], object_type, zone_ids)


def evaluate_offline_rule(rule: Any, camera_id: str, clock: dt.datetime) -> RuleMatch:
    """A ``camera_offline`` rule (CONTRACT §5.5): only ``camera_ids`` and ``schedule`` (clock = transition time)."""
    conditions: list[str] = []
    if rule.camera_ids:
        if camera_id not in rule.camera_ids:
            return RuleMatch(False)
        conditions.append(f"camera_id in {_list_text(rule.camera_ids)}")
    if rule.schedule:
        if not schedule_allows(rule.schedule, clock):
            return RuleMatch(False)
        conditions.append("within_schedule")
    return RuleMatch(True, conditions or ["no_conditions"], None, [])


def first_matching_detection(
    rule: Any, detections: Sequence[DetectionFacts], zones: Sequence[ZoneFacts]
) -> tuple[DetectionFacts, list[str]] | None:
    """The earliest detection (by ``detected_at``, then id) satisfying every detection condition together, with
    the ids of the rule's zones containing its centre; None when no detection does."""
    wanted_classes = {name.lower() for name in rule.object_types or ()}
    wanted_zones = [str(zone_id).lower() for zone_id in rule.zone_ids or ()]
    candidate_zones = [zone for zone in zones if str(zone.id).lower() in wanted_zones]
    for detection in sorted(detections, key=lambda d: (d.detected_at, d.id)):
        if wanted_classes and detection.object_type.lower() not in wanted_classes:
            continue
        if rule.min_confidence is not None and detection.confidence < rule.min_confidence:
            continue
        matched_zones: list[str] = []
        if wanted_zones:
            centre = detection.centre()
            if centre is None:
                continue
            matched_zones = [
                str(zone.id) for zone in candidate_zones if point_in_polygon(centre[0], centre[1], zone.coordinates)
            ]
            if not matched_zones:
                continue
        return detection, matched_zones
    return None


# --- schedule (§5.3) --------------------------------------------------------------------------------------------


def parse_hhmm(text: str) -> int:
    """``"22:30"`` → minutes since midnight."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def schedule_allows(schedule: dict | None, clock: dt.datetime) -> bool:
    """Whether ``clock`` falls inside ``schedule`` (CONTRACT §5.3).

    The clock is converted to the schedule's time zone. With start < end the local minute must lie in
    [start, end]; with start > end the window wraps midnight and the weekday test uses the day on which the
    window started; start = end (or no times) means the whole day.
    """
    if not schedule:
        return True
    local = clock.astimezone(zoneinfo.ZoneInfo(schedule.get("timezone") or "UTC"))
    minute = local.hour * 60 + local.minute
    day = local.date()
    start_text, end_text = schedule.get("start_time"), schedule.get("end_time")
    if start_text and end_text:
        start, end = parse_hhmm(start_text), parse_hhmm(end_text)
        if start < end:
            if not start <= minute <= end:
                return False
        elif start > end:
            if minute >= start:
                pass
            elif minute <= end:
                day = day - dt.timedelta(days=1)  # the window opened the evening before
            else:
                return False
    days = [name.lower() for name in schedule.get("days") or ()]
    return not days or WEEKDAYS[day.weekday()] in days


# --- dedup key (§5.4) -------------------------------------------------------------------------------------------


def dedup_template_error(template: str) -> str | None:
    """Why ``template`` is not a valid dedup key template, or None (CONTRACT §5.1)."""
    if not 1 <= len(template) <= DEDUP_KEY_MAX_LENGTH:
        return f"Must be 1 to {DEDUP_KEY_MAX_LENGTH} characters"
    for name in _TEMPLATE_TOKEN.findall(template):
        if name not in DEDUP_VARIABLES:
            allowed = ", ".join("{" + variable + "}" for variable in DEDUP_VARIABLES)
            return f"Unknown variable {{{name}}}; allowed: {allowed}"
    literal = _TEMPLATE_TOKEN.sub("", template)
    if not _LITERAL.fullmatch(literal):
        return "Literal text may only contain letters, digits and _ : . -"
    return None


def dedup_key(template: str, *, camera_id: str, rule_id: Any, object_type: str | None, severity: str) -> str:
    """The template with its variables filled in, unsafe characters replaced by ``_``, at most 255 characters."""
    values = {
        "camera_id": str(camera_id),
        "rule_id": str(rule_id),
        "object_type": object_type or NO_OBJECT_TYPE,
        "severity": str(severity),
    }
    key = _TEMPLATE_TOKEN.sub(lambda token: values.get(token.group(1), token.group(0)), template)
    return _UNSAFE_KEY_CHARACTERS.sub("_", key)[:DEDUP_KEY_MAX_LENGTH]


# --- ordering ---------------------------------------------------------------------------------------------------

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def evaluation_order(rule: Any) -> tuple:
    """Sort key: descending severity, then name, then id (CONTRACT §5.2)."""
    return (-SEVERITY_RANK.get(rule.severity, 0), rule.name, str(rule.id))
