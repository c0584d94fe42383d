"""Connecting to /ws/events and /ws/system (CONTRACT §3.1): origin, unknown paths, throttle, auth, subprotocols."""

from __future__ import annotations

import re

import pytest
import time_machine

from system.models import AuditLog
from system.services import api_key_create, api_key_revoke
from tests.integration.websocket.support import ALLOWED_ORIGIN, close_frame, connected, receive_json, run, ws_client

pytestmark = pytest.mark.django_db


def test_a_client_connects_and_is_told_its_connection_details():
    async def scenario():
        communicator, hello = await connected("/ws/events")
        await communicator.disconnect()
        return hello

    hello = run(scenario)

    data = hello["data"]
    assert re.fullmatch(r"ws-[0-9a-f]{8}", data["connection_id"])
    assert data["channel"] == "events"
    assert data["server_time"].endswith("Z")
    assert data["last_seq"] == 0
    assert data["ping_interval"] == 30 and data["idle_timeout"] == 300
    assert "seq" not in hello


@pytest.mark.parametrize("path", ["/ws/events", "/ws/events/", "/ws/system"])
def test_both_streams_accept_with_and_without_a_trailing_slash(path):
    async def scenario():
        communicator, hello = await connected(path)
        await communicator.disconnect()
        return hello

    assert run(scenario)["data"]["channel"] == path.strip("/").split("/")[1]


@pytest.mark.parametrize("origin", [None, ALLOWED_ORIGIN, "http://localhost:8000", "https://127.0.0.1"])
def test_a_handshake_without_origin_or_from_an_allowed_one_passes(origin):
    async def scenario():
        communicator, _hello = await connected("/ws/events", origin=origin)
        await communicator.disconnect()

    run(scenario)


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost.evil.example:3000"])
def test_a_foreign_origin_is_refused_at_the_handshake_with_403(origin):
    async def scenario():
        plain = ws_client("/ws/events", origin=origin)
        accepted, _code = await plain.connect()
        extended = ws_client("/ws/events", origin=origin, denial_extension=True)
        await extended.send_input({"type": "websocket.connect"})
        start = await extended.receive_output()
        await extended.receive_output()  # body
        return accepted, start

    accepted, start = run(scenario)

    assert accepted is False  # before accept: a server without the denial extension answers 403
    assert start == {
        "type": "websocket.http.response.start",
        "status": 403,
        "headers": start["headers"],
    }


@pytest.mark.parametrize("path", ["/ws/other", "/ws/", "/ws/events/extra", "/api/events"])
def test_any_other_path_is_refused_at_the_handshake_with_404(path):
    async def scenario():
        plain = ws_client(path)
        accepted, _code = await plain.connect()
        extended = ws_client(path, denial_extension=True)
        await extended.send_input({"type": "websocket.connect"})
        start = await extended.receive_output()
        body = await extended.receive_output()
        return accepted, start, body

    accepted, start, body = run(scenario)

    assert accepted is False
    assert start["type"] == "websocket.http.response.start" and start["status"] == 404
    assert body == {"type": "websocket.http.response.body", "body": b"Not Found"}


def test_the_eleventh_attempt_in_a_minute_is_accepted_then_closed_1013(settings):
    settings.THROTTLE_WEBSOCKET_RATE = "10/min"

    async def attempt(ip="198.51.100.7"):
        communicator = ws_client("/ws/events", client_ip=ip)
        accepted, _ = await communicator.connect()
        first = await communicator.receive_output()
        await communicator.disconnect()
        return accepted, first

    with time_machine.travel("2026-12-04 10:00:00Z", tick=False) as traveller:
        results = [run(attempt) for _ in range(11)]
        other_ip = run(attempt, "198.51.100.8")
        traveller.shift(61)
        after_a_minute = run(attempt)

    assert all(accepted for accepted, _ in results)
    assert [first["type"] for _, first in results[:10]] == ["websocket.send"] * 10
    assert results[10][1] == {"type": "websocket.close", "code": 1013, "reason": "rate_limited"}
    assert other_ip[1]["type"] == "websocket.send"
    assert after_a_minute[1]["type"] == "websocket.send"
    rows = AuditLog.objects.filter(action="rate_limit_exceeded", resource_type="request")
    assert rows.count() == 1 and rows.get().ip_address == "198.51.100.7"


