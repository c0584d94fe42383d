"""What a client sends (CONTRACT §3.3, §3.4): pings, errors that keep the connection open, size limit, idle close."""

from __future__ import annotations

import json

import pytest

from tests.integration.websocket.support import close_frame, connected, receive_json, run

pytestmark = pytest.mark.django_db


def exchange(*frames: str | bytes, path: str = "/ws/events") -> list[dict]:
    """Connect, send each frame and collect one reply per frame (then check the connection still answers)."""

    async def scenario():
        communicator, _hello = await connected(path)
        replies = []
        for frame in frames:
            if isinstance(frame, bytes):
                await communicator.send_to(bytes_data=frame)
            else:
                await communicator.send_to(text_data=frame)
            replies.append(await receive_json(communicator))
        await communicator.send_to(text_data="ping")
        still_open = await receive_json(communicator)
        await communicator.disconnect()
        return replies, still_open

    replies, still_open = run(scenario)
    assert still_open == {"type": "pong"}
    return replies


def test_plain_text_ping_and_json_ping_get_a_pong():
    assert exchange("ping", '{"type": "ping"}', '{"type": "ping", "data": {}}') == [{"type": "pong"}] * 3


def test_a_client_pong_gets_no_reply():
    async def scenario():
        communicator, _hello = await connected()
        await communicator.send_json_to({"type": "pong"})
        nothing = await communicator.receive_nothing(0.2)
        await communicator.disconnect()
        return nothing

    assert run(scenario) is True


def test_text_that_is_not_json_is_invalid_json_with_a_preview():
    text = "hello " + "x" * 200

    (reply,) = exchange(text)

    assert reply["type"] == "error" and reply["error"] == "invalid_json"
    assert reply["details"] == {"raw_preview": text[:100]}
    assert isinstance(reply["message"], str) and reply["message"]


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ("[1, 2]", "non_field_errors"),
        ('"text"', "non_field_errors"),
        ("{}", "type"),
        ('{"type": 5}', "type"),
        ('{"type": ""}', "type"),
        (json.dumps({"type": "x" * 51}), "type"),
        ('{"type": "subscribe", "data": []}', "data"),
        ('{"type": "subscribe", "data": null}', "data"),
    ],
)
def test_a_message_that_is_not_an_object_with_a_type_is_invalid_message_format(frame, field):
    (reply,) = exchange(frame)

    assert reply["error"] == "invalid_message_format"
    assert [error["field"] for error in reply["details"]["validation_errors"]] == [field]


def test_an_unknown_type_lists_the_supported_types():
    (reply,) = exchange('{"type": "hello"}')

    assert reply["error"] == "unknown_message_type"
    assert reply["details"] == {"supported_types": ["ping", "pong", "subscribe", "unsubscribe", "resync"]}


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "subscribe", "data": {"events": []}}, "events"),
        ({"type": "subscribe", "data": {"events": "event.*"}}, "events"),
        ({"type": "subscribe", "data": {"events": ["event.created", "Event.*"]}}, "events.1"),
        ({"type": "subscribe", "data": {"events": ["event"]}}, "events.0"),
        ({"type": "subscribe", "data": {"events": ["*.created"]}}, "events.0"),
        ({"type": "subscribe", "data": {"events": [7]}}, "events.0"),
        ({"type": "subscribe", "data": {"events": ["event.*"] * 51}}, "events"),
        ({"type": "subscribe", "data": {"camera_ids": "front_door"}}, "camera_ids"),
        ({"type": "subscribe", "data": {"camera_ids": [f"c{n}" for n in range(101)]}}, "camera_ids"),
        ({"type": "subscribe", "data": {"camera_ids": [""]}}, "camera_ids.0"),
        ({"type": "unsubscribe", "data": {}}, "events"),
        ({"type": "unsubscribe", "data": {"events": ["bad pattern"]}}, "events.0"),
        ({"type": "resync", "data": {}}, "last_seq"),
        ({"type": "resync"}, "last_seq"),
        ({"type": "resync", "data": {"last_seq": -1}}, "last_seq"),
        ({"type": "resync", "data": {"last_seq": "3"}}, "last_seq"),
        ({"type": "resync", "data": {"last_seq": 1.5}}, "last_seq"),
        ({"type": "resync", "data": {"last_seq": True}}, "last_seq"),
    ],
)
def test_bad_data_for_a_known_type_is_a_validation_error(message, field):
    (reply,) = exchange(json.dumps(message))

    assert reply["type"] == "error" and reply["error"] == "validation_error"
    assert [error["field"] for error in reply["details"]["validation_errors"]] == [field]


def test_a_refused_subscribe_changes_nothing():
    replies = exchange(
        json.dumps({"type": "subscribe", "data": {"events": ["event.*"], "camera_ids": [""]}}),
        json.dumps({"type": "subscribe", "data": {}}),
    )

    assert replies[0]["error"] == "validation_error"
    assert replies[1] == {"type": "subscribed", "data": {"events": ["*"], "camera_ids": []}}


def frame_of(size: int) -> str:
    """A JSON ``ping`` of exactly ``size`` UTF-8 bytes (a two-byte ``é`` first, so the count is of bytes)."""
    frame = json.dumps({"type": "ping", "data": {"pad": "é"}}, ensure_ascii=False)
    frame = frame.replace('"é"', '"é' + "x" * (size - len(frame.encode())) + '"')
    assert len(frame.encode()) == size
    return frame


def test_a_message_one_byte_over_the_size_limit_closes_1009(settings):
    settings.WEBSOCKET_MAX_MESSAGE_BYTES = 1024

    async def scenario():
        communicator, _hello = await connected()
        await communicator.send_to(text_data=frame_of(1025))
        closing = await close_frame(communicator)
        await communicator.disconnect()
        return closing

    assert run(scenario) == {"type": "websocket.close", "code": 1009, "reason": "message too big"}


def test_a_message_exactly_at_the_size_limit_is_read(settings):
    settings.WEBSOCKET_MAX_MESSAGE_BYTES = 1024

    assert exchange(frame_of(1024)) == [{"type": "pong"}]


def test_the_server_pings_with_the_last_seq_at_the_configured_interval(fast_heartbeat):
    fast_heartbeat.WEBSOCKET_IDLE_TIMEOUT_SECONDS = 5

    async def scenario():
        communicator, hello = await connected()
        pings = [await receive_json(communicator, 1.0) for _ in range(2)]
        await communicator.disconnect()
        return hello, pings

    hello, pings = run(scenario)

    assert hello["data"]["ping_interval"] == 0.1 and hello["data"]["idle_timeout"] == 5
    assert pings == [{"type": "ping", "data": {"last_seq": hello["data"]["last_seq"]}}] * 2


def test_a_silent_client_is_closed_1000_idle_timeout(fast_heartbeat):
    async def scenario():
        communicator, _hello = await connected()
        while True:
            output = await communicator.receive_output(2)
            if output["type"] == "websocket.close":
                break
            assert json.loads(output["text"])["type"] == "ping"
        await communicator.disconnect()
        return output

    assert run(scenario) == {"type": "websocket.close", "code": 1000, "reason": "idle timeout"}


def test_any_client_frame_keeps_the_connection_alive(fast_heartbeat):
    async def scenario():
        communicator, _hello = await connected()
        received = []
        for _ in range(8):  # 8 × 0.1 s: more than twice the idle timeout
            await communicator.send_json_to({"type": "pong"})
            received.append(await receive_json(communicator, 1.0))  # the next server ping
        await communicator.disconnect()
        return received

    assert {message["type"] for message in run(scenario)} == {"ping"}
