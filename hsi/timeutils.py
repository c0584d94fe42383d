"""Time rendering shared by every API response and message."""

from __future__ import annotations

import datetime as dt


def utc_iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix (CONTRACT §0.3), whatever ``TIME_ZONE`` is."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
