"""Broadcasts from synchronous code (workers, the watcher, views) reach the channel layer in order, from one
long-lived loop per process, and from a forked child (a Celery prefork worker) as well."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

from channels.layers import BaseChannelLayer

from hsi.realtime import send_now


def _send_from_child(count: int) -> None:  # pragma: no cover - runs in the forked child
    for n in range(count):
        send_now("events", "test.child", {"n": n})


def test_messages_sent_one_after_another_arrive_in_order(events_stream):
    for n in range(20):
        send_now("events", "test.parent", {"n": n})

    received = [m for m in events_stream.drain() if m["type"] == "test.parent"]

    assert [m["data"]["n"] for m in received] == list(range(20))
    assert all(m["timestamp"].endswith("Z") for m in received)


def test_a_forked_child_publishes_on_a_loop_of_its_own(events_stream):
    send_now("events", "test.parent", {"n": 0})  # the parent's loop exists before the fork

    child = multiprocessing.get_context("fork").Process(target=_send_from_child, args=(3,))
    child.start()
    child.join(30)
    send_now("events", "test.parent", {"n": 1})

    messages = events_stream.drain()
    assert child.exitcode == 0
    assert [m["data"]["n"] for m in messages if m["type"] == "test.child"] == [0, 1, 2]
    assert [m["data"]["n"] for m in messages if m["type"] == "test.parent"] == [0, 1]


class StallingLayer(BaseChannelLayer):
    """A channel layer whose sends to the ``stalled`` group hang (a Redis that stopped answering); the rest pass."""

    delivered: list[int] = []
    cancelled: list[int] = []

    async def group_send(self, group, message):
        number = message["message"]["data"]["n"]
        if group == "hsi.events" and number == 0:
            try:
                await asyncio.Event().wait()  # never set
            except asyncio.CancelledError:
                StallingLayer.cancelled.append(number)
                raise
        StallingLayer.delivered.append(number)


def test_a_send_that_times_out_is_cancelled_not_delivered_late_out_of_order(settings, caplog):
    StallingLayer.delivered, StallingLayer.cancelled = [], []
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": f"{__name__}.StallingLayer"}}
    settings.REALTIME_SEND_TIMEOUT_SECONDS = 0.2

    send_now("events", "detection.new", {"n": 0})  # stalls: gives up after 0.2 s
    send_now("events", "detection.batch", {"n": 1})

    deadline = time.monotonic() + 5
    while not StallingLayer.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    assert StallingLayer.cancelled == [0] and StallingLayer.delivered == [1]
    assert "Could not broadcast detection.new on events" in caplog.text
