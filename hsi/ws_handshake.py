"""WebSocket handshake refusals (CONTRACT §3.1): a foreign ``Origin`` is HTTP 403, an unknown path HTTP 404.

A refusal before accept is an HTTP response. ASGI's *WebSocket Denial Response* extension
(``websocket.http.response.start`` / ``.body``, advertised as ``scope["extensions"]["websocket.http.response"]``)
lets the application choose its status; a server without the extension turns a close-before-accept into 403.

Daphne (the server of ``serve`` and of the distributed web processes) does not implement the extension, and also
drops the ``reason`` of a ``websocket.close``. ``install_daphne_extensions()`` (called by ``hsi.asgi``) adds both to
daphne's WebSocket protocol: the denial status reaches the client as the HTTP status of the refused handshake,
and close reasons (``rate_limited``, ``unauthorized``, ``idle timeout``) reach it in the close frame. (Daphne
closes through autobahn's ``sendClose``, which raises for every code but 1000 and 3000–4999: without this, the
contract's 1008, 1009, 1011 and 1013 could not be sent at all.)

Daphne's ``send`` also never waits: Twisted buffers whatever a peer does not read, without limit, so a consumer's
outbox never fills and a stalled peer would grow the process's memory. The extension therefore **drops** a
``websocket.send`` while more than ``SEND_BUFFER_LIMIT_BYTES`` wait in the socket's transport (the connection stays
open; its client sees the gap in ``seq`` and resyncs once it reads again), like a full outbox does.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

logger = logging.getLogger("hsi.websocket")

DENIAL_EXTENSION = "websocket.http.response"
# Bytes waiting in one socket's transport past which daphne drops new messages for it (see the module docstring).
SEND_BUFFER_LIMIT_BYTES = 8 * 1024 * 1024


def header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def deny(scope, send, status: int) -> None:
    """Refuse the handshake with HTTP ``status`` (a server without the denial extension answers 403)."""
    if DENIAL_EXTENSION in (scope.get("extensions") or {}):
        body = HTTPStatus(status).phrase.encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close"})


class HandshakeDenied:
    """An ASGI application refusing every WebSocket handshake with ``status`` (the catch-all route: 404)."""

    def __init__(self, status: int):
        self.status = status

    async def __call__(self, scope, receive, send):
        message = await receive()
        if message["type"] == "websocket.connect":
            await deny(scope, send, self.status)


NO_ORIGIN, LISTED_ORIGIN, WILDCARD_ORIGIN = "none", "listed", "wildcard"


def origin_admission(origin: str | None) -> str | None:
    """How a handshake's ``Origin`` passes (CONTRACT §3.1.0), or None when it does not.

    ``none``: no ``Origin`` (a non-browser client); ``listed``: its host is in ``ALLOWED_HOSTS`` or the origin in
    ``CORS_ALLOWED_ORIGINS``; ``wildcard``: only ``CORS_ALLOWED_ORIGINS=*`` (``CORS_ALLOW_ALL_ORIGINS``) lets it
    in, so any site can open the socket and a session cookie must not authenticate it (cross-site hijacking)."""
    if origin is None:
        return NO_ORIGIN
    origin = origin.strip()
    entries = [entry.rstrip("/").lower() for entry in getattr(settings, "CORS_ALLOWED_ORIGINS", ())]
    if origin.rstrip("/").lower() in entries:
        return LISTED_ORIGIN
    parts = urlsplit(origin)
    if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc:
        domain, _port = split_domain_port(parts.netloc.rpartition("@")[2])
        if domain and validate_host(domain, settings.ALLOWED_HOSTS):
            return LISTED_ORIGIN
    if getattr(settings, "CORS_ALLOW_ALL_ORIGINS", False) or "*" in entries:
        return WILDCARD_ORIGIN
    return None


def origin_allowed(origin: str | None) -> bool:
    """No ``Origin`` passes; otherwise its host must be in ``ALLOWED_HOSTS`` or the origin in
    ``CORS_ALLOWED_ORIGINS`` (or that setting is ``*``)."""
    return origin_admission(origin) is not None


def session_auth_allowed(scope) -> bool:
    """Whether a session cookie may authenticate this handshake: not when only the CORS wildcard admitted it."""
    return origin_admission(header(scope, b"origin")) != WILDCARD_ORIGIN


class OriginGate:
    """Refuses (403, before accept) a WebSocket handshake from a foreign ``Origin``; passes everything else on."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(header(scope, b"origin")):
            return await HandshakeDenied(403)(scope, receive, send)
        return await self.application(scope, receive, send)


def transport_backlog(transport) -> int:
    """Bytes a Twisted transport holds for its peer (written, not yet accepted by the kernel), through TLS layers."""
    total = 0
    for _ in range(4):  # the TCP transport, or a TLS protocol wrapping it
        if transport is None:
            break
        buffered = getattr(transport, "dataBuffer", None)
        if isinstance(buffered, bytes | bytearray | memoryview):
            total += max(0, len(buffered) - int(getattr(transport, "offset", 0) or 0))
        total += int(getattr(transport, "_tempDataLen", 0) or 0)
        transport = getattr(transport, "transport", None)
    return total


_installed = False


def install_daphne_extensions() -> None:
    """Teach daphne's WebSocket protocol the denial-response extension and close reasons (idempotent)."""
    global _installed
    if _installed:
        return
    try:
        from autobahn.websocket.types import ConnectionDeny
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # another ASGI server: nothing to add
        return

    original_create_application = Server.create_application
    original_handle_reply = WebSocketProtocol.handle_reply

    def create_application(self, protocol, scope):
        if scope.get("type") == "websocket":
            scope.setdefault("extensions", {})[DENIAL_EXTENSION] = {}
        return original_create_application(self, protocol, scope)

    def handle_reply(self, message):
        kind = message.get("type")
        if kind == "websocket.http.response.start":
            if self.state == self.STATE_CONNECTING and hasattr(self, "handshake_deferred"):
                status = int(message["status"])
                self.handshake_deferred.errback(ConnectionDeny(code=status, reason=HTTPStatus(status).phrase))
                del self.handshake_deferred
                self.server.protocol_disconnected(self)
            return None
        if kind == "websocket.http.response.body":
            return None
        stalled = kind == "websocket.send" and self.state == self.STATE_OPEN
        if stalled and transport_backlog(self.transport) > SEND_BUFFER_LIMIT_BYTES:
            self.hsi_dropped = getattr(self, "hsi_dropped", 0) + 1
            if self.hsi_dropped == 1:
                logger.warning("A WebSocket peer is not reading: dropping its messages (%s)", self.client_addr)
            return None
        if kind == "websocket.close" and self.state != self.STATE_CONNECTING:
            # autobahn's sendClose (daphne's path) refuses the protocol codes 1008, 1009, 1011, 1013.
            reason = str(message.get("reason") or "").encode()[:123] or None
            return self.sendCloseFrame(code=int(message.get("code") or 1000), reasonUtf8=reason, isReply=False)
        return original_handle_reply(self, message)

    Server.create_application = create_application
    WebSocketProtocol.handle_reply = handle_reply
    _installed = True
