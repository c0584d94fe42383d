"""``system.service_status`` from the periodic health checks (CONTRACT §3.6): sent when a check changes state."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from system.status import SERVICE_STATUS_CACHE_KEY, service_status_changes, status_caches_clear, system_status_publish
from tests.integration.pipeline_support import of_type, system_listener

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_remembered_statuses():
    status_caches_clear()  # this process's memory of the last run's statuses (used while the cache is down)
    yield
    status_caches_clear()


def test_a_steady_state_announces_nothing_and_a_recovery_is_announced_once():
    with system_listener() as stream:
        # Given a first run that recorded every check healthy
        system_status_publish()
        system_status_publish()
        assert of_type(stream.drain(), "system.service_status") == []

        # When the previous run had found Redis down (recorded by whichever worker ran it) and now it answers
        cache.set(SERVICE_STATUS_CACHE_KEY, {"database": "healthy", "redis": "unhealthy"})
        system_status_publish()
        system_status_publish()
        messages = stream.drain()

    # Then exactly one service_status says so, before the status snapshot of that run
    changes = of_type(messages, "system.service_status")
    assert changes == [
        {
            "service": "redis",
            "status": "healthy",
            "previous_status": "unhealthy",
            "message": "health check unhealthy -> healthy",
        }
    ]
    types = [m["type"] for m in messages]
    assert types.index("system.service_status") < types.index("system.status")


def test_changes_are_reported_per_service_against_the_previous_call():
    cache.delete(SERVICE_STATUS_CACHE_KEY)

    assert service_status_changes({"database": "healthy", "redis": "healthy"}) == []
    changed = service_status_changes({"database": "unhealthy", "redis": "healthy"})
    assert [(c["service"], c["previous_status"], c["status"]) for c in changed] == [
        ("database", "healthy", "unhealthy")
    ]
    assert service_status_changes({"database": "unhealthy", "redis": "healthy"}) == []
