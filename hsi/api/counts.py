"""Exact list totals without a COUNT(*) on every request.

A COUNT(*) over a million detections costs tens of milliseconds (DESIGN §6), more than the whole page. Totals
are cached per query and invalidated by a per-scope generation that every write to the scope bumps, so a total
is exact as soon as the write has committed.
"""

from __future__ import annotations

import hashlib
import time

from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connections, transaction
from django.db.models import QuerySet

COUNT_TTL_SECONDS = 300


def _generation_key(scope: str) -> str:
    return f"hsi:countgen:{scope}"


def cached_count(queryset: QuerySet, scopes: tuple[str, ...] = ("events",)) -> int:
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:  # e.g. ``id__in=[]``: matches nothing, and has no SQL to key a cache entry on
        return 0
    if _has_uncommitted_writes(queryset.db):
        # A total seen inside a transaction that wrote is not what other connections see (nor what they will see
        # if it rolls back): count, but neither trust nor fill the shared cache.
        return queryset.count()
    database = connections[queryset.db].settings_dict["NAME"]
    signature = f"{queryset.db}|{database}|{sql}|{params!r}"
    key = "hsi:count:" + hashlib.sha1(signature.encode(), usedforsecurity=False).hexdigest()
    generation_keys = [_generation_key(s) for s in scopes]
    found = cache.get_many([key, *generation_keys])  # one round trip: the total and the generations it needs
    stamps = tuple(found.get(g, 0) for g in generation_keys)
    entry = found.get(key)
    if entry is not None and tuple(entry[0]) == stamps:
        return entry[1]
    total = queryset.count()
    cache.set(key, (stamps, total), COUNT_TTL_SECONDS)
    return total


def _has_uncommitted_writes(using: str) -> bool:
    connection = connections[using]
    return connection.in_atomic_block and bool(connection.run_on_commit)


def invalidate_counts(*scopes: str) -> None:
    """Bump the generation of each scope now (for this connection's own reads) and again after commit.

    The second bump discards any total that another connection computed before the write became visible.
    """

    def bump() -> None:
        stamp = time.time_ns()
        cache.set_many({_generation_key(s): stamp for s in scopes}, None)

    bump()
    transaction.on_commit(bump)
