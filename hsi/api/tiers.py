"""Which throttle tier a path belongs to (CONTRACT §6.2); also decides where ``?api_key`` is accepted (§6.1)."""

from __future__ import annotations

import re

_MEDIA = re.compile(r"^/api/(media/.*|detections/\d+/(thumbnail|image|video)/?|cameras/[^/]+/(snapshot|uploads)/?)$")
_UNTHROTTLED = re.compile(r"^/api/(metrics|schema|docs)/?$")


def tier_for_path(path: str) -> str | None:
    """``media``, ``search``, ``default``, or None for paths that are never throttled."""
    if not path.startswith("/api/") or _UNTHROTTLED.match(path):
        return None
    if _MEDIA.match(path):
        return "media"
    if re.match(r"^/api/search/?$", path):
        return "search"
    return "default"


def accepts_query_api_key(path: str) -> bool:
    return tier_for_path(path) == "media"


def is_auth_exempt(path: str, require_metrics_key: bool) -> bool:
    if not path.startswith("/api/"):
        return True
    if re.match(r"^/api/(schema|docs)/?$", path):
        return True
    return bool(re.match(r"^/api/metrics/?$", path)) and not require_metrics_key
