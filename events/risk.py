"""Risk levels from scores (CONTRACT §4.7): inclusive upper bounds read from settings at call time."""

from __future__ import annotations

from django.conf import settings


def risk_bands() -> dict[str, tuple[int, int]]:
    """Inclusive score range of each level."""
    low, medium, high = settings.SEVERITY_LOW_MAX, settings.SEVERITY_MEDIUM_MAX, settings.SEVERITY_HIGH_MAX
    return {"low": (0, low), "medium": (low + 1, medium), "high": (medium + 1, high), "critical": (high + 1, 100)}


def risk_level_for(score: int) -> str:
    for level, (_, upper) in risk_bands().items():
        if score <= upper:
            return level
    return "critical"
