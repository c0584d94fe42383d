"""Cursor encoding and page parameters of CONTRACT §0.5."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from hsi.api.errors import BadRequest, FieldValidationError
from hsi.api.pagination import (
    CURSOR_MAX_LENGTH,
    Cursor,
    PageRequest,
    decode_cursor,
    encode_cursor,
    envelope,
    paginate_list,
    parse_page,
)

WHEN = dt.datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)


def raw_cursor(payload) -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def assert_invalid(text: str):
    with pytest.raises(BadRequest) as caught:
        decode_cursor(text)
    assert caught.value.status_code == 400
    assert str(caught.value.detail) == "Invalid cursor"


def request_with(query: str) -> Request:
    return Request(APIRequestFactory().get(f"/api/things?{query}"))


# --- Cursors -----------------------------------------------------------------------------------------------


def test_cursor_round_trips_timestamp_and_id():
    assert decode_cursor(encode_cursor(WHEN, 42)) == Cursor(WHEN, 42)


def test_cursor_is_url_safe_base64_without_padding():
    text = encode_cursor(WHEN, 2**40)

    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(text) <= CURSOR_MAX_LENGTH


def test_cursor_of_a_non_utc_timestamp_decodes_to_the_same_instant():
    local = WHEN.astimezone(dt.timezone(dt.timedelta(hours=-5)))

    decoded = decode_cursor(encode_cursor(local, 7))

    assert decoded.timestamp == WHEN and decoded.timestamp.utcoffset() == dt.timedelta(0)


def test_cursor_with_naive_timestamp_is_utc():
    assert decode_cursor(raw_cursor({"t": "2024-03-01T12:00:00", "id": 1})).timestamp == dt.datetime(
        2024, 3, 1, 12, tzinfo=dt.UTC
    )


def test_cursor_bounds_of_2000_and_2100_are_inclusive():
    assert decode_cursor(raw_cursor({"t": "2000-01-01T00:00:00Z", "id": 1})).timestamp.year == 2000
    assert decode_cursor(raw_cursor({"t": "2100-12-31T23:59:59Z", "id": 1})).timestamp.year == 2100


@pytest.mark.parametrize(
    "text",
    [
        "%%%not-base64%%%",
        "é",
        "A",  # one base64 character cannot encode a byte
        raw_cursor("not json"),
        raw_cursor("[1, 2]"),
        raw_cursor('"just a string"'),
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
    ],
    ids=["bad-chars", "non-ascii", "truncated", "bad-json", "json-list", "json-string", "not-utf8"],
)
def test_undecodable_cursor_is_invalid(text):
    assert_invalid(text)


@pytest.mark.parametrize(
    "payload",
    [
        {"id": 5},
        {"t": "2024-03-01T12:00:00Z"},
        {},
        {"t": None, "id": 5},
        {"t": 1709294400, "id": 5},
        {"t": "2024-03-01T12:00:00Z", "id": "5"},
        {"t": "2024-03-01T12:00:00Z", "id": 5.0},
        {"t": "2024-03-01T12:00:00Z", "id": True},
    ],
    ids=["no-t", "no-id", "empty", "null-t", "numeric-t", "string-id", "float-id", "bool-id"],
)
def test_cursor_missing_or_mistyped_keys_is_invalid(payload):
    assert_invalid(raw_cursor(payload))


@pytest.mark.parametrize("row_id", [0, -1, 2**63], ids=["zero", "negative", "beyond-bigint"])
def test_cursor_id_must_be_a_positive_bigint(row_id):
    assert_invalid(raw_cursor({"t": "2024-03-01T12:00:00Z", "id": row_id}))


@pytest.mark.parametrize(
    "timestamp",
    ["1999-12-31T23:59:59.999999Z", "2101-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2024-02-30T00:00:00Z", "noon"],
)
def test_cursor_timestamp_outside_2000_to_2100_or_unparsable_is_invalid(timestamp):
    assert_invalid(raw_cursor({"t": timestamp, "id": 1}))


def test_cursor_longer_than_512_characters_is_invalid():
    padded = raw_cursor({"t": "2024-03-01T12:00:00Z", "id": 1, "pad": "x" * 400})
    assert len(padded) > CURSOR_MAX_LENGTH

    assert_invalid(padded)


def test_cursor_of_exactly_512_characters_is_accepted():
    base = {"t": "2024-03-01T12:00:00Z", "id": 1, "pad": ""}
    pad = 0
    while len(raw_cursor({**base, "pad": "x" * pad})) < CURSOR_MAX_LENGTH:
        pad += 1
    text = raw_cursor({**base, "pad": "x" * pad})
    assert len(text) == CURSOR_MAX_LENGTH

    assert decode_cursor(text).id == 1


# --- limit / offset ----------------------------------------------------------------------------------------


def test_defaults_apply_without_parameters():
    assert parse_page(request_with(""), default=50, maximum=100) == PageRequest(limit=50, offset=0)


def test_empty_values_mean_defaults():
    assert parse_page(request_with("limit=&offset=&cursor="), default=25, maximum=100, cursor=True) == PageRequest(
        limit=25, offset=0
    )


def test_limit_and_offset_bounds_are_inclusive():
    assert parse_page(request_with("limit=1&offset=0"), default=50, maximum=100) == PageRequest(1, 0)
    assert parse_page(request_with("limit=100&offset=999999"), default=50, maximum=100) == PageRequest(100, 999999)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-5", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("limit=1e2", "limit"),
        ("limit=1_0", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
    ],
)
def test_bad_limit_or_offset_is_422_naming_the_parameter(query, field):
    with pytest.raises(FieldValidationError) as caught:
        parse_page(request_with(query), default=50, maximum=100)

    assert caught.value.status_code == 422
    assert [error["field"] for error in caught.value.errors] == [field]


def test_cursor_replaces_offset_which_is_then_ignored_even_if_invalid():
    cursor = encode_cursor(WHEN, 9)

    page = parse_page(request_with(f"cursor={cursor}&offset=-3&limit=10"), default=50, maximum=100, cursor=True)

    assert page == PageRequest(limit=10, offset=0, cursor=Cursor(WHEN, 9))


def test_cursor_is_ignored_on_lists_that_are_not_cursor_capable():
    page = parse_page(request_with("cursor=garbage&offset=5"), default=50, maximum=100, cursor=False)

    assert page == PageRequest(limit=50, offset=5)


def test_invalid_cursor_on_a_cursor_list_is_400():
    with pytest.raises(BadRequest):
        parse_page(request_with("cursor=garbage"), default=50, maximum=100, cursor=True)


# --- Envelope ----------------------------------------------------------------------------------------------


def test_envelope_echoes_offset_null_under_a_cursor():
    page = PageRequest(limit=10, offset=0, cursor=Cursor(WHEN, 1))

    body = envelope([1], total=3, page=page, has_more=True, next_cursor="abc")

    assert body == {
        "items": [1],
        "pagination": {"total": 3, "limit": 10, "offset": None, "next_cursor": "abc", "has_more": True},
    }


def test_paginate_list_windows_an_in_memory_list():
    items = list(range(5))

    assert paginate_list(items, PageRequest(limit=2, offset=2)) == {
        "items": [2, 3],
        "pagination": {"total": 5, "limit": 2, "offset": 2, "next_cursor": None, "has_more": True},
    }
    assert paginate_list(items, PageRequest(limit=2, offset=4))["pagination"]["has_more"] is False
    assert paginate_list(items, PageRequest(limit=2, offset=50))["items"] == []
