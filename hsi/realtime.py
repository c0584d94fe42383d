"""Publishing to WebSocket clients (CONTRACT §3): messages leave only after the transaction commits.

Every process publishes through the Channels layer (channels-redis in distributed mode), so a client connected to
any web process receives what any worker caused.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
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
        async_to_sync(layer.group_send)(group_name(stream), {"type": "hsi.message", "message": message})
    except Exception:
        logger.warning("Could not broadcast %s on %s", message_type, stream, exc_info=True)
