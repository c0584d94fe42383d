"""Celery tasks of the cameras app (CONTRACT §4.12, §8.3). Thin: call one service."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from cameras.services import cameras_check_silence


@shared_task(name="cameras.check_silence")
def check_silence() -> list[str]:
    """Every ``SILENCE_CHECK_INTERVAL_SECONDS``: silent cameras go offline."""
    return cameras_check_silence(timezone.now())
