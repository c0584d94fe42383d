"""Byte-range parsing of the media routes (CONTRACT §6.4)."""

from __future__ import annotations

import pytest

from media_serving.ranges import ByteRange, RangeNotSatisfiable, etag_matches, parse_range

SIZE = 1000


def test_no_header_means_the_whole_file():
    assert parse_range(None, SIZE) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=100-", ByteRange(100, 999)),
        ("bytes=-100", ByteRange(900, 999)),
        ("bytes=990-5000", ByteRange(990, 999)),
        ("bytes=-5000", ByteRange(0, 999)),
        ("bytes=999-999", ByteRange(999, 999)),
        (" bytes=0-0 ", ByteRange(0, 0)),
    ],
)
def test_a_single_range_is_clamped_to_the_file(header, expected):
    assert parse_range(header, SIZE) == expected


def test_the_length_of_a_range_counts_both_ends():
    assert ByteRange(10, 19).length == 10


@pytest.mark.parametrize(
    "header",
    [
        "bytes=1000-",
        "bytes=1000-1200",
        "bytes=5-1",
        "bytes=-0",
        "bytes=-",
        "bytes=0-1,5-9",
        "items=0-1",
        "bytes=a-b",
        "bytes 0-1",
        "",
        "bytes=0x10-",
    ],
)
def test_unsatisfiable_or_malformed_ranges_are_refused(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, SIZE)


def test_any_range_of_an_empty_file_is_unsatisfiable():
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-10", 0)


@pytest.mark.parametrize(
    ("header", "matches"),
    [('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), ("*", True), ('"abd"', False), ("", False)],
)
def test_if_none_match_compares_entity_tags(header, matches):
    assert etag_matches(header, '"abc"') is matches
