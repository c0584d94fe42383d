"""Live updates end to end (CONTRACT §3, §5): real WebSocket clients on a daphne web process, a Celery worker on
another process, channels-redis between them.

An image dropped into a camera folder must reach a connected client as ``detection.new``, ``detection.batch``,
``event.created`` and ``alert.created``, in that order and with increasing sequence numbers; a client that was away
gets what it missed by ``resync``; a client without a valid key is closed with 1008 before it hears anything; a
handshake from a foreign origin is refused.
"""

from __future__ import annotations

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.e2e.processes import Drops, box, daytime_zone
from tests.fakes.llm_server import verdict_json

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

LIVE_TYPES = ("detection.new", "detection.batch", "event.created", "alert.created")
RECEIVE_TIMEOUT_SECONDS = 60


def ws_url(base_url: str, path: str, **query: str) -> str:
    params = "&".join(f"{key}={value}" for key, value in query.items())
    return base_url.replace("http://", "ws://") + path + (f"?{params}" if params else "")


def receive_until(socket, wanted: str, *, timeout: float = RECEIVE_TIMEOUT_SECONDS) -> list[dict]:
    """Every message up to and including the first of type ``wanted`` (pings and other types included)."""
    deadline = time.monotonic() + timeout
    messages = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {wanted} within {timeout:.0f} s; got {[m['type'] for m in messages]}")
        message = json.loads(socket.recv(timeout=remaining))
        messages.append(message)
        if message["type"] == wanted:
            return messages


@pytest.fixture
def live_stack(deployment, fake_detector, fake_llm):
    """A worker, beat, the watcher and a web process with API keys on, the fakes answering, one alert rule."""
    from alerts.models import AlertRule
    from system.services import api_key_create

    drops = Drops(deployment.foscam_root)
    fake_detector.detect_fn = drops.detect
    fake_llm.reply_fn = lambda _payload: verdict_json(score=80, level="high", summary="A person at the door.")
    key = api_key_create("e2e-live").plaintext
    AlertRule.objects.create(name="Anything risky", risk_threshold=50, severity="high")
    deployment.settings.update(
        DETECTOR_URL=fake_detector.url,
        LLM_URL=fake_llm.url,
        LLM_BACKEND="llamacpp",
        TIME_ZONE=daytime_zone(),
        API_KEY_ENABLED="true",
    )
    stack = deployment.start(web=True)
    return stack, drops, key


def test_a_dropped_image_reaches_a_connected_client_as_detection_batch_event_and_alert_in_seq_order(live_stack):
    stack, drops, key = live_stack

    # Given a client connected to /ws/events with a valid key
    with connect(ws_url(stack.web.base_url, "/ws/events", api_key=key), open_timeout=10) as socket:
        connected = json.loads(socket.recv(timeout=10))
        assert connected["type"] == "connected"
        assert connected["data"]["channel"] == "events"

        # When a person is dropped into the front door's folder
        drops.image("front_door", "person.jpg", [box("person", 0.95)])

        # Then the client hears the detection, the batch, the event and the alert, in order, seq increasing
        messages = receive_until(socket, "alert.created")

    data_messages = [m for m in messages if "seq" in m]
    first_of = {}
    for message in data_messages:
        first_of.setdefault(message["type"], message)
    assert set(LIVE_TYPES) <= set(first_of), [m["type"] for m in data_messages]
    seqs = [first_of[name]["seq"] for name in LIVE_TYPES]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    event = first_of["event.created"]["data"]
    alert = first_of["alert.created"]["data"]
    assert first_of["detection.new"]["data"]["camera_id"] == "front_door"
    assert first_of["detection.new"]["data"]["object_type"] == "person"
    assert first_of["detection.batch"]["data"]["detection_ids"] == [first_of["detection.new"]["data"]["id"]]
    assert (event["camera_id"], event["risk_score"]) == ("front_door", 80)
    assert (alert["event_id"], alert["rule_name"], alert["severity"]) == (event["id"], "Anything risky", "high")


def test_resync_replays_what_a_client_missed_while_away(live_stack):
    stack, drops, key = live_stack
    url = ws_url(stack.web.base_url, "/ws/events", api_key=key)

    # Given a client that saw the first event and then went away
    with connect(url, open_timeout=10) as socket:
        socket.recv(timeout=10)  # connected
        drops.image("front_door", "first.jpg", [box("person", 0.95)])
        seen = receive_until(socket, "alert.created")
    last_seq = max(m["seq"] for m in seen if "seq" in m)

    # When a second event happens while it is away, and it comes back asking for everything after last_seq
    drops.image("garage", "second.jpg", [box("person", 0.9)])
    with connect(url, open_timeout=10) as watcher:
        watcher.recv(timeout=10)  # connected
        receive_until(watcher, "alert.created")  # the second event has been published by now
    with connect(url, open_timeout=10) as socket:
        socket.recv(timeout=10)  # connected
        socket.send(json.dumps({"type": "resync", "data": {"last_seq": last_seq}}))
        ack = receive_until(socket, "resync_ack", timeout=10)[-1]
        replayed = [json.loads(socket.recv(timeout=10)) for _ in range(ack["data"]["replayed"])]

    # Then it gets every missed message, flagged as replayed, in seq order, the second alert among them
    assert ack["data"]["complete"] is True
    assert ack["data"]["replayed"] >= 4
    assert all(m["replay"] is True and m["seq"] > last_seq for m in replayed)
    assert [m["seq"] for m in replayed] == sorted(m["seq"] for m in replayed)
    missed = {m["type"] for m in replayed if m["data"].get("camera_id") == "garage"}
    assert set(LIVE_TYPES) <= missed


def test_no_key_is_closed_with_1008_before_any_message_a_foreign_origin_is_refused_a_key_subprotocol_accepted(
    live_stack,
):
    stack, _drops, key = live_stack

    # A connection without a valid key hears nothing: it is closed with 1008
    for url in (
        ws_url(stack.web.base_url, "/ws/events"),
        ws_url(stack.web.base_url, "/ws/system", api_key="not-a-key"),
    ):
        with connect(url, open_timeout=10) as socket, pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008, url

    # A handshake from a foreign origin is refused with 403, even with a valid key
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(stack.web.base_url, "/ws/events", api_key=key), origin="http://evil.example", open_timeout=10)
    assert refused.value.response.status_code == 403

    # A key offered as a subprotocol is accepted and selected; /ws/system then sends its snapshot
    with connect(ws_url(stack.web.base_url, "/ws/system"), subprotocols=[f"api-key.{key}"], open_timeout=10) as socket:
        assert socket.subprotocol == f"api-key.{key}"
        types = [json.loads(socket.recv(timeout=10))["type"] for _ in range(2)]
    assert types == ["connected", "system.status"]
