"""Celery tasks of the events app: baseline maintenance (CONTRACT §4.11, §8.3). Thin: call one service."""

from __future__ import annotations

from celery import shared_task

from events.baselines import baselines_rebuild, baselines_update_hour


@shared_task(name="events.update_baselines")
def update_baselines() -> int:
    """Hourly (minute 5, local): the slot and class rows of the hour that just ended, every camera."""
    return baselines_update_hour()


@shared_task(name="events.rebuild_baselines")
def rebuild_baselines(camera_id: str | None = None) -> int:
    """Full recompute for one camera (or all); a camera deleted meanwhile is simply skipped."""
    return baselines_rebuild(camera_id)
