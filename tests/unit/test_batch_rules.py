"""Pure rules of batching and processing (CONTRACT §4.5, §4.4, §5.6): close conditions checked with >=, fast-path
qualification, zone membership of a bbox centre, feedback time-of-day windows."""

from __future__ import annotations

import datetime as dt

import pytest

from events.feedback import local_minutes_of_day, minutes_apart
from pipeline.detectors.base import RawDetection
from pipeline.services.batching import due_reason, qualifies_for_fast_path
from pipeline.services.processing import zone_ids_for

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def later(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("opened", "last", "now", "reason"),
    [
        (0, 0, 29.999, None),
        (0, 0, 30, "idle"),  # idle reached exactly
        (0, 70, 90, "window"),  # window reached exactly, not idle
        (0, 60, 89.999, None),
        (0, 0, 90, "window"),  # both: the window is reported
    ],
)
def test_due_reason(opened, last, now, reason):
    assert due_reason(later(opened), later(last), later(now)) == reason


def test_due_reason_follows_the_settings(settings):
    settings.BATCH_WINDOW_SECONDS = 10
    settings.BATCH_IDLE_TIMEOUT_SECONDS = 5

    assert due_reason(T0, later(8), later(10)) == "window"
    assert due_reason(T0, T0, later(5)) == "idle"


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("person", 0.90)], True),
        ([("person", 0.8999)], False),
        ([("Person", 0.95)], True),
        ([("car", 0.99), ("person", 0.91)], True),
        ([("car", 0.99)], False),
        ([], False),
    ],
)
def test_fast_path_qualification(pairs, expected):
    assert qualifies_for_fast_path(pairs) is expected


def test_fast_path_classes_threshold_and_switch_come_from_settings(settings):
    settings.FAST_PATH_OBJECT_TYPES = ["car", "Truck"]
    settings.FAST_PATH_CONFIDENCE_THRESHOLD = 0.5
    assert qualifies_for_fast_path([("truck", 0.6)]) is True
    assert qualifies_for_fast_path([("person", 0.99)]) is False
    settings.FAST_PATH_ENABLED = False
    assert qualifies_for_fast_path([("truck", 0.6)]) is False


class _Zone:
    def __init__(self, zone_id, coordinates):
        self.id = zone_id
        self.coordinates = coordinates


LEFT_HALF = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]


@pytest.mark.parametrize(
    ("box", "inside"),
    [
        ((100, 100, 50, 50), True),  # centre (125, 125) of 640×480 → (0.195, 0.26)
        ((300, 100, 40, 40), True),  # centre x = 320 → exactly 0.5: on the edge counts as inside
        ((400, 100, 40, 40), False),
    ],
)
def test_zone_membership_uses_the_normalised_bbox_centre(box, inside):
    raw = RawDetection("person", 0.9, *box)

    assert zone_ids_for(raw, 640, 480, [_Zone("z1", LEFT_HALF)]) == (["z1"] if inside else [])


def test_zone_membership_of_a_frame_without_size_is_empty():
    assert zone_ids_for(RawDetection("person", 0.9, 1, 1, 1, 1), 0, 0, [_Zone("z1", LEFT_HALF)]) == []


@pytest.mark.parametrize(("a", "b", "gap"), [(600, 660, 60), (10, 1430, 20), (0, 720, 720), (1439, 0, 1)])
def test_minutes_apart_wraps_around_midnight(a, b, gap):
    assert minutes_apart(a, b) == gap


def test_local_minutes_of_day_use_the_time_zone(settings):
    settings.TIME_ZONE = "America/New_York"

    assert local_minutes_of_day(dt.datetime(2024, 5, 1, 3, 30, tzinfo=dt.UTC)) == 23 * 60 + 30
