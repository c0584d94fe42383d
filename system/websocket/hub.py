"""One group member per stream and server process: the local fan-out of published messages (CONTRACT §3.7).

With a channel of its own per connection in the group, every published message costs the Redis layer one copy
per connection (pushed, then popped one round trip each) and Channels one thread hop per connection (its
``dispatch`` closes old database connections before every handler): ~200 ms for 100 sockets on our machine.
Instead, each event loop of a server process keeps one ``StreamHub`` per stream, the only member of
``hsi.<stream>``; it receives each message once and hands it to every local connection with a non-blocking call
(``deliver``), which queues the text for that connection's own sender task. A stalled socket therefore only
fills its own queue; the hub, the other connections and the publisher never wait for it.

A hub starts with its first connection and stops with its last. Its group membership is renewed on a timer,
every quarter of the layer's ``group_expiry`` and at least every ``GROUP_REFRESH_SECONDS`` (channels-redis forgets
members after ``group_expiry``): also a stream that stays quiet for longer than that keeps its clients.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from channels.layers import get_channel_layer

from hsi import realtime

logger = logging.getLogger("hsi.websocket")

GROUP_REFRESH_SECONDS = 3600.0
MIN_GROUP_REFRESH_SECONDS = 0.1
RESTART_DELAY_SECONDS = 0.5


class Member(Protocol):
    def deliver(self, event: dict) -> None: ...


class StreamHub:
    def __init__(self, stream: str, layer):
        self.stream = stream
        self.loop = asyncio.get_running_loop()
        self.group = realtime.group_name(stream)
        self.layer = layer
        self.members: set[Member] = set()
        realtime.server_loop_attach(layer, self.loop)  # all-in-one publishers in other threads send on this loop
        self.channel: str | None = None
        self.task: asyncio.Task | None = None
        self.renewal: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    async def join(self, member: Member) -> None:
        """Add ``member``; returns once the hub is in the group (messages published from now on reach it)."""
        self.members.add(member)
        async with self._lock:
            if self.task is None or self.task.done():
                self.channel = await self.layer.new_channel("hsi-hub.")
                await self.layer.group_add(self.group, self.channel)
                self.task = asyncio.create_task(self._run(self.channel), name=f"hsi-hub-{self.stream}")
                if self.renewal is not None:
                    self.renewal.cancel()
                self.renewal = asyncio.create_task(self._renew(self.channel), name=f"hsi-hub-renew-{self.stream}")

    def leave(self, member: Member) -> None:
        self.members.discard(member)
        if not self.members and self.task is not None and not self.task.done():
            self.task.cancel()
            self.task = None
            if self.renewal is not None:
                self.renewal.cancel()
                self.renewal = None
            channel, self.channel = self.channel, None
            asyncio.get_running_loop().create_task(self._discard(channel))

    async def _discard(self, channel: str | None) -> None:
        if channel is None:
            return
        try:
            await self.layer.group_discard(self.group, channel)
        except Exception:  # the membership expires on its own
            logger.info("Could not leave %s", self.group, exc_info=True)

    def refresh_interval(self) -> float:
        """Seconds between renewals: a quarter of the layer's ``group_expiry``, at most ``GROUP_REFRESH_SECONDS``."""
        expiry = getattr(self.layer, "group_expiry", None)
        if not isinstance(expiry, int | float) or expiry <= 0:
            return GROUP_REFRESH_SECONDS
        return max(MIN_GROUP_REFRESH_SECONDS, min(GROUP_REFRESH_SECONDS, expiry / 4))

    async def _renew(self, channel: str) -> None:
        """Renew the membership on a timer, whether messages come or not (``group_add`` of a member is an update)."""
        interval = self.refresh_interval()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.layer.group_add(self.group, channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("Could not renew the %s hub's group membership", self.stream, exc_info=True)

    async def _run(self, channel: str) -> None:
        while True:
            try:
                event = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("The %s hub could not receive; retrying", self.stream, exc_info=True)
                await asyncio.sleep(RESTART_DELAY_SECONDS)
                continue
            if event.get("type") == "hsi.message":
                for member in tuple(self.members):
                    try:
                        member.deliver(event)
                    except Exception:
                        logger.warning("A %s connection could not take a message", self.stream, exc_info=True)


_hubs: dict[tuple[int, int, str], StreamHub] = {}


def hub_for(stream: str) -> StreamHub:
    """This event loop's hub of ``stream`` on the current default channel layer."""
    layer = get_channel_layer()
    loop = asyncio.get_running_loop()
    key = (id(loop), id(layer), stream)
    hub = _hubs.get(key)
    if hub is None or hub.layer is not layer or hub.loop is not loop:
        for stale in [k for k, h in _hubs.items() if not h.members and (h.task is None or h.task.done())]:
            del _hubs[stale]
        hub = _hubs[key] = StreamHub(stream, layer)
    return hub
