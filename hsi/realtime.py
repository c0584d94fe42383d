"""Publishing to WebSocket clients (CONTRACT §3): messages leave only after the transaction commits.

Every process publishes through the Channels layer (channels-redis in distributed mode), so a client connected to
any web process receives what any worker caused.

Each message gets its per-stream ``seq`` once, here, before the group send (§3.2), and is kept in the stream's
resync buffer of the last ``WEBSOCKET_RESYNC_BUFFER`` messages:

- distributed (channels-redis, ``REDIS_URL`` set): one Redis round trip, a Lua script that INCRs
  ``<HSI_KEY_PREFIX>:ws:seq:<stream>`` and RPUSHes/LTRIMs ``<HSI_KEY_PREFIX>:ws:buffer:<stream>``. With the default
  prefix ``hsi`` these are the contract's ``hsi:ws:seq:<stream>``; tests give every worker its own prefix.
- all-in-one (in-memory layer): an in-process counter and ring (``collections.deque``) under a lock.

The message is serialised once, by the publisher: the group payload carries the exact text every consumer sends
(``text``), next to the message itself (``message``, for subscription filters).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from hsi.timeutils import utc_iso

logger = logging.getLogger("hsi.realtime")

STREAMS = ("events", "system")


def group_name(stream: str) -> str:
    return f"hsi.{stream}"


def broadcast(stream: str, message_type: str, data: dict) -> None:
    """Queue ``message_type`` for every client of ``stream`` once the current transaction commits."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}")
    transaction.on_commit(lambda: send_now(stream, message_type, data))


def send_now(stream: str, message_type: str, data: dict) -> None:
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        message, text = sequencer_for(layer).publish(stream, message_type, utc_iso(timezone.now()), data)
        payload = {"type": "hsi.message", "message": message, "text": text}
        if isinstance(layer, InMemoryChannelLayer):  # all-in-one: on the server's own loop
            _send_in_memory(layer, group_name(stream), payload, settings.REALTIME_SEND_TIMEOUT_SECONDS)
        else:
            _publisher.run(layer.group_send(group_name(stream), payload), settings.REALTIME_SEND_TIMEOUT_SECONDS)
    except Exception:
        logger.warning("Could not broadcast %s on %s", message_type, stream, exc_info=True)


# The event loop serving each in-memory layer's hubs (all-in-one: the ASGI server's loop), set by the hub.
_server_loops: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def server_loop_attach(layer, loop: asyncio.AbstractEventLoop) -> None:
    """Record ``loop`` as the one whose hubs receive from the in-memory ``layer`` (called by the hub)."""
    if isinstance(layer, InMemoryChannelLayer):
        _server_loops[layer] = loop


def _send_in_memory(layer, group: str, payload: dict, timeout: float) -> None:
    """``group_send`` on the in-memory layer, run on the loop its receivers wait on.

    Its queues are plain ``asyncio.Queue``s of that loop: a put from another loop or thread neither is safe nor
    wakes the loop (the message would wait for the next unrelated wake-up). A publisher in a pool, ticker or
    watcher thread hands the send to the server loop; without a server loop (a management command, tests without
    a server) ``async_to_sync`` runs it as before."""
    loop = _server_loops.get(layer)
    if loop is None or loop.is_closed() or not loop.is_running():
        async_to_sync(layer.group_send)(group, payload)
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:  # synchronous code on the server loop itself: it cannot wait for the loop, so queue it
        loop.create_task(layer.group_send(group, payload))
        return
    future = asyncio.run_coroutine_threadsafe(layer.group_send(group, payload), loop)
    try:
        future.result(timeout)
    except TimeoutError:
        future.cancel()
        raise


def _dumps(value) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)


def message_parts(message_type: str, timestamp: str, data: dict) -> tuple[str, str]:
    """The wire text of a data message around its ``seq``: ``head + str(seq) + tail`` (§3.2 envelope order)."""
    head = '{"type":' + _dumps(message_type) + ',"seq":'
    tail = ',"timestamp":' + _dumps(timestamp) + ',"data":' + _dumps(data) + "}"
    return head, tail


@dataclass(frozen=True)
class Buffered:
    """What a stream holds for a resync: its current ``seq`` and the buffered messages (oldest first)."""

    current_seq: int
    messages: list[dict]

    def since(self, last_seq: int) -> tuple[list[dict], bool]:
        """Messages with ``seq > last_seq`` and whether they are all there (the buffer still reaches ``last_seq+1``)."""
        newer = [m for m in self.messages if m["seq"] > last_seq]
        if last_seq > self.current_seq:  # the counter was reset (all-in-one restart, Redis flush): reload over REST
            return newer, False
        if last_seq == self.current_seq:
            return newer, True
        oldest = self.messages[0]["seq"] if self.messages else None
        return newer, oldest is not None and oldest <= last_seq + 1


