"""The per-process hub keeps its group membership (CONTRACT §3.7) and all-in-one publishes reach it at once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import time_machine

from hsi.realtime import send_now
from tests.integration.websocket.support import connected, receive_until, run

pytestmark = pytest.mark.django_db


def test_a_quiet_stream_keeps_its_clients_past_the_group_expiry(settings):
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["group_expiry"] = 1  # renewed every 0.25 s

    async def scenario():
        communicator, _hello = await connected()
        with time_machine.travel(time.time() + 30, tick=True):  # half a minute without a message, for Redis
            await asyncio.sleep(0.6)  # the hub's timer (loop time) renews its membership meanwhile
            await asyncio.to_thread(send_now, "events", "event.created", {"n": 1})
            message = await receive_until(communicator, lambda m: m["type"] == "event.created")
        await communicator.disconnect()
        return message

    assert run(scenario)["data"] == {"n": 1}


def test_all_in_one_a_message_published_from_a_plain_thread_reaches_the_client_at_once(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

    def publish_from_a_thread(published_at: list[float]) -> threading.Thread:
        def publish():
            published_at.append(time.monotonic())
            send_now("events", "event.created", {"n": 1})

        thread = threading.Thread(target=publish)  # a pool, ticker or watcher thread: no event loop of its own
        thread.start()
        return thread

    async def scenario():
        communicator, _hello = await connected()
        published_at: list[float] = []
        thread = publish_from_a_thread(published_at)
        message = await receive_until(communicator, lambda m: m["type"] == "event.created", timeout=3)
        latency = time.monotonic() - published_at[0]
        await asyncio.to_thread(thread.join, 5)
        await communicator.disconnect()
        return message, latency

    message, latency = run(scenario)

    assert message["data"] == {"n": 1}
    assert latency < 0.5
