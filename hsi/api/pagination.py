"""The list envelope, offset pagination and keyset cursors of CONTRACT §0.5."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

from hsi.api.errors import BadRequest, FieldValidationError

CURSOR_MAX_LENGTH = 512
MAX_ROW_ID = 2**63 - 1  # bigint primary keys
# An OFFSET past this cannot match a row of any table and would overflow PostgreSQL's bigint OFFSET.
MAX_OFFSET = 2**62
_INTEGER = re.compile(r"[+-]?[0-9]+")
_CURSOR_MIN = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_CURSOR_MAX = dt.datetime(2100, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Cursor:
    timestamp: dt.datetime
    id: int


@dataclass(frozen=True)
class PageRequest:
    limit: int
    offset: int
    cursor: Cursor | None = None


def encode_cursor(timestamp: dt.datetime, row_id: int) -> str:
    payload = json.dumps({"t": timestamp.astimezone(dt.UTC).isoformat(), "id": row_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    invalid = BadRequest("Invalid cursor")
    if not text or len(text) > CURSOR_MAX_LENGTH:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid from None
    if not isinstance(data, dict) or not isinstance(data.get("t"), str) or type(data.get("id")) is not int:
        raise invalid
    try:
        timestamp = parse_datetime(data["t"])
    except ValueError:
        timestamp = None
    if timestamp is None or not 0 < data["id"] <= MAX_ROW_ID:
        raise invalid
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=dt.UTC)
    if not _CURSOR_MIN <= timestamp <= _CURSOR_MAX:
        raise invalid
    return Cursor(timestamp, data["id"])


def _int_param(params, name: str, default: int, minimum: int, maximum: int | None) -> int:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return default
    if not _INTEGER.fullmatch(raw.strip()):
        raise FieldValidationError({name: "Must be an integer"})
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise FieldValidationError({name: f"Must be {bound}"})
    return value


def parse_page(request, *, default: int, maximum: int, cursor: bool = False) -> PageRequest:
    """``limit``/``offset`` (422 when out of range) and, on cursor-capable lists, ``cursor`` (400 when invalid).

    With a cursor, ``offset`` is ignored altogether (CONTRACT §0.5); an empty ``cursor=`` means no cursor.
    """
    params = getattr(request, "query_params", None)
    if params is None:
        params = request.GET
    limit = _int_param(params, "limit", default, 1, maximum)
    raw_cursor = params.get("cursor") if cursor else None
    if raw_cursor:
        return PageRequest(limit=limit, offset=0, cursor=decode_cursor(raw_cursor))
    offset = _int_param(params, "offset", 0, 0, None)
    return PageRequest(limit=limit, offset=offset)


def envelope(items: list, *, total: int, page: PageRequest, has_more: bool, next_cursor: str | None = None) -> dict:
    return {
        "items": items,
        "pagination": {
            "total": total,
            "limit": page.limit,
            "offset": None if page.cursor else page.offset,
            "next_cursor": next_cursor,
            "has_more": has_more,
        },
    }


def offset_slice(queryset: QuerySet, page: PageRequest) -> tuple[list, bool]:
    if page.offset > MAX_OFFSET:
        return [], False
    rows = list(queryset[page.offset : page.offset + page.limit + 1])
    return rows[: page.limit], len(rows) > page.limit


def offset_page(queryset: QuerySet, page: PageRequest, render: Callable[[Any], Any]) -> dict:
    """The envelope of one offset page of ``queryset``, each row rendered by ``render``."""
    rows, has_more = offset_slice(queryset, page)
    return envelope([render(row) for row in rows], total=queryset.count(), page=page, has_more=has_more)


def keyset_slice(
    queryset: QuerySet, page: PageRequest, time_field: str, key: Callable[[Any], tuple[dt.datetime, int]]
) -> tuple[list, bool, str | None]:
    """Rows ordered (time desc, id desc); with a cursor, the rows strictly after it; plus the next cursor.

    The ``time <= t`` bound lets the (time, id) index start the scan at the cursor, so deep pages cost the
    same as the first one (CONTRACT §0.5; DESIGN §6).
    """
    queryset = queryset.order_by(f"-{time_field}", "-id")
    if page.cursor is not None:
        c = page.cursor
        queryset = queryset.filter(
            Q(**{f"{time_field}__lt": c.timestamp}) | Q(**{time_field: c.timestamp, "id__lt": c.id}),
            **{f"{time_field}__lte": c.timestamp},
        )
        rows, has_more = offset_slice(queryset, PageRequest(page.limit, 0))
    else:
        rows, has_more = offset_slice(queryset, page)
    next_cursor = encode_cursor(*key(rows[-1])) if has_more and rows else None
    return rows, has_more, next_cursor


def paginate_list(items: Sequence, page: PageRequest) -> dict:
    """Envelope for a list already held in memory (small collections)."""
    window = list(items[page.offset : page.offset + page.limit])
    return envelope(window, total=len(items), page=page, has_more=page.offset + page.limit < len(items))
