"""CSV export of events (CONTRACT §2.5 "CSV export", §6.6 CSV-injection guard, §6.8 ``events_exported``).

The rows are read in keyset chunks (``started_at`` desc, ``id`` desc, ``EXPORT_CHUNK_ROWS`` at a time) and written
as CSV text chunk by chunk, so memory stays flat whatever ``EXPORT_MAX_ROWS`` is, and each read is a short query
(no server-side cursor held open across the response). Before the first byte is sent one bounded COUNT
(``LIMIT EXPORT_MAX_ROWS + 1``) decides ``X-Export-Truncated`` and the row count recorded in the audit row.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from hsi.timeutils import utc_iso
from system.services import Actor, audit_record

from . import selectors

Refine = Callable[[QuerySet], QuerySet]

EXPORT_HEADER = (
    "Event ID",
    "Camera",
    "Started At",
    "Ended At",
    "Risk Score",
    "Risk Level",
    "Summary",
    "Object Types",
    "Detections",
    "Reviewed",
    "Notes",
)
EXPORT_COLUMNS = (
    "id",
    "camera__name",
    "started_at",
    "ended_at",
    "risk_score",
    "risk_level",
    "summary",
    "object_types",
    "detection_count",
    "reviewed",
    "notes",
)
EXPORT_CHUNK_ROWS = 1000
INJECTION_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def guard_cell(value: Any) -> Any:
    """§6.6: a text cell starting with ``= + - @``, a tab or a CR gets a leading ``'``; numbers stay numbers;
    None is an empty cell."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(INJECTION_PREFIXES):
        return "'" + value
    return value


def export_cells(row: tuple) -> list:
    event_id, camera, started, ended, score, level, summary, object_types, detections, reviewed, notes = row
    cells = [
        event_id,
        camera,
        utc_iso(started),
        utc_iso(ended),
        score,
        level,
        summary,
        ", ".join(name for name in object_types.split(",") if name),
        detections,
        "Yes" if reviewed else "No",
        notes,
    ]
    return [guard_cell(cell) for cell in cells]


def export_filename(now: dt.datetime | None = None) -> str:
    now = (now or timezone.now()).astimezone(dt.UTC)
    return f"events_export_{now:%Y%m%d_%H%M%S}.csv"


@dataclass
class EventExport:
    queryset: QuerySet  # the matching live events, unordered
    row_count: int
    truncated: bool
    filename: str

    def csv_chunks(self) -> Iterator[str]:
        """The CSV text (RFC 4180: CRLF line ends, minimal quoting), header first, one chunk per read."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(EXPORT_HEADER)
        for rows in self._row_chunks():
            writer.writerows(export_cells(row) for row in rows)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    def _row_chunks(self) -> Iterator[list[tuple]]:
        remaining = self.row_count
        ordered = self.queryset.order_by("-started_at", "-id").values_list(*EXPORT_COLUMNS)
        chunk = ordered
        while remaining > 0:
            rows = list(chunk[: min(EXPORT_CHUNK_ROWS, remaining)])
            if not rows:
                return
            yield rows
            remaining -= len(rows)
            last_id, last_started = rows[-1][0], rows[-1][2]
            chunk = ordered.filter(
                Q(started_at__lt=last_started) | Q(started_at=last_started, id__lt=last_id),
                started_at__lte=last_started,
            )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return utc_iso(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def events_export(*, refine: Refine, filters: dict[str, Any], actor: Actor) -> EventExport:
    """Prepare the export of the live events matching ``refine`` and record ``events_exported`` (§6.8) with the
    filters and the number of rows the file holds."""
    queryset = refine(selectors.live_events())
    limit = settings.EXPORT_MAX_ROWS
    matching = queryset.order_by()[: limit + 1].count()
    export = EventExport(
        queryset=queryset, row_count=min(matching, limit), truncated=matching > limit, filename=export_filename()
    )
    with transaction.atomic():
        audit_record(
            actor,
            "events_exported",
            "event",
            details={
                "filters": {name: _jsonable(value) for name, value in filters.items()},
                "row_count": export.row_count,
                "truncated": export.truncated,
            },
        )
    return export
