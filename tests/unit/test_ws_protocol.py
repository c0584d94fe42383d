"""WebSocket client messages and subscriptions (CONTRACT §3.4, §3.5) as pure logic."""

from __future__ import annotations

import pytest

from system.websocket.protocol import ProtocolError, Subscription, parse_client_message, pattern_matches
from system.websocket.throttle import parse_rate


@pytest.mark.parametrize(
    ("pattern", "message_type", "expected"),
    [
        ("*", "event.created", True),
        ("event.*", "event.created", True),
        ("event.*", "events.created", False),
        ("event.created", "event.created", True),
        ("event.created", "event.updated", False),
        ("alert.*", "event.created", False),
    ],
)
def test_patterns_match_everything_a_domain_or_one_type(pattern, message_type, expected):
    assert pattern_matches(pattern, message_type) is expected


def test_a_new_connection_receives_everything():
    assert Subscription().matches({"type": "anything.at_all", "data": {"camera_id": "x"}})


def test_subscribe_lists_patterns_in_the_order_added_without_duplicates():
    subscription = Subscription()

    subscription.subscribe({"events": ["event.*", "alert.created"]})
    reply = subscription.subscribe({"events": ["alert.created", "camera.*", "event.*"]})

    assert reply == {"events": ["event.*", "alert.created", "camera.*"], "camera_ids": []}


def test_subscribe_with_camera_ids_only_leaves_the_patterns_unchanged():
    subscription = Subscription()

    reply = subscription.subscribe({"camera_ids": ["garage"]})

    assert reply == {"events": ["*"], "camera_ids": ["garage"]}
    assert subscription.matches({"type": "event.created", "data": {"camera_id": "garage"}})
    assert not subscription.matches({"type": "event.created", "data": {"camera_id": "front_door"}})
    assert subscription.matches({"type": "event.created", "data": {"id": 1}})
    assert subscription.matches({"type": "event.created", "data": {"camera_id": None}})


def test_after_unsubscribing_everything_nothing_matches():
    subscription = Subscription()

    subscription.unsubscribe({"events": ["*"]})

    assert subscription.events == []
    assert not subscription.matches({"type": "event.created", "data": {}})
    assert subscription.subscribe({"events": ["event.*"]})["events"] == ["event.*"]


def test_a_refused_subscribe_changes_nothing():
    subscription = Subscription()

    with pytest.raises(ProtocolError) as raised:
        subscription.subscribe({"events": ["event.*"], "camera_ids": "garage"})

    assert raised.value.code == "validation_error"
    assert subscription.as_data() == {"events": ["*"], "camera_ids": []}


def test_parse_accepts_a_message_without_data():
    message = parse_client_message('{"type": "ping"}')

    assert (message.type, message.data) == ("ping", {})


def test_several_format_errors_are_reported_together():
    with pytest.raises(ProtocolError) as raised:
        parse_client_message('{"type": 3, "data": "x"}')

    error = raised.value.as_message()
    assert error["type"] == "error" and error["error"] == "invalid_message_format"
    assert [e["field"] for e in error["details"]["validation_errors"]] == ["type", "data"]


@pytest.mark.parametrize(("rate", "parsed"), [("10/min", (10, 60)), ("5/s", (5, 1)), ("100/hour", (100, 3600))])
def test_throttle_rates_parse_like_the_rest_tiers(rate, parsed):
    assert parse_rate(rate) == parsed


def test_repeated_subscribes_cannot_grow_the_list_past_fifty_patterns():
    subscription = Subscription()
    subscription.subscribe({"events": [f"domain_{chr(97 + n // 26)}{chr(97 + n % 26)}.*" for n in range(30)]})
    subscription.subscribe({"events": [f"domain_{chr(97 + n // 26)}{chr(97 + n % 26)}.*" for n in range(20, 50)]})

    with pytest.raises(ProtocolError) as raised:
        subscription.subscribe({"events": ["alert.created"]})

    assert raised.value.code == "validation_error"
    assert raised.value.details["validation_errors"][0]["field"] == "events"
    assert len(subscription.events) == 50  # unchanged by the refused subscribe


def test_patterns_already_subscribed_do_not_count_twice_against_the_limit():
    subscription = Subscription()
    patterns = [f"domain_{chr(97 + n // 26)}{chr(97 + n % 26)}.*" for n in range(50)]
    subscription.subscribe({"events": patterns})

    reply = subscription.subscribe({"events": patterns[:10]})

    assert reply["events"] == patterns


def test_a_pattern_longer_than_one_hundred_characters_is_refused():
    subscription = Subscription()

    with pytest.raises(ProtocolError) as raised:
        subscription.subscribe({"events": ["a" * 99 + ".*"]})
    accepted = subscription.subscribe({"events": ["a" * 98 + ".*"]})

    assert raised.value.code == "validation_error"
    assert raised.value.details["validation_errors"][0]["field"] == "events.0"
    assert accepted["events"] == ["a" * 98 + ".*"]
