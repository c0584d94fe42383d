"""WebSocket clients over the real ASGI application (``hsi.asgi.application``: origin gate, session stack, routing).

``ws_client(path, ...)`` builds a ``WebsocketCommunicator`` with the parts of the scope a server fills in (the peer
address, the denial-response extension when asked). Tests run their async scenario with ``run(...)``
(``async_to_sync``: database work of the consumers runs on the test's own thread and connection, inside the
test's transaction).
"""

from __future__ import annotations

import asyncio
import json
from unittest import mock

from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from hsi.asgi import application

ALLOWED_ORIGIN = "http://localhost:3000"


def ws_client(
    path: str,
    *,
    origin: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    subprotocols: list[str] | None = None,
    client_ip: str = "203.0.113.10",
    denial_extension: bool = False,
) -> WebsocketCommunicator:
    all_headers = list(headers or [])
    if origin is not None:
        all_headers.append((b"origin", origin.encode()))
    communicator = WebsocketCommunicator(application, path, headers=all_headers, subprotocols=subprotocols)
    communicator.scope["client"] = (client_ip, 50000)
    communicator.scope["server"] = ("127.0.0.1", 8000)
    if denial_extension:
        communicator.scope["extensions"] = {"websocket.http.response": {}}
    return communicator


def run(scenario, *args, **kwargs):
    """Run an async scenario. Channels closes "old" database connections when a consumer ends (outside the windows
    where ``WebsocketCommunicator`` disables that), which would close the test's transaction under it."""
    with mock.patch("channels.db.close_old_connections", lambda: None):
        return async_to_sync(scenario)(*args, **kwargs)


async def receive_json(communicator: WebsocketCommunicator, timeout: float = 2.0) -> dict:
    return json.loads(await communicator.receive_from(timeout))


async def connected(path: str = "/ws/events", **kwargs) -> tuple[WebsocketCommunicator, dict]:
    """An accepted connection and its ``connected`` message."""
    communicator = ws_client(path, **kwargs)
    accepted, _ = await communicator.connect()
    assert accepted
    hello = await receive_json(communicator)
    assert hello["type"] == "connected"
    return communicator, hello


async def receive_until(communicator: WebsocketCommunicator, predicate, timeout: float = 3.0) -> dict:
    """The first message matching ``predicate`` (others skipped: e.g. periodic pings)."""
    async with asyncio.timeout(timeout):
        while True:
            message = await receive_json(communicator, timeout)
            if predicate(message):
                return message


async def close_frame(communicator: WebsocketCommunicator, timeout: float = 2.0) -> dict:
    """The next output, which must be the server's close (``{"type": "websocket.close", "code", "reason"}``)."""
    output = await communicator.receive_output(timeout)
    assert output["type"] == "websocket.close", output
    return output
