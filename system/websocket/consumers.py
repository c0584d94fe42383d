"""``/ws/events`` and ``/ws/system`` (CONTRACT §3): one consumer class per stream.

Connect (§3.1): the throttle (1013 ``rate_limited``), then, when ``API_KEY_ENABLED``, the key (``?api_key=``, a
``api-key.KEY`` subprotocol, or a staff session unless only the ``CORS_ALLOWED_ORIGINS=*`` wildcard admitted the
``Origin``; else 1008 ``unauthorized`` with nothing sent), then accept, join
the stream's group, ``connected`` and, on ``/ws/system``, a ``system.status`` snapshot. Origin and unknown paths
are refused earlier, at the handshake (``hsi.ws_handshake``).

Published messages reach a connection through its process's ``StreamHub`` (``system.websocket.hub``), the one
group member per stream and process, which calls ``deliver``: the subscription filter, then the text the publisher
serialised once (``hsi.realtime``) into the connection's own outbox, which its sender task writes to the socket.
Nothing here waits on another client, and blocking work (cache, database, Redis) runs in a thread: database work
on Channels' database thread (``database_sync_to_async``), the rest (throttle, Redis, ``nvidia-smi``) in threads of
its own, so one slow handshake does not hold up the others. ``resync_ack`` and replays go through the outbox too,
behind the live messages already queued, and skip what is queued live: each ``seq`` reaches the client once.

Heartbeat (§3.3): a task per connection sends ``ping`` every ``WEBSOCKET_PING_INTERVAL_SECONDS`` and closes with
1000 ``idle timeout`` after ``WEBSOCKET_IDLE_TIMEOUT_SECONDS`` without a client frame. Both are read at connect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass
from importlib import import_module
from types import SimpleNamespace
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.cookie import parse_cookie
from django.utils import timezone

from hsi import realtime
from hsi.net import client_ip_from
from hsi.timeutils import utc_iso
from hsi.ws_handshake import header, session_auth_allowed
from system.websocket.hub import hub_for
from system.websocket.protocol import ProtocolError, Subscription, parse_client_message, resync_last_seq
from system.websocket.throttle import websocket_attempt_allowed

logger = logging.getLogger("hsi.websocket")

HSI_SUBPROTOCOL = "hsi.v1"
KEY_SUBPROTOCOL_PREFIX = "api-key."
CLOSE_NORMAL = 1000
CLOSE_UNAUTHORIZED = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_RATE_LIMITED = 1013

ADMITTED, RATE_LIMITED, UNAUTHORIZED = "admitted", "rate_limited", "unauthorized"
# The connect-time ``system.status`` when building the real one failed (CONTRACT §3.6 fields, nothing known).
UNHEALTHY_SNAPSHOT = {
    "health": "unhealthy",
    "cameras": None,
    "queue": None,
    "gpu": None,
    "detector": None,
    "llm": None,
    "uptime_seconds": None,
}
# Messages waiting for one slow socket before newer ones are dropped (the client sees a seq gap and resyncs).
OUTBOX_CAPACITY = 1000


@dataclass(frozen=True)
class Admission:
    outcome: str


def _dumps(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def offered_key(scope) -> tuple[str | None, str | None]:
    """(key, the subprotocol entry it came in): ``?api_key=`` first, then an ``api-key.KEY`` subprotocol."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    for value in query.get("api_key", []):
        if value:
            return value, None
    for entry in scope.get("subprotocols") or ():
        if entry.startswith(KEY_SUBPROTOCOL_PREFIX) and len(entry) > len(KEY_SUBPROTOCOL_PREFIX):
            return entry[len(KEY_SUBPROTOCOL_PREFIX) :], entry
    return None, None


def selected_subprotocol(scope) -> str | None:
    """``hsi.v1`` when offered; otherwise the ``api-key.KEY`` entry the key came in (CONTRACT §3.1.2)."""
    offered = scope.get("subprotocols") or ()
    if HSI_SUBPROTOCOL in offered:
        return HSI_SUBPROTOCOL
    for entry in offered:  # also when ``?api_key=`` carried the key: a client offering the entry expects it back
        if entry.startswith(KEY_SUBPROTOCOL_PREFIX) and len(entry) > len(KEY_SUBPROTOCOL_PREFIX):
            return entry
    return None


