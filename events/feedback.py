"""Active operator feedback that matches a new event (CONTRACT §5.6): the suppression check and the FEEDBACK counts
of the analysis prompt (§4.6.4).

A feedback row matches an event when it is active (``suppress`` and now < ``suppress_until``), belongs to the same
camera, the event's object types are a non-empty subset of the feedback's, and the local time of day of the event's
``started_at`` lies within ``FEEDBACK_SUPPRESSION_WINDOW_MINUTES`` of the feedback's ``time_of_day_minutes``
(circular around midnight).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable

from django.conf import settings

from .models import EventFeedback, FeedbackType

MINUTES_PER_DAY = 24 * 60
COUNTED_TYPES = (FeedbackType.NORMAL, FeedbackType.FALSE_POSITIVE)


def local_minutes_of_day(instant: dt.datetime) -> int:
    """Minutes since local midnight (``TIME_ZONE``) of an aware instant."""
    local = instant.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE))
    return local.hour * 60 + local.minute


def minutes_apart(a: int, b: int) -> int:
    """Distance between two times of day in minutes, the short way round the clock."""
    gap = abs(a - b) % MINUTES_PER_DAY
    return min(gap, MINUTES_PER_DAY - gap)


def _classes(object_types: Iterable[str] | str) -> frozenset[str]:
    if isinstance(object_types, str):
        object_types = object_types.split(",")
    return frozenset(name.strip().lower() for name in object_types if name and name.strip())


def matching_feedback(
    camera_id: str, object_types: Iterable[str] | str, started_at: dt.datetime, *, now: dt.datetime
) -> list[EventFeedback]:
    """The active feedback rows of ``camera_id`` matching an event of ``object_types`` starting at ``started_at``."""
    classes = _classes(object_types)
    if not classes:
        return []
    minute = local_minutes_of_day(started_at)
    window = settings.FEEDBACK_SUPPRESSION_WINDOW_MINUTES
    rows = EventFeedback.objects.filter(camera_id=camera_id, suppress=True, suppress_until__gt=now).only(
        "id", "feedback_type", "object_types", "time_of_day_minutes"
    )
    return [
        row
        for row in rows
        if classes <= _classes(row.object_types) and minutes_apart(minute, row.time_of_day_minutes) <= window
    ]


def feedback_suppresses(
    camera_id: str, object_types: Iterable[str] | str, started_at: dt.datetime, risk_level: str | None, *, now
) -> bool:
    """Whether a new event is stored ``suppressed``: matching active feedback exists and it is not critical."""
    if risk_level == "critical":
        return False
    return bool(matching_feedback(camera_id, object_types, started_at, now=now))


def feedback_counts(
    camera_id: str, object_types: Iterable[str] | str, started_at: dt.datetime, *, now: dt.datetime
) -> dict[str, int]:
    """``{"normal": n, "false_positive": n}``: matching past events the operator called normal or a false positive."""
    counts = {str(kind): 0 for kind in COUNTED_TYPES}
    for row in matching_feedback(camera_id, object_types, started_at, now=now):
        if row.feedback_type in counts:
            counts[row.feedback_type] += 1
    return counts
