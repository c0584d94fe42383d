"""Notification filtering per alert × channel (CONTRACT §5.7).

``FilterContext.for_alert`` reads what the checks need once per alert (preferences, quiet hours); ``suppression_reason``
is then a pure function of the alert, the channel and that context. ``quiet_hours_cover`` is the coverage rule of a
quiet-hours period, exported for reuse (the notifications API, dashboards).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.conf import settings

from alerts.models import NotificationPreference, QuietHours, SuppressedReason

SEVERITY_ORDER = {"low": 0, "medium": 1, "high": 2, "critical": 3}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_SEVERITIES = ("medium", "high", "critical")


def local_zone() -> dt.tzinfo:
    """The zone of ``TIME_ZONE`` (§0.3), read at call time."""
    return zoneinfo.ZoneInfo(settings.TIME_ZONE or "UTC")


def quiet_hours_cover(start: dt.time, end: dt.time, days: Iterable[str] | None, local: dt.datetime) -> bool:
    """Whether a period (``start``–``end`` local, starting on ``days``) covers the local clock ``local``.

    start < end: ``local`` in [start, end) on a listed day. start > end (wraps midnight): [start, 24:00) on a listed
    day, or [00:00, end) on the day after a listed day. start = end covers nothing (such periods cannot be saved)."""
    listed = {str(day).lower() for day in (days if days is not None else WEEKDAYS)}
    clock = local.time().replace(tzinfo=None)
    weekday = WEEKDAYS[local.weekday()]
    previous_day = WEEKDAYS[(local.weekday() - 1) % 7]
    if start < end:
        return weekday in listed and start <= clock < end
    if start > end:
        return (clock >= start and weekday in listed) or (clock < end and previous_day in listed)
    return False


@dataclass(frozen=True)
class QuietPeriod:
    start_time: dt.time
    end_time: dt.time
    days: Sequence[str] | None
    allow_critical: bool
    camera_id: str | None = None

    def blocks(self, severity: str, local: dt.datetime) -> bool:
        if severity == "critical" and self.allow_critical:
            return False
        return quiet_hours_cover(self.start_time, self.end_time, self.days, local)


@dataclass(frozen=True)
class Preferences:
    """The effective preferences for one camera: the override's fields where set, else the global row's."""

    globally_enabled: bool
    camera_enabled: bool
    severities: Sequence[str]
    min_risk_score: int


@dataclass(frozen=True)
class FilterContext:
    notifications_enabled: bool
    preferences: Preferences
    quiet_periods: Sequence[QuietPeriod] = field(default_factory=tuple)
    zone: dt.tzinfo = dt.UTC

    @classmethod
    def for_alert(cls, alert) -> FilterContext:
        """Read the global preference, the camera's override and the enabled quiet hours that apply to its camera."""
        rows = {row.camera_id: row for row in NotificationPreference.objects.filter(camera__isnull=True)}
        rows.update({row.camera_id: row for row in NotificationPreference.objects.filter(camera_id=alert.camera_id)})
        periods = QuietHours.objects.filter(enabled=True).filter(camera__isnull=True) | QuietHours.objects.filter(
            enabled=True, camera_id=alert.camera_id
        )
        return cls(
            notifications_enabled=bool(settings.NOTIFICATIONS_ENABLED),
            preferences=effective_preferences(rows.get(None), rows.get(alert.camera_id)),
            quiet_periods=tuple(
                QuietPeriod(p.start_time, p.end_time, p.days, p.allow_critical, p.camera_id) for p in periods
            ),
            zone=local_zone(),
        )


def effective_preferences(global_row, camera_row) -> Preferences:
    """Camera override fields where set (null = inherit), else the global row's; a missing global row is the
    default one (§1.3)."""
    global_enabled = global_row.enabled if global_row is not None else True
    global_severities = (global_row.severities if global_row is not None else None) or list(DEFAULT_SEVERITIES)
    global_min_risk = (global_row.min_risk_score if global_row is not None else None) or 0
    if camera_row is None:
        return Preferences(global_enabled, global_enabled, global_severities, global_min_risk)
    return Preferences(
        globally_enabled=global_enabled,
        camera_enabled=camera_row.enabled,
        severities=camera_row.severities if camera_row.severities is not None else global_severities,
        min_risk_score=camera_row.min_risk_score if camera_row.min_risk_score is not None else global_min_risk,
    )


def suppression_reason(
    *,
    severity: str,
    is_event_alert: bool,
    risk_score: int | None,
    created_at: dt.datetime,
    channel_enabled: bool,
    channel_min_severity: str,
    context: FilterContext,
) -> str | None:
    """The first failing check of §5.7 (its ``suppressed_reason``), or None when the delivery may go out."""
    preferences = context.preferences
    if not context.notifications_enabled or not preferences.globally_enabled:
        return SuppressedReason.NOTIFICATIONS_DISABLED.value
    if not preferences.camera_enabled:
        return SuppressedReason.CAMERA_DISABLED.value
    if severity not in preferences.severities:
        return SuppressedReason.SEVERITY_FILTERED.value
    if is_event_alert and (risk_score or 0) < preferences.min_risk_score:
        return SuppressedReason.RISK_BELOW_THRESHOLD.value
    if not channel_enabled:
        return SuppressedReason.CHANNEL_DISABLED.value
    if SEVERITY_ORDER.get(severity, 0) < SEVERITY_ORDER.get(channel_min_severity, 0):
        return SuppressedReason.CHANNEL_MIN_SEVERITY.value
    local = created_at.astimezone(context.zone)
    if any(period.blocks(severity, local) for period in context.quiet_periods):
        return SuppressedReason.QUIET_HOURS.value
    return None


def alert_suppression_reason(alert, channel, context: FilterContext) -> str | None:
    """``suppression_reason`` for a stored alert (with its event loaded) and channel."""
    return suppression_reason(
        severity=alert.severity,
        is_event_alert=alert.kind == "event",
        risk_score=alert.event.risk_score if alert.event_id and alert.event is not None else None,
        created_at=alert.created_at,
        channel_enabled=channel.enabled,
        channel_min_severity=channel.min_severity,
        context=context,
    )
