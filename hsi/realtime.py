"""Publishing to WebSocket clients (CONTRACT §3): messages leave only after the transaction commits.

Every process publishes through the Channels layer (channels-redis in distributed mode), so a client connected to
any web process receives what any worker caused.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
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
    message = {"type": message_type, "timestamp": utc_iso(timezone.now()), "data": data}
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        payload = {"type": "hsi.message", "message": message}
        if isinstance(layer, InMemoryChannelLayer):  # all-in-one: the server's own loop, as asgiref routes it
            async_to_sync(layer.group_send)(group_name(stream), payload)
        else:
            _publisher.run(layer.group_send(group_name(stream), payload), settings.REALTIME_SEND_TIMEOUT_SECONDS)
    except Exception:
        logger.warning("Could not broadcast %s on %s", message_type, stream, exc_info=True)


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
