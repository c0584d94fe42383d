"""Every WebSocket test gets channel layer instances of its own (the real layer of the settings: channels-redis)."""

from __future__ import annotations

import copy

import pytest


@pytest.fixture(autouse=True)
def _fresh_channel_layer(settings):
    from system.status import status_caches_clear

    settings.CHANNEL_LAYERS = copy.deepcopy(settings.CHANNEL_LAYERS)  # Channels rebuilds its backends on change
    status_caches_clear()  # the connect-time snapshot is reused for 2 s in a process: never across tests
    yield
    status_caches_clear()


@pytest.fixture
def fast_heartbeat(settings):
    settings.WEBSOCKET_PING_INTERVAL_SECONDS = 0.1
    settings.WEBSOCKET_IDLE_TIMEOUT_SECONDS = 0.35
    return settings
