"""Alert creation and lifecycle (CONTRACT §5.2–5.6, §5.10). Stub: the alert-engine work fills this in."""

from __future__ import annotations


def alerts_evaluate_event(event_id: int) -> list:
    """Evaluate every enabled ``event`` rule against event ``event_id``; returns the ids of the alerts created."""
    return []