def test_the_throttle_uses_the_forwarded_address_only_behind_a_trusted_proxy(settings):
    settings.THROTTLE_WEBSOCKET_RATE = "1/min"

    async def attempt(forwarded):
        headers = [(b"x-forwarded-for", forwarded.encode())]
        communicator = ws_client("/ws/events", client_ip="127.0.0.1", headers=headers)
        await communicator.connect()
        first = await communicator.receive_output()
        await communicator.disconnect()
        return first["type"]

    assert [run(attempt, ip) for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.1")] == [
        "websocket.send",
        "websocket.send",
        "websocket.close",
    ]


def test_the_throttle_ignores_the_forwarded_address_from_an_untrusted_peer(settings):
    settings.THROTTLE_WEBSOCKET_RATE = "1/min"

    async def attempt(forwarded):
        headers = [(b"x-forwarded-for", forwarded.encode())]
        communicator = ws_client("/ws/events", client_ip="198.51.100.40", headers=headers)
        await communicator.connect()
        first = await communicator.receive_output()
        await communicator.disconnect()
        return first["type"]

    # Each attempt claims another address; the peer is not a proxy, so they all count against 198.51.100.40.
    assert [run(attempt, ip) for ip in ("192.0.2.1", "192.0.2.2")] == ["websocket.send", "websocket.close"]


def test_throttling_can_be_switched_off(settings):
    settings.THROTTLE_ENABLED = False
    settings.THROTTLE_WEBSOCKET_RATE = "1/min"

    async def scenario():
        for _ in range(3):
            communicator, _hello = await connected("/ws/events")
            await communicator.disconnect()

    run(scenario)


@pytest.fixture
def keys_on(settings):
    settings.API_KEY_ENABLED = True
    settings.API_KEYS = "ops=hsi_ws_test_key_0123456789abcdef"
    return "hsi_ws_test_key_0123456789abcdef"


@pytest.mark.parametrize(
    ("path", "subprotocols"),
    [("/ws/events", None), ("/ws/events?api_key=wrong", None), ("/ws/system", ["api-key.wrong"])],
)
def test_a_missing_or_wrong_key_is_accepted_then_closed_1008_with_nothing_sent(keys_on, path, subprotocols):
    async def scenario():
        communicator = ws_client(path, subprotocols=subprotocols)
        accepted, _ = await communicator.connect()
        closing = await close_frame(communicator)
        await communicator.disconnect()
        return accepted, closing

    accepted, closing = run(scenario)

    assert accepted is True
    assert closing == {"type": "websocket.close", "code": 1008, "reason": "unauthorized"}
    assert AuditLog.objects.filter(action="auth_failed", resource_type="request").count() == 1


def test_a_key_in_the_query_string_authenticates(keys_on):
    async def scenario():
        communicator, hello = await connected(f"/ws/events?api_key={keys_on}")
        await communicator.disconnect()
        return hello

    assert run(scenario)["data"]["channel"] == "events"


def test_a_stored_key_authenticates_and_a_revoked_one_does_not(keys_on):
    created = api_key_create("dashboard")

    async def first_message():
        communicator = ws_client(f"/ws/system?api_key={created.plaintext}")
        await communicator.connect()
        output = await communicator.receive_output()
        await communicator.disconnect()
        return output

    while_valid = run(first_message)
    api_key_revoke("dashboard")
    after_revoke = run(first_message)

    assert while_valid["type"] == "websocket.send" and '"connected"' in while_valid["text"]
    assert after_revoke == {"type": "websocket.close", "code": 1008, "reason": "unauthorized"}


