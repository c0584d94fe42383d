"""A socket that stops taking data never holds up the others (CONTRACT §3.7): driven at the ASGI level, with a
server ``send`` that never returns for one connection (what a server with backpressure does for a stalled peer)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from hsi.asgi import application
from hsi.realtime import send_now
from system.websocket import consumers
from tests.integration.websocket.support import run

pytestmark = pytest.mark.django_db


class Connection:
    """One ASGI WebSocket connection; with ``stall_after`` its n-th and later sends never complete."""

    def __init__(self, stall_after: int | None = None, *, gate: asyncio.Event | None = None):
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.gate = gate  # while cleared, sends wait (a peer that is slow for a while)
        self.sent: list[dict] = []
        self.stall_after = stall_after
        self.stalled = asyncio.Event()
        scope = {"type": "websocket", "path": "/ws/events", "query_string": b"", "headers": [], "subprotocols": []}
        scope["client"] = ("203.0.113.20", 40000)
        self.task = asyncio.create_task(application(scope, self.inbox.get, self.send))

    async def send(self, message: dict) -> None:
        if self.stall_after is not None and len(self.sent) >= self.stall_after:
            self.stalled.set()
            await asyncio.Event().wait()  # never returns
        if self.gate is not None:
            await self.gate.wait()
        self.sent.append(message)

    def texts(self) -> list[dict]:
        return [json.loads(m["text"]) for m in self.sent if m["type"] == "websocket.send"]

    async def open(self) -> None:
        await self.inbox.put({"type": "websocket.connect"})
        async with asyncio.timeout(3):
            while not any(m.get("type") == "connected" for m in self.texts()):
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.inbox.put({"type": "websocket.disconnect", "code": 1000})
        try:
            async with asyncio.timeout(2):
                await self.task
        except TimeoutError:
            self.task.cancel()


def test_a_connection_whose_sends_hang_does_not_delay_the_others():
    async def scenario():
        stuck, healthy = Connection(stall_after=2), Connection()
        await stuck.open()
        await healthy.open()
        await sync_to_async(lambda: [send_now("events", "event.created", {"n": n}) for n in range(20)])()
        async with asyncio.timeout(3):
            while len([m for m in healthy.texts() if m["type"] == "event.created"]) < 20:
                await asyncio.sleep(0.01)
        await stuck.close()
        await healthy.close()
        return stuck, healthy

    stuck, healthy = run(scenario)

    assert stuck.stalled.is_set()
    assert [m["data"]["n"] for m in healthy.texts() if m["type"] == "event.created"] == list(range(20))


def test_a_connection_that_cannot_keep_up_loses_the_newest_messages_not_the_others(monkeypatch, caplog):
    monkeypatch.setattr(consumers, "OUTBOX_CAPACITY", 5)

    async def scenario():
        stuck, healthy = Connection(stall_after=2), Connection()  # accept and connected pass, then it hangs
        await stuck.open()
        await healthy.open()
        await sync_to_async(lambda: [send_now("events", "event.created", {"n": n}) for n in range(30)])()
        async with asyncio.timeout(3):
            while len([m for m in healthy.texts() if m["type"] == "event.created"]) < 30:
                await asyncio.sleep(0.01)
        await stuck.close()
        await healthy.close()
        return healthy

    healthy = run(scenario)

    assert len([m for m in healthy.texts() if m["type"] == "event.created"]) == 30
    assert "A slow events client is dropping messages (outbox full)" in caplog.text


def test_a_resync_while_live_messages_wait_for_the_socket_delivers_each_seq_once_in_order():
    async def scenario():
        gate = asyncio.Event()
        gate.set()
        client = Connection(gate=gate)
        await client.open()
        gate.clear()  # the socket stops taking data for a while
        await sync_to_async(lambda: [send_now("events", "event.created", {"n": n}) for n in range(1, 4)])()
        await asyncio.sleep(0.05)  # the three live copies are queued (one of them being written)
        await client.inbox.put({"type": "websocket.receive", "text": '{"type":"resync","data":{"last_seq":0}}'})
        await asyncio.sleep(0.05)
        gate.set()
        async with asyncio.timeout(3):
            while not any(m["type"] == "resync_ack" for m in client.texts()):
                await asyncio.sleep(0.01)
        await sync_to_async(send_now)("events", "event.created", {"n": 4})
        async with asyncio.timeout(3):
            while not any(m.get("seq") == 4 for m in client.texts()):
                await asyncio.sleep(0.01)
        await client.close()
        return client.texts()

    texts = run(scenario)

    data = [m for m in texts if "seq" in m]
    assert [m["seq"] for m in data] == [1, 2, 3, 4]
    ack = next(m for m in texts if m["type"] == "resync_ack")
    assert ack["data"] == {"last_seq": 0, "replayed": 0, "complete": True}
    assert [m.get("seq") for m in texts if m["type"] != "connected"][:4] == [1, 2, 3, None]  # ack after them
