"""Listening to WebSocket broadcast groups (``hsi.events``, ``hsi.system``) on the real channel layer.

Each stream builds a channel layer instance of its own: with channels-redis, every instance keeps the messages
of its process-local channels in one Redis key with a capacity, so a stream sharing the process's default
instance could find that key filled by messages earlier tests left unread, and lose its own. All receives run
on one event loop of the stream's own, as the Redis layer binds a channel's buffer to the loop that first
received on it.
"""

from __future__ import annotations

import asyncio

from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers


class GroupStream:
    """``next()`` returns the next message or raises ``TimeoutError``; ``drain()`` returns every message queued so
    far (broadcasts are sent synchronously after commit). Under a frozen clock, messages sent at the same instant
    arrive in no defined order (channels-redis orders a channel's messages by send time)."""

    def __init__(self, group: str):
        self.group = group
        self.layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        self.loop = asyncio.new_event_loop()
        self.channel = self.loop.run_until_complete(self.layer.new_channel())
        self.loop.run_until_complete(self.layer.group_add(group, self.channel))

    def next(self, timeout: float = 2.0) -> dict:
        receive = asyncio.wait_for(self.layer.receive(self.channel), timeout)
        return self.loop.run_until_complete(receive)["message"]

    def drain(self, timeout: float = 0.3) -> list[dict]:
        messages = []
        while True:
            try:
                messages.append(self.next(timeout))
            except TimeoutError:
                return messages

    def close(self) -> None:
        self.loop.run_until_complete(self.layer.group_discard(self.group, self.channel))
        close_pools = getattr(self.layer, "close_pools", None)  # channels-redis: its own connections
        if close_pools is not None:
            self.loop.run_until_complete(close_pools())
        self.loop.close()
