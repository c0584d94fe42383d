"""Shared set-up of the delivery-outbox tests: eager tasks, a fixed public base URL, alerts aimed at channels."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.factories import AlertFactory, AlertRuleFactory, CameraFactory, EventFactory

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)  # a Wednesday, midday UTC
PUBLIC = "https://hsi.example.test"


@pytest.fixture
def outbox_env(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.NOTIFICATIONS_ENABLED = True
    settings.NOTIFY_MAX_ATTEMPTS = 5
    settings.PUBLIC_BASE_URL = PUBLIC
    settings.TIME_ZONE = "UTC"
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.CIRCUIT_FAILURE_THRESHOLD = 50
    return settings


def make_alert(channels, *, severity="high", risk_score=72, camera=None, created_at=None, kind="event", **fields):
    """A committed-looking alert of ``severity`` on ``camera`` aimed at ``channels`` (its event has ``risk_score``)."""
    camera = camera or CameraFactory(id="front_door", name="Front Door")
    rule = AlertRuleFactory(name="Night person", severity=severity)
    event = None
    if kind == "event":
        event = EventFactory(camera=camera, risk_score=risk_score, risk_level="high", summary="A person at the door")
    alert = AlertFactory(
        rule=rule,
        event=event,
        camera=camera,
        kind=kind,
        severity=severity,
        channels=[str(channel.id) for channel in channels],
        metadata={"rule_name": rule.name, "matched_conditions": ["risk_score >= 60"]},
        **fields,
    )
    if created_at is not None:
        type(alert).objects.filter(pk=alert.pk).update(created_at=created_at)
        alert.refresh_from_db()
    return alert
