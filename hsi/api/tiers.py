"""Which throttle tier a path belongs to (CONTRACT §6.2); also decides where ``?api_key`` is accepted (§6.1).

Patterns are matched against the whole path (``fullmatch``), so a trailing newline or suffix never changes a tier.
"""

from __future__ import annotations

import re

_MEDIA = re.compile(r"/api/(media(/.*)?|detections/\d+/(thumbnail|image|video)/?|cameras/[^/]+/(snapshot|uploads)/?)")
_SEARCH = re.compile(r"/api/search/?")
_UNTHROTTLED = re.compile(r"/api/(metrics|schema|docs)/?")
_DOCS = re.compile(r"/api/(schema|docs)/?")
_METRICS = re.compile(r"/api/metrics/?")


def tier_for_path(path: str) -> str | None:
    """``media``, ``search``, ``default``, or None for paths that are never throttled."""
    if not path.startswith("/api/") or _UNTHROTTLED.fullmatch(path):
        return None
    if _MEDIA.fullmatch(path):
        return "media"
    if _SEARCH.fullmatch(path):
        return "search"
    return "default"


def accepts_query_api_key(path: str) -> bool:
    return tier_for_path(path) == "media"


def is_auth_exempt(path: str, require_metrics_key: bool) -> bool:
    if not path.startswith("/api/"):
        return True
    if _DOCS.fullmatch(path):
        return True
    return bool(_METRICS.fullmatch(path)) and not require_metrics_key