class LocalSequencer:
    """All-in-one: per-stream counter and ring of the last ``WEBSOCKET_RESYNC_BUFFER`` messages, in this process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._seq: dict[str, int] = {}
        self._rings: dict[str, deque] = {}

    def publish(self, stream: str, message_type: str, timestamp: str, data: dict) -> tuple[dict, str]:
        head, tail = message_parts(message_type, timestamp, data)
        size = settings.WEBSOCKET_RESYNC_BUFFER
        with self._lock:
            seq = self._seq[stream] = self._seq.get(stream, 0) + 1
            message = {"type": message_type, "seq": seq, "timestamp": timestamp, "data": data}
            ring = self._rings.get(stream)
            if ring is None or ring.maxlen != size:
                ring = self._rings[stream] = deque(ring or (), maxlen=size)
            ring.append(message)
        return message, f"{head}{seq}{tail}"

    def current_seq(self, stream: str) -> int:
        with self._lock:
            return self._seq.get(stream, 0)

    def buffered(self, stream: str) -> Buffered:
        with self._lock:
            return Buffered(self._seq.get(stream, 0), list(self._rings.get(stream, ())))


# KEYS: seq key, buffer key. ARGV: head, tail, buffer size. Returns the new seq.
_PUBLISH_SCRIPT = """
local seq = redis.call('INCR', KEYS[1])
local size = tonumber(ARGV[3])
if size > 0 then
  redis.call('RPUSH', KEYS[2], ARGV[1] .. seq .. ARGV[2])
  redis.call('LTRIM', KEYS[2], -size, -1)
else
  redis.call('DEL', KEYS[2])
end
return seq
"""
# KEYS: seq key, buffer key. Returns {current seq or false, entries}.
_BUFFERED_SCRIPT = """
return {redis.call('GET', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1)}
"""


class RedisSequencer:
    """Distributed: the counter and buffer in Redis, shared by every process; one round trip per message.

    A synchronous redis-py client (its own pool), created lazily and again in a forked child.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._state: tuple[int, str, object, object, object] | None = None

    def _scripts(self):
        with self._lock:
            pid, url = os.getpid(), settings.REDIS_URL
            if self._state is None or self._state[0] != pid or self._state[1] != url:
                import redis

                client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
                publish = client.register_script(_PUBLISH_SCRIPT)
                buffered = client.register_script(_BUFFERED_SCRIPT)
                self._state = (pid, url, client, publish, buffered)
            return self._state[2], self._state[3], self._state[4]

    @staticmethod
    def keys(stream: str) -> list[str]:
        prefix = settings.HSI_KEY_PREFIX
        return [f"{prefix}:ws:seq:{stream}", f"{prefix}:ws:buffer:{stream}"]

    def publish(self, stream: str, message_type: str, timestamp: str, data: dict) -> tuple[dict, str]:
        head, tail = message_parts(message_type, timestamp, data)
        _client, publish, _buffered = self._scripts()
        seq = int(publish(keys=self.keys(stream), args=[head, tail, settings.WEBSOCKET_RESYNC_BUFFER]))
        message = {"type": message_type, "seq": seq, "timestamp": timestamp, "data": data}
        return message, f"{head}{seq}{tail}"

    def current_seq(self, stream: str) -> int:
        client, _publish, _buffered = self._scripts()
        value = client.get(self.keys(stream)[0])
        return int(value) if value is not None else 0

    def buffered(self, stream: str) -> Buffered:
        _client, _publish, buffered = self._scripts()
        current, entries = buffered(keys=self.keys(stream))
        messages = []
        for entry in entries:
            try:
                messages.append(json.loads(entry))
            except ValueError:
                continue
        return Buffered(int(current) if current is not None else 0, messages)


_local_sequencer = LocalSequencer()
_redis_sequencer = RedisSequencer()


def sequencer_for(layer=None) -> LocalSequencer | RedisSequencer:
    """Redis when the layer is shared through Redis; the in-process one for the in-memory layer (one process)."""
    if layer is None:
        layer = get_channel_layer()
    if settings.REDIS_URL and not isinstance(layer, InMemoryChannelLayer):
        return _redis_sequencer
    return _local_sequencer


class _Publisher:
    """One event loop per process, in a daemon thread, that every synchronous send runs on.

    ``async_to_sync`` outside a server runs each call on a new event loop in a new thread, and channels-redis opens
    its Redis connections per loop: one connection and one thread per message (~4 ms each). Here the loop, and so
    the layer's connections, live as long as the process. A forked child (a Celery prefork worker) starts its own.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None

    def run(self, coroutine: Coroutine, timeout: float):
        future = asyncio.run_coroutine_threadsafe(coroutine, self._running_loop())
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()  # not delivered later and out of order, and no sends pile up behind a stalled Redis
            raise

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="hsi-realtime-publisher", daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


_publisher = _Publisher()
