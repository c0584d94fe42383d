"""Bench-only urlconf: the project's routes plus a hand-written raw-SQL list endpoint (``bench.api_lists``).

``bench.api_lists`` points ``settings.ROOT_URLCONF`` here, in its own process only; the app never imports this
module. ``GET /api/bench-raw/events`` and ``GET /api/bench-raw/detections`` serve the page of a scenario with
the same raw SQL statement the bench's bare-psycopg side runs, executed over Django's connection (same driver
settings: server-side binding and prepared statements), the items built in Python from the rows and
``json.dumps``: what a list endpoint costs through the same Django request path (URL routing, every middleware,
the test ``Client``) when the page is produced by hand instead of by our view, selector and rendering.

The statements come from a module-level registry keyed by the ``scenario`` query parameter (filled by the
bench before it times anything), so the view runs exactly the statement the bench compares with. The routes come
first, before the project's, so the project's routes resolve as before (two extra failed matches).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from dataclasses import dataclass

from django.db import connection
from django.http import HttpResponse, HttpResponseNotFound
from django.urls import path

from hsi import urls as project_urls
from hsi.api.pagination import encode_cursor


@dataclass(frozen=True)
class RawPage:
    resource: str  # events | detections
    statements: tuple[tuple[str, tuple], ...]  # the page (LIMIT limit + 1), then optionally a COUNT(*)
    order_column: str  # the column which, with ``id``, makes the keyset cursor


STATEMENTS: dict[str, RawPage] = {}


def register(key: str, page: RawPage) -> None:
    STATEMENTS[key] = page


def _json_default(value):
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def raw_page(request, resource: str) -> HttpResponse:
    page = STATEMENTS.get(request.GET.get("scenario", ""))
    if page is None or page.resource != resource:
        return HttpResponseNotFound("unknown bench scenario")
    limit = int(request.GET.get("limit", "50"))
    (statement, args), *extra = page.statements
    total = None
    with connection.cursor() as cursor:
        cursor.execute(statement, args)
        names = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
        for count_statement, count_args in extra:  # live scenarios: the total, recounted
            cursor.execute(count_statement, count_args)
            total = cursor.fetchone()[0]
    items = [dict(zip(names, row, strict=True)) for row in rows[:limit]]
    has_more = len(rows) > limit
    pagination = {"limit": limit, "has_more": has_more, "next_cursor": None}
    if has_more:
        last = items[-1]
        pagination["next_cursor"] = encode_cursor(last[page.order_column], last["id"])
    if total is not None:
        pagination["total"] = total
    body = json.dumps({"items": items, "pagination": pagination}, default=_json_default)
    return HttpResponse(body, content_type="application/json")


urlpatterns = [
    path("api/bench-raw/events", raw_page, {"resource": "events"}, name="bench-raw-events"),
    path("api/bench-raw/detections", raw_page, {"resource": "detections"}, name="bench-raw-detections"),
    *project_urls.urlpatterns,
]

handler400 = project_urls.handler400
handler403 = project_urls.handler403
handler404 = project_urls.handler404
handler500 = project_urls.handler500