def scope_client_ip(scope) -> str | None:
    client = scope.get("client") or (None, None)
    return client_ip_from(client[0], header(scope, b"x-forwarded-for"))


def _user_agent(scope) -> str | None:
    agent = header(scope, b"user-agent")
    return agent[:500] if agent else None


def session_user(scope):
    """The user of the Django session cookie in the handshake, or None. Read here, when auth needs it, rather than by
    Channels' session middleware on every connection (which also wraps every frame sent)."""
    cookie = header(scope, b"cookie")
    if not cookie:
        return None
    session_key = parse_cookie(cookie).get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return None
    from django.contrib.auth import get_user

    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return get_user(SimpleNamespace(session=store))


def _authenticated(scope, key: str | None) -> bool:
    if key:
        from system.auth import authenticate_key

        return authenticate_key(key) is not None
    if not session_auth_allowed(scope):  # any site could have opened this socket with the operator's cookie
        return False
    user = session_user(scope)
    return bool(user is not None and user.is_active and user.is_staff)


def _audit(scope, ip: str | None, action: str, key: str, details: dict) -> None:
    from system.services import Actor, audit_record_throttled

    try:
        actor = Actor(name="anonymous", ip_address=ip, user_agent=_user_agent(scope))
        audit_record_throttled(actor, action, "request", key=key, details=details, status="failure")
    except Exception:  # an audit row never decides a connection
        logger.warning("Could not audit %s", action, exc_info=True)


def _authorized(scope, ip: str | None, path: str) -> bool:
    """The key or staff session (CONTRACT §3.1.2); a failure is audited. Database work."""
    key, _entry = offered_key(scope)
    if _authenticated(scope, key):
        return True
    reason = "invalid_api_key" if key else "authentication_required"
    _audit(scope, ip, "auth_failed", ip or "unknown", {"path": path, "method": "WEBSOCKET", "reason": reason})
    return False


async def admit(scope, stream: str) -> Admission:
    """Throttle, then auth (CONTRACT §3.1.1–2).

    The throttle is cache work only: it runs in a thread of its own (``thread_sensitive=False``) rather than on the
    single thread Channels keeps for database work, so handshakes do not queue behind each other there. What reads
    or writes the database (auth, audit rows) runs through ``database_sync_to_async``, which closes connections."""
    ip = scope_client_ip(scope)
    path = scope.get("path", "")
    if not await sync_to_async(websocket_attempt_allowed, thread_sensitive=False)(ip):
        details = {"tier": "websocket", "ip": ip, "path": path}
        await database_sync_to_async(_audit)(scope, ip, "rate_limit_exceeded", f"{ip or 'unknown'}:websocket", details)
        return Admission(RATE_LIMITED)
    if settings.API_KEY_ENABLED and not await database_sync_to_async(_authorized)(scope, ip, path):
        return Admission(UNAUTHORIZED)
    return Admission(ADMITTED)


