"""Reads of the application log and the audit trail (CONTRACT §2.13, §2.14)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from hsi.api.errors import NotFound
from hsi.timeutils import utc_iso
from system.models import AuditLog, LogEntry, LogLevel

LEVELS = [level for level, _ in LogLevel.choices]  # lowest first
RECENT_ACTOR_DAYS = 7
RECENT_ACTOR_LIMIT = 10


def levels_at_or_above(level: str) -> list[str]:
    return LEVELS[LEVELS.index(level) :]


def local_day_start(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the current local day (``TIME_ZONE``, CONTRACT §0.3) as aware datetimes."""
    zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    local = (now or timezone.now()).astimezone(zone)
    start = dt.datetime.combine(local.date(), dt.time.min, tzinfo=zone)
    end = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    return start, end


# --- logs -----------------------------------------------------------------------------------------------------


def log_entries() -> QuerySet[LogEntry]:
    return LogEntry.objects.order_by("-timestamp", "-id")


def log_entry_json(entry: LogEntry) -> dict:
    return {
        "id": entry.id,
        "timestamp": utc_iso(entry.timestamp),
        "level": entry.level,
        "component": entry.component,
        "message": entry.message,
        "camera_id": entry.camera_id,
        "event_id": entry.event_id,
        "detection_id": entry.detection_id,
        "request_id": entry.request_id,
        "duration_ms": entry.duration_ms,
        "extra": entry.extra,
        "source": entry.source,
        "user_agent": entry.user_agent,
        "url": entry.url,
    }


def log_entry_detail(entry_id: int) -> dict:
    entry = LogEntry.objects.filter(pk=entry_id).first()
    if entry is None:
        raise NotFound(f"Log entry {entry_id} not found")
    return log_entry_json(entry)


def log_stats(now: dt.datetime | None = None) -> dict:
    start, end = local_day_start(now)
    today = LogEntry.objects.filter(timestamp__gte=start, timestamp__lt=end)
    by_level = {row["level"]: row["n"] for row in today.values("level").annotate(n=Count("id")).order_by()}
    components = list(today.values("component").annotate(n=Count("id")).order_by("-n", "component"))
    by_component = {row["component"]: row["n"] for row in components}
    return {
        "total_today": sum(by_level.values()),
        "errors_today": by_level.get("ERROR", 0) + by_level.get("CRITICAL", 0),
        "warnings_today": by_level.get("WARNING", 0),
        "by_level": by_level,
        "by_component": by_component,
        "top_component": components[0]["component"] if components else None,
    }


# --- audit ----------------------------------------------------------------------------------------------------


def audit_logs() -> QuerySet[AuditLog]:
    return AuditLog.objects.order_by("-timestamp", "-id")


def audit_log_json(row: AuditLog) -> dict:
    return {
        "id": row.id,
        "timestamp": utc_iso(row.timestamp),
        "action": row.action,
        "resource_type": row.resource_type,
        "resource_id": row.resource_id,
        "actor": row.actor,
        "ip_address": row.ip_address,
        "user_agent": row.user_agent,
        "request_id": row.request_id,
        "details": row.details,
        "status": row.status,
    }


def audit_log_detail(audit_id: int) -> dict:
    row = AuditLog.objects.filter(pk=audit_id).first()
    if row is None:
        raise NotFound(f"Audit log {audit_id} not found")
    return audit_log_json(row)


def _counts(queryset: QuerySet, field: str) -> dict[str, int]:
    rows = queryset.values(field).annotate(n=Count("id")).order_by("-n", field)
    return {row[field]: row["n"] for row in rows}


def audit_stats(
    start: dt.datetime | None = None, end: dt.datetime | None = None, now: dt.datetime | None = None
) -> dict:
    """Totals over ``[start, end]`` (every row when open); ``logs_today`` and ``recent_actors`` use their own
    windows (the local day, the last 7 days) within that range."""
    now = now or timezone.now()
    scope = AuditLog.objects.all()
    if start is not None:
        scope = scope.filter(timestamp__gte=start)
    if end is not None:
        scope = scope.filter(timestamp__lte=end)
    day_start, day_end = local_day_start(now)
    summary = scope.aggregate(
        total=Count("id"), today=Count("id", filter=Q(timestamp__gte=day_start, timestamp__lt=day_end))
    )
    recent = (
        scope.filter(timestamp__gte=now - dt.timedelta(days=RECENT_ACTOR_DAYS))
        .values("actor")
        .annotate(count=Count("id"))
        .order_by("-count", "actor")[:RECENT_ACTOR_LIMIT]
    )
    return {
        "total_logs": summary["total"],
        "logs_today": summary["today"],
        "by_action": _counts(scope, "action"),
        "by_resource_type": _counts(scope, "resource_type"),
        "by_status": _counts(scope, "status"),
        "recent_actors": [{"actor": row["actor"], "count": row["count"]} for row in recent],
    }
