"""Exact list totals without a COUNT(*) on every request.

A COUNT(*) over a million detections costs tens of milliseconds (DESIGN §6), more than the whole page. Totals
are cached per query and invalidated by a per-scope generation that every write to the scope bumps, so a total
is exact as soon as the write has committed.
"""

from __future__ import annotations

import hashlib
import time

from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet

COUNT_TTL_SECONDS = 300


def _generation_key(scope: str) -> str:
    return f"hsi:countgen:{scope}"


def cached_count(queryset: QuerySet, scopes: tuple[str, ...]) -> int:
    generations = cache.get_many([_generation_key(s) for s in scopes])
    signature = str(queryset.query) + "|" + "|".join(str(generations.get(_generation_key(s), 0)) for s in scopes)
    key = "hsi:count:" + hashlib.sha1(signature.encode(), usedforsecurity=False).hexdigest()
    total = cache.get(key)
    if total is None:
        total = queryset.count()
        cache.set(key, total, COUNT_TTL_SECONDS)
    return total


def invalidate_counts(*scopes: str) -> None:
    """Bump the generation of each scope now (for this connection's own reads) and again after commit.

    The second bump discards any total that another connection computed before the write became visible.
    """

    def bump() -> None:
        stamp = time.time_ns()
        cache.set_many({_generation_key(s): stamp for s in scopes}, None)

    bump()
    transaction.on_commit(bump)
