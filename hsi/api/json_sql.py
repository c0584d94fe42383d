"""List items rendered as JSON by PostgreSQL itself.

Turning 50 rows into Python objects and back into JSON costs more CPU than the query (DESIGN §6: serializers
are the main cost of a list endpoint). On PostgreSQL the hot lists select one ``json_build_object(...)::text``
per row and the response splices those fragments into the envelope without parsing them. The output is
byte-for-byte what the Python path produces for the same row (tests compare both).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from django.db.models import CharField, Expression, F, Func, TextField
from django.http import HttpResponse

# ISO 8601 in UTC with a Z suffix and microseconds only when non-zero, exactly as datetime.isoformat() does.
_ISO_Z = (
    "(CASE WHEN {x} IS NULL THEN NULL ELSE to_char({x} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    " || CASE WHEN to_char({x}, 'US') = '000000' THEN '' ELSE to_char({x}, '.US') END || 'Z' END)"
)


_KEY = re.compile(r"[a-z_]{1,64}")


class IsoTimestamp(Func):
    """A timestamptz as the text of CONTRACT §0.3."""

    output_field = CharField()

    def __init__(self, field: str | Expression):
        super().__init__(F(field) if isinstance(field, str) else field)

    def as_sql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        if params:
            raise ValueError("IsoTimestamp takes a column, not an expression with parameters")
        return _ISO_Z.format(x=sql), []


class JsonObject(Func):
    """``json_build_object('k1', v1, …)::text`` keeping the key order (jsonb would sort the keys)."""

    output_field = TextField()

    def __init__(self, fields: Sequence[tuple[str, Expression]]):
        for key, _ in fields:
            if not _KEY.fullmatch(key):
                raise ValueError(f"unsafe JSON key {key!r}")
        self.keys = [key for key, _ in fields]
        super().__init__(*(expression for _, expression in fields))

    def as_sql(self, compiler, connection, **extra_context):
        parts, params = [], []
        for key, expression in zip(self.keys, self.source_expressions, strict=True):
            sql, expression_params = compiler.compile(expression)
            parts.append(f"'{key}', {sql}")
            params.extend(expression_params)
        return f"json_build_object({', '.join(parts)})::text", params


class PrerenderedItems(list):
    """Items already rendered as JSON text, one string per item."""


def envelope_json(body: dict) -> str:
    items = body["items"]
    if isinstance(items, PrerenderedItems):
        rest = _dumps({k: v for k, v in body.items() if k != "items"})
        return '{"items":[' + ",".join(items) + "]," + rest[1:]
    return _dumps(body)


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def json_response(body: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(envelope_json(body), status=status, content_type="application/json")
