"""The same contract through a real daphne process (the server of ``serve`` and of distributed web processes):
HTTP statuses of refused handshakes and close codes with their reasons, as a browser or ``websockets`` sees them.

Daphne lacks the ASGI denial-response extension and cannot send close codes other than 1000 on its own;
``hsi.ws_handshake.install_daphne_extensions`` adds both, and these tests hold it to that.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.processes import Deployment, database_url
from tests.fakes.stalled_peer import read_until_quiet, stalled_websocket

API_KEY = "hsi_daphne_ws_key_0123456789abcdef"


@pytest.fixture
def web(transactional_db, settings, tmp_path):
    from django.db import connection

    (tmp_path / "foscam").mkdir(exist_ok=True)
    (tmp_path / "data").mkdir(exist_ok=True)
    install = Deployment(
        database_url=database_url(connection.settings_dict),
        redis_url=settings.REDIS_URL or os.environ["REDIS_URL"],
        workdir=tmp_path,
        foscam_root=tmp_path / "foscam",
        data_dir=tmp_path / "data",
        key_prefix=f"{settings.HSI_KEY_PREFIX}:ws:{uuid.uuid4().hex[:8]}",
        settings={
            "THROTTLE_ENABLED": "true",
            "THROTTLE_WEBSOCKET_RATE": "2/min",
            "API_KEY_ENABLED": "true",
            "API_KEYS": f"ops={API_KEY}",
            "WEBSOCKET_MAX_MESSAGE_BYTES": "1024",
            "ALLOWED_HOSTS": "localhost,127.0.0.1",
        },
    )
    try:
        web = install.web()
        web.key_prefix = install.key_prefix
        yield web
    finally:
        install.stop_all()
        install.delete_redis_keys()
        connection.close()


def ws_url(web, path: str) -> str:
    return web.base_url.replace("http://", "ws://") + path


def as_client(ip: str) -> dict:
    """Each scenario is its own client IP (the test talks to daphne from a trusted proxy address)."""
    return {"X-Forwarded-For": ip}


async def handshake_status(url: str, **options) -> int:
    try:
        async with connect(url, open_timeout=5, **options):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def close_of(url: str, *, send: str | None = None, **options) -> tuple[int, str, list]:
    received = []
    async with connect(url, open_timeout=5, **options) as socket:
        if send is not None:
            received.append(json.loads(await socket.recv()))
            await socket.send(send)
        try:
            while True:
                received.append(json.loads(await asyncio.wait_for(socket.recv(), 5)))
        except ConnectionClosed as closed:
            return closed.rcvd.code, closed.rcvd.reason, received


def test_daphne_refuses_handshakes_with_the_contract_statuses_and_closes_with_codes_and_reasons(web):
    async def scenario():
        key = f"?api_key={API_KEY}"
        return {
            "unknown path": await handshake_status(ws_url(web, "/ws/nope"), additional_headers=as_client("192.0.2.1")),
            "foreign origin": await handshake_status(
                ws_url(web, "/ws/events" + key),
                origin="https://evil.example",
                additional_headers=as_client("192.0.2.2"),
            ),
            "allowed origin": await handshake_status(
                ws_url(web, "/ws/events" + key),
                origin="http://localhost:3000",
                additional_headers=as_client("192.0.2.3"),
            ),
            "no key": await close_of(ws_url(web, "/ws/events"), additional_headers=as_client("192.0.2.4")),
            "too big": await close_of(
                ws_url(web, "/ws/events" + key), send="x" * 2000, additional_headers=as_client("192.0.2.5")
            ),
            "throttled": [
                (await close_of(ws_url(web, "/ws/system"), additional_headers=as_client("192.0.2.6")))[:2]
                for _ in range(3)
            ],
        }

    outcome = asyncio.run(scenario())

    assert outcome["unknown path"] == 404
    assert outcome["foreign origin"] == 403
    assert outcome["allowed origin"] == 101
    assert outcome["no key"] == (1008, "unauthorized", [])
    assert outcome["too big"][:2] == (1009, "message too big")
    assert outcome["throttled"] == [(1008, "unauthorized"), (1008, "unauthorized"), (1013, "rate_limited")]


def test_a_camera_created_over_rest_reaches_a_socket_of_the_same_daphne_with_hsi_v1(web):
    async def scenario():
        url = ws_url(web, "/ws/events")
        subprotocols = [f"api-key.{API_KEY}", "hsi.v1"]
        async with connect(url, subprotocols=subprotocols, additional_headers=as_client("192.0.2.9")) as socket:
            hello = json.loads(await socket.recv())
            async with httpx.AsyncClient(base_url=web.base_url, headers={"X-API-Key": API_KEY}) as client:
                response = await client.post("/api/cameras", json={"name": "Porch", "folder_path": "porch"})
            while True:
                message = json.loads(await asyncio.wait_for(socket.recv(), 5))
                if message["type"] == "camera.created":
                    return socket.subprotocol, hello, response.status_code, message

    subprotocol, hello, status, message = asyncio.run(scenario())

    assert subprotocol == "hsi.v1"
    assert hello["type"] == "connected" and status == 201
    assert message["data"] == {"camera_id": "porch", "name": "Porch"}
    assert message["seq"] == hello["data"]["last_seq"] + 1


def raw_socket_that_never_reads(web, path: str, forwarded_for: str) -> socket.socket:
    host, port = web.base_url.removeprefix("http://").split(":")
    return stalled_websocket(host, int(port), path, headers={"X-Forwarded-For": forwarded_for})


def test_daphne_drops_messages_for_a_peer_that_stops_reading_instead_of_buffering_them(web, settings):
    from hsi.realtime import send_now
    from hsi.ws_handshake import SEND_BUFFER_LIMIT_BYTES

    # This process publishes into the deployment's channel layer and sequence counter.
    prefix = web.key_prefix
    settings.HSI_KEY_PREFIX = prefix
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [settings.REDIS_URL], "prefix": f"{prefix}:asgi", "capacity": 1000, "expiry": 60},
        }
    }
    pad = "x" * 64 * 1024
    count = 3 * SEND_BUFFER_LIMIT_BYTES // len(pad)  # 24 MiB for a peer that takes none of it

    async def scenario():
        stalled = raw_socket_that_never_reads(web, f"/ws/events?api_key={API_KEY}", "192.0.2.20")
        url = ws_url(web, "/ws/events")
        async with connect(url, subprotocols=[f"api-key.{API_KEY}"], additional_headers=as_client("192.0.2.21")) as ok:
            await ok.recv()  # connected
            await ok.send(json.dumps({"type": "subscribe", "data": {"events": ["test.marker"]}}))
            await ok.recv()  # subscribed
            for n in range(count):
                await asyncio.to_thread(send_now, "events", "test.bulk", {"n": n, "pad": pad})
            await asyncio.to_thread(send_now, "events", "test.marker", {})
            while json.loads(await asyncio.wait_for(ok.recv(), 10))["type"] != "test.marker":
                pass
        await asyncio.sleep(0.5)  # the stalled socket's sender writes what its outbox still holds
        return await asyncio.to_thread(read_until_quiet, stalled)

    held = asyncio.run(scenario())

    published = count * len(pad)
    # What the peer finally reads is what daphne held (≤ the limit and one message) plus the kernel's buffers.
    assert held < published // 2
