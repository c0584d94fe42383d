"""Messages published after commit reach clients (CONTRACT §3.2, §3.5, §3.7): seq, subscriptions, resync."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from asgiref.sync import sync_to_async

from cameras.services import camera_create
from hsi.realtime import broadcast, send_now
from system.services import Actor
from tests.integration.websocket.support import connected, receive_json, receive_until, run

pytestmark = pytest.mark.django_db


def publish(*messages: tuple[str, dict], stream: str = "events") -> None:
    for message_type, data in messages:
        send_now(stream, message_type, data)


async def apublish(*messages: tuple[str, dict], stream: str = "events") -> None:
    await sync_to_async(publish)(*messages, stream=stream)


async def subscribe(communicator, **data) -> dict:
    await communicator.send_json_to({"type": "subscribe", "data": data})
    return await receive_until(communicator, lambda m: m["type"] in ("subscribed", "error"))


async def data_messages(communicator, count: int) -> list[dict]:
    return [await receive_until(communicator, lambda m: "seq" in m) for _ in range(count)]


def test_a_camera_created_in_a_committed_transaction_reaches_the_client_with_a_seq(django_capture_on_commit_callbacks):
    def create_camera():
        with django_capture_on_commit_callbacks(execute=True):
            camera_create(data={"name": "Front Door", "folder_path": "front_door"}, actor=Actor.system())

    async def scenario():
        communicator, hello = await connected()
        await sync_to_async(create_camera)()
        message = await receive_until(communicator, lambda m: m["type"] == "camera.created")
        await communicator.disconnect()
        return hello, message

    hello, message = run(scenario)

    assert message["data"] == {"camera_id": "front_door", "name": "Front Door"}
    assert message["seq"] == hello["data"]["last_seq"] + 1
    assert message["timestamp"].endswith("Z")
    assert list(message) == ["type", "seq", "timestamp", "data"]


def test_nothing_is_sent_for_a_transaction_that_rolls_back(django_capture_on_commit_callbacks):
    def broadcast_then_roll_back():
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            broadcast("events", "event.created", {"id": 1})
        return len(callbacks)

    async def scenario():
        communicator, _hello = await connected()
        queued = await sync_to_async(broadcast_then_roll_back)()
        nothing = await communicator.receive_nothing(0.3)
        await communicator.disconnect()
        return queued, nothing

    assert run(scenario) == (1, True)


def test_every_client_sees_the_same_strictly_increasing_seq():
    async def scenario():
        first, _ = await connected()
        second, _ = await connected()
        await apublish(*[("event.updated", {"id": n}) for n in range(5)])
        got = [await data_messages(client, 5) for client in (first, second)]
        for client in (first, second):
            await client.disconnect()
        return got

    first, second = run(scenario)

    seqs = [m["seq"] for m in first]
    assert seqs == [m["seq"] for m in second]
    assert all(b == a + 1 for a, b in itertools.pairwise(seqs))
    assert [m["data"]["id"] for m in first] == list(range(5))


def test_the_streams_count_separately():
    async def scenario():
        events, _ = await connected("/ws/events")
        system, _ = await connected("/ws/system")
        await receive_until(system, lambda m: m["type"] == "system.status")
        await apublish(("event.created", {"id": 1}), ("event.created", {"id": 2}))
        await apublish(("dlq.job_added", {"id": 9}), stream="system")
        got_events = await data_messages(events, 2)
        (got_system,) = await data_messages(system, 1)
        nothing_else = await events.receive_nothing(0.2)
        await events.disconnect()
        await system.disconnect()
        return got_events, got_system, nothing_else

    got_events, got_system, nothing_else = run(scenario)

    assert [m["seq"] for m in got_events] == [1, 2]
    assert got_system["type"] == "dlq.job_added" and got_system["seq"] == 1
    assert nothing_else


def test_the_connected_message_and_pings_carry_the_streams_last_seq(fast_heartbeat):
    fast_heartbeat.WEBSOCKET_IDLE_TIMEOUT_SECONDS = 5
    publish(("event.created", {"id": 1}), ("event.created", {"id": 2}))

    async def scenario():
        communicator, hello = await connected()
        await subscribe(communicator, events=["alert.*"])  # the next message is not delivered, only counted
        await apublish(("event.created", {"id": 3}))
        ping = await receive_until(communicator, lambda m: m["type"] == "ping" and m["data"]["last_seq"] == 3)
        await communicator.disconnect()
        return hello, ping

    hello, ping = run(scenario)

    assert hello["data"]["last_seq"] == 2
    assert ping == {"type": "ping", "data": {"last_seq": 3}}


def test_subscribe_replaces_the_default_then_adds_and_filters_by_type():
    async def scenario():
        communicator, _ = await connected()
        first = await subscribe(communicator, events=["alert.*", "event.created", "alert.*"])
        second = await subscribe(communicator, events=["camera.status_changed", "event.created"])
        await apublish(
            ("event.updated", {"id": 1}),
            ("alert.created", {"id": "a"}),
            ("detection.new", {"id": 2}),
            ("camera.status_changed", {"camera_id": "x"}),
            ("event.created", {"id": 3}),
        )
        got = await data_messages(communicator, 3)
        nothing_else = await communicator.receive_nothing(0.2)
        await communicator.disconnect()
        return first, second, got, nothing_else

    first, second, got, nothing_else = run(scenario)

    assert first == {"type": "subscribed", "data": {"events": ["alert.*", "event.created"], "camera_ids": []}}
    assert second["data"]["events"] == ["alert.*", "event.created", "camera.status_changed"]
    assert [m["type"] for m in got] == ["alert.created", "camera.status_changed", "event.created"]
    assert nothing_else


def test_a_camera_filter_passes_only_those_cameras_and_messages_without_a_camera():
    async def scenario():
        communicator, _ = await connected()
        reply = await subscribe(communicator, camera_ids=["front_door", "garage"])
        await apublish(
            ("detection.new", {"camera_id": "back_yard", "id": 1}),
            ("detection.new", {"camera_id": "garage", "id": 2}),
            ("camera.created", {"name": "no camera id", "id": 3}),
        )
        got = await data_messages(communicator, 2)
        cleared = await subscribe(communicator, camera_ids=[])
        await apublish(("detection.new", {"camera_id": "back_yard", "id": 4}))
        (after_clear,) = await data_messages(communicator, 1)
        await communicator.disconnect()
        return reply, got, cleared, after_clear

    reply, got, cleared, after_clear = run(scenario)

    assert reply["data"] == {"events": ["*"], "camera_ids": ["front_door", "garage"]}
    assert [m["data"]["id"] for m in got] == [2, 3]
    assert cleared["data"]["camera_ids"] == []
    assert after_clear["data"]["id"] == 4


def test_unsubscribe_removes_exact_patterns_and_an_empty_list_leaves_control_messages_only():
    async def scenario():
        communicator, _ = await connected()
        await subscribe(communicator, events=["event.*", "alert.created"])
        await communicator.send_json_to({"type": "unsubscribe", "data": {"events": ["event.*", "event.created"]}})
        partly = await receive_json(communicator)
        await apublish(("event.created", {"id": 1}), ("alert.created", {"id": 2}))
        (got,) = await data_messages(communicator, 1)
        await communicator.send_json_to({"type": "unsubscribe", "data": {"events": ["alert.created"]}})
        emptied = await receive_json(communicator)
        await apublish(("alert.created", {"id": 3}))
        await communicator.send_to(text_data="ping")
        control = await receive_json(communicator)
        nothing_else = await communicator.receive_nothing(0.2)
        await communicator.disconnect()
        return partly, got, emptied, control, nothing_else

    partly, got, emptied, control, nothing_else = run(scenario)

    assert partly == {"type": "unsubscribed", "data": {"events": ["alert.created"], "camera_ids": []}}
    assert got["data"]["id"] == 2
    assert emptied["data"]["events"] == []
    assert control == {"type": "pong"} and nothing_else


def test_resync_replays_what_came_after_last_seq_through_the_subscription():
    publish(*[("event.created" if n % 2 else "detection.new", {"n": n}) for n in range(1, 7)])  # seq 1..6

    async def scenario():
        communicator, _ = await connected()
        await subscribe(communicator, events=["event.*"])
        await communicator.send_json_to({"type": "resync", "data": {"last_seq": 2}})
        ack = await receive_json(communicator)
        replayed = [await receive_json(communicator) for _ in range(ack["data"]["replayed"])]
        await communicator.send_json_to({"type": "resync", "data": {"last_seq": 6}})
        up_to_date = await receive_json(communicator)
        await communicator.disconnect()
        return ack, replayed, up_to_date

    ack, replayed, up_to_date = run(scenario)

    assert ack == {"type": "resync_ack", "data": {"last_seq": 2, "replayed": 2, "complete": True}}
    assert [(m["seq"], m["type"], m["replay"]) for m in replayed] == [
        (3, "event.created", True),
        (5, "event.created", True),
    ]
    assert list(replayed[0]) == ["type", "seq", "timestamp", "data", "replay"]
    assert up_to_date["data"] == {"last_seq": 6, "replayed": 0, "complete": True}


def test_resync_is_incomplete_once_the_buffer_no_longer_reaches_last_seq_plus_one(settings):
    settings.WEBSOCKET_RESYNC_BUFFER = 3
    publish(*[("event.created", {"n": n}) for n in range(1, 7)])  # seq 1..6, buffer keeps 4..6

    async def resync(last_seq):
        communicator, _ = await connected()
        await communicator.send_json_to({"type": "resync", "data": {"last_seq": last_seq}})
        ack = await receive_json(communicator)
        replayed = [await receive_json(communicator) for _ in range(ack["data"]["replayed"])]
        await communicator.disconnect()
        return ack["data"], [m["seq"] for m in replayed]

    assert run(resync, 1) == ({"last_seq": 1, "replayed": 3, "complete": False}, [4, 5, 6])
    assert run(resync, 3) == ({"last_seq": 3, "replayed": 3, "complete": True}, [4, 5, 6])
    assert run(resync, 0) == ({"last_seq": 0, "replayed": 3, "complete": False}, [4, 5, 6])


def redis_client(settings):
    import redis

    return redis.Redis.from_url(settings.REDIS_URL)


def test_seq_and_buffer_live_in_redis_under_the_key_prefix(settings):
    publish(("event.created", {"n": 1}), ("event.created", {"n": 2}))

    client = redis_client(settings)
    prefix = settings.HSI_KEY_PREFIX
    assert int(client.get(f"{prefix}:ws:seq:events")) == 2
    assert [json.loads(entry)["seq"] for entry in client.lrange(f"{prefix}:ws:buffer:events", 0, -1)] == [1, 2]


def test_one_group_member_per_process_while_clients_are_connected(settings):
    group_key = f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}:group:hsi.events"
    client = redis_client(settings)

    async def scenario():
        first, _ = await connected()
        second, _ = await connected()
        members_while_connected = client.zcard(group_key)
        await first.disconnect()
        await second.disconnect()
        async with asyncio.timeout(2):  # the hub leaves the group in the background
            while client.zcard(group_key):
                await asyncio.sleep(0.01)
        return members_while_connected, client.zcard(group_key)

    assert run(scenario) == (1, 0)


def test_all_in_one_the_in_memory_layer_and_the_in_process_ring_serve_the_same_contract(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

    async def scenario():
        communicator, hello = await connected()
        await apublish(("event.created", {"n": 1}), ("event.created", {"n": 2}))
        live = await data_messages(communicator, 2)
        await communicator.send_json_to({"type": "resync", "data": {"last_seq": live[0]["seq"]}})
        ack = await receive_json(communicator)
        replayed = await receive_json(communicator)
        await communicator.disconnect()
        return hello, live, ack, replayed

    hello, live, ack, replayed = run(scenario)

    assert [m["seq"] for m in live] == [hello["data"]["last_seq"] + 1, hello["data"]["last_seq"] + 2]
    assert ack["data"] == {"last_seq": live[0]["seq"], "replayed": 1, "complete": True}
    assert replayed == {**live[1], "replay": True}