def test_a_key_as_subprotocol_authenticates_and_that_entry_is_selected(keys_on):
    async def scenario():
        communicator = ws_client("/ws/events", subprotocols=[f"api-key.{keys_on}"])
        accepted, subprotocol = await communicator.connect()
        hello = await receive_json(communicator)
        await communicator.disconnect()
        return accepted, subprotocol, hello

    accepted, subprotocol, hello = run(scenario)

    assert accepted and subprotocol == f"api-key.{keys_on}" and hello["type"] == "connected"


def test_hsi_v1_is_selected_when_offered_even_with_the_key_as_subprotocol(keys_on):
    async def scenario():
        communicator = ws_client("/ws/events", subprotocols=[f"api-key.{keys_on}", "hsi.v1"])
        accepted, subprotocol = await communicator.connect()
        hello = await receive_json(communicator)
        await communicator.disconnect()
        return accepted, subprotocol, hello

    accepted, subprotocol, hello = run(scenario)

    assert accepted and subprotocol == "hsi.v1" and hello["type"] == "connected"


def test_with_the_key_in_the_query_the_offered_key_subprotocol_is_still_selected(keys_on):
    async def scenario():
        communicator = ws_client(f"/ws/events?api_key={keys_on}", subprotocols=["api-key.ignored-entry"])
        accepted, subprotocol = await communicator.connect()
        hello = await receive_json(communicator)
        await communicator.disconnect()
        return accepted, subprotocol, hello

    accepted, subprotocol, hello = run(scenario)

    assert accepted and subprotocol == "api-key.ignored-entry" and hello["type"] == "connected"


def test_without_keys_enabled_hsi_v1_is_selected_and_no_subprotocol_otherwise():
    async def scenario(subprotocols):
        communicator = ws_client("/ws/events", subprotocols=subprotocols)
        _accepted, subprotocol = await communicator.connect()
        await communicator.disconnect()
        return subprotocol

    assert run(scenario, ["hsi.v1"]) == "hsi.v1"
    assert run(scenario, ["other"]) is None


def test_a_staff_session_authenticates(keys_on, client, django_user_model):
    staff = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    client.force_login(staff)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def scenario():
        communicator, hello = await connected("/ws/events", headers=[(b"cookie", cookie)])
        await communicator.disconnect()
        return hello

    assert run(scenario)["type"] == "connected"


def test_a_non_staff_session_does_not_authenticate(keys_on, client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=False)
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def scenario():
        communicator = ws_client("/ws/events", headers=[(b"cookie", cookie)])
        await communicator.connect()
        closing = await close_frame(communicator)
        await communicator.disconnect()
        return closing

    assert run(scenario)["code"] == 1008


def staff_cookie(client, django_user_model) -> bytes:
    staff = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    client.force_login(staff)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def test_with_a_wildcard_cors_origin_a_session_from_a_foreign_site_does_not_authenticate(
    keys_on, settings, client, django_user_model
):
    settings.CORS_ALLOW_ALL_ORIGINS = True
    cookie = staff_cookie(client, django_user_model)

    async def scenario():
        communicator = ws_client("/ws/events", origin="https://evil.example", headers=[(b"cookie", cookie)])
        accepted, _ = await communicator.connect()
        closing = await close_frame(communicator)
        await communicator.disconnect()
        return accepted, closing

    accepted, closing = run(scenario)

    assert accepted is True  # the wildcard lets the handshake through ...
    assert closing == {"type": "websocket.close", "code": 1008, "reason": "unauthorized"}  # ... not the cookie


def test_with_a_wildcard_cors_origin_a_key_and_a_listed_origins_session_still_authenticate(
    keys_on, settings, client, django_user_model
):
    settings.CORS_ALLOW_ALL_ORIGINS = True
    cookie = staff_cookie(client, django_user_model)

    async def scenario():
        with_key, _ = await connected(f"/ws/events?api_key={keys_on}", origin="https://evil.example")
        await with_key.disconnect()
        listed, hello = await connected("/ws/events", origin=ALLOWED_ORIGIN, headers=[(b"cookie", cookie)])
        await listed.disconnect()
        return hello

    assert run(scenario)["type"] == "connected"