class StreamConsumer(AsyncWebsocketConsumer):
    """One client of one stream; subclasses name the stream."""

    stream = ""
    # No channel of its own per connection: the stream's hub is the group member (an alias that names no
    # configured layer makes Channels skip the per-connection channel).
    channel_layer_alias = "hsi.no-per-connection-channel"

    async def __call__(self, scope, receive, send):
        self.hub = None
        self.heartbeat = None
        self.sender = None
        try:
            await super().__call__(scope, receive, send)
        finally:  # also when the server cancels the connection without a disconnect
            self._stop_tasks()

    def _stop_tasks(self) -> None:
        for task in (self.heartbeat, self.sender):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        if self.hub is not None:
            hub, self.hub = self.hub, None
            hub.leave(self)

    async def connect(self):
        self.closing = False
        self.dropped = 0
        self.outbox: asyncio.Queue[tuple[int | None, str]] = asyncio.Queue(maxsize=OUTBOX_CAPACITY)
        self.unsent_seqs: set[int] = set()  # data messages queued or being written: a resync does not repeat them
        self.replayed_seqs: set[int] = set()  # the last resync's replays: a live copy arriving late is not repeated
        self.subscription = Subscription()
        self.last_seq = 0
        self.ping_interval = float(settings.WEBSOCKET_PING_INTERVAL_SECONDS)
        self.idle_timeout = float(settings.WEBSOCKET_IDLE_TIMEOUT_SECONDS)
        self.max_message_bytes = int(settings.WEBSOCKET_MAX_MESSAGE_BYTES)
        subprotocol = selected_subprotocol(self.scope)
        try:
            admission = await admit(self.scope, self.stream)
        except Exception:
            logger.exception("WebSocket admission failed")
            await self.accept(subprotocol)
            return await self._close(CLOSE_INTERNAL, "internal error")
        await self.accept(subprotocol)
        if admission.outcome == RATE_LIMITED:
            return await self._close(CLOSE_RATE_LIMITED, "rate_limited")
        if admission.outcome == UNAUTHORIZED:
            return await self._close(CLOSE_UNAUTHORIZED, "unauthorized")
        self.hub = hub_for(self.stream)
        await self.hub.join(self)  # from here on, messages queue up in the outbox until ``connected`` is out
        current_seq = await sync_to_async(realtime.sequencer_for().current_seq, thread_sensitive=False)(self.stream)
        self.last_seq = max(self.last_seq, current_seq)
        self.last_frame_at = asyncio.get_running_loop().time()
        await self._send_json(
            {
                "type": "connected",
                "data": {
                    "connection_id": f"ws-{secrets.token_hex(4)}",
                    "channel": self.stream,
                    "server_time": utc_iso(timezone.now()),
                    "last_seq": current_seq,
                    "ping_interval": _number(self.ping_interval),
                    "idle_timeout": _number(self.idle_timeout),
                },
            }
        )
        await self.after_connected(current_seq)
        self.sender = asyncio.create_task(self._send_outbox())
        self.heartbeat = asyncio.create_task(self._heartbeat())

    async def after_connected(self, current_seq: int) -> None:
        """What a stream sends right after ``connected``."""

    async def disconnect(self, code):
        self.closing = True
        self._stop_tasks()

    async def _close(self, code: int, reason: str) -> None:
        self.closing = True
        self._stop_tasks()
        await self.close(code=code, reason=reason)

    async def _send_json(self, message: dict) -> None:
        await self.send(text_data=_dumps(message))

    # --- server → client -----------------------------------------------------------------------------------

    def deliver(self, event: dict) -> None:
        """A published message, from the hub: queued for this socket when the subscription lets it through.

        Never waits: a socket that cannot keep up loses the newest messages past ``OUTBOX_CAPACITY`` (its client
        sees the gap in ``seq`` and resyncs), and nobody else notices."""
        message = event["message"]
        seq = message.get("seq")
        if isinstance(seq, int) and seq > self.last_seq:
            self.last_seq = seq
        if self.closing or seq in self.replayed_seqs or not self.subscription.matches(message):
            return
        self._queue(
            seq if isinstance(seq, int) else None, event.get("text") or json.dumps(message, separators=(",", ":"))
        )

    def _queue(self, seq: int | None, text: str) -> bool:
        """Put ``text`` in the outbox behind what is already there; False (dropped) when it is full."""
        try:
            self.outbox.put_nowait((seq, text))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1:
                logger.warning("A slow %s client is dropping messages (outbox full)", self.stream)
            return False
        if seq is not None:
            self.unsent_seqs.add(seq)
        return True

    async def _send_outbox(self) -> None:
        try:
            while True:
                seq, text = await self.outbox.get()
                try:
                    await self.send(text_data=text)
                finally:
                    if seq is not None:
                        self.unsent_seqs.discard(seq)
        except asyncio.CancelledError:
            raise
        except Exception:  # the socket is gone: the disconnect follows
            logger.info("A %s socket stopped taking messages", self.stream, exc_info=True)

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + self.ping_interval
        try:
            while not self.closing:
                now = loop.time()
                idle_deadline = self.last_frame_at + self.idle_timeout
                if now >= idle_deadline:
                    await self._close(CLOSE_NORMAL, "idle timeout")
                    return
                if now >= next_ping:
                    await self._send_json({"type": "ping", "data": {"last_seq": self.last_seq}})
                    next_ping = max(next_ping + self.ping_interval, now + self.ping_interval / 2)
                await asyncio.sleep(max(0.0, min(next_ping, idle_deadline) - loop.time()))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("WebSocket heartbeat stopped", exc_info=True)

    # --- client → server -----------------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.closing:
            return
        self.last_frame_at = asyncio.get_running_loop().time()
        size = len(bytes_data) if bytes_data is not None else len(text_data.encode("utf-8", "surrogatepass"))
        if size > self.max_message_bytes:
            return await self._close(CLOSE_TOO_BIG, "message too big")
        if bytes_data is not None:
            text_data = bytes_data.decode("utf-8", "replace")
        if text_data.strip() == "ping":
            return await self._send_json({"type": "pong"})
        try:
            message = parse_client_message(text_data)
            await self.handle(message.type, message.data)
        except ProtocolError as error:
            await self._send_json(error.as_message())

    async def handle(self, message_type: str, data: dict) -> None:
        if message_type == "ping":
            await self._send_json({"type": "pong"})
        elif message_type == "subscribe":
            await self._send_json({"type": "subscribed", "data": self.subscription.subscribe(data)})
        elif message_type == "unsubscribe":
            await self._send_json({"type": "unsubscribed", "data": self.subscription.unsubscribe(data)})
        elif message_type == "resync":
            await self.resync(resync_last_seq(data))
        # "pong": no reply; the frame already counted against the idle timeout.

    async def resync(self, last_seq: int) -> None:
        """``resync_ack`` then every buffered message after ``last_seq`` that the subscription lets through.

        Both go through the outbox, behind the live messages already queued, and a message whose live copy is still
        queued (or being written) is not replayed: the client gets each ``seq`` once, in order."""
        sequencer = realtime.sequencer_for()
        buffered = await sync_to_async(sequencer.buffered, thread_sensitive=False)(self.stream)
        newer, complete = buffered.since(last_seq)
        replay = [m for m in newer if m["seq"] not in self.unsent_seqs and self.subscription.matches(m)]
        ack = {"last_seq": last_seq, "replayed": len(replay), "complete": complete}
        self.replayed_seqs = {m["seq"] for m in replay}
        self._queue(None, _dumps({"type": "resync_ack", "data": ack}))
        for message in replay:
            self._queue(None, _dumps({**message, "replay": True}))


class EventsConsumer(StreamConsumer):
    """``/ws/events``: events, detections, alerts and camera changes (group ``hsi.events``)."""

    stream = "events"


class SystemConsumer(StreamConsumer):
    """``/ws/system``: ``system.status`` (on connect and periodically), service status, GPU stats, DLQ."""

    stream = "system"

    async def after_connected(self, current_seq: int) -> None:
        from system.status import gpu_reading_refresh, system_status_recent

        try:
            # nvidia-smi (up to 2 s) in a thread of its own, then the database part on Channels' database thread
            await sync_to_async(gpu_reading_refresh, thread_sensitive=False)()
            snapshot = await database_sync_to_async(system_status_recent)()
        except Exception:  # the client still learns the state of the system: unhealthy, nothing else known
            logger.warning("Could not build the system.status snapshot", exc_info=True)
            snapshot = UNHEALTHY_SNAPSHOT
        message = {
            "type": "system.status",
            "seq": current_seq,
            "timestamp": utc_iso(timezone.now()),
            "data": snapshot,
        }
        if self.subscription.matches(message):
            await self._send_json(message)
