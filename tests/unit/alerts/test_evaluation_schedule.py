"""Rule schedules (CONTRACT §5.3): time zones, day lists, inclusive minute windows, windows wrapping midnight
(counted on the day they start), start = end as the whole day, DST changes."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from alerts.evaluation import schedule_allows

UTC = dt.UTC
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def schedule(start=None, end=None, days=(), tz="UTC"):
    return {"days": list(days), "start_time": start, "end_time": end, "timezone": tz}


def utc(day, hour, minute=0, second=0):
    return dt.datetime(2024, 5, day, hour, minute, second, tzinfo=UTC)  # 2024-05-03 is a Friday


def test_no_schedule_always_allows():
    assert schedule_allows(None, utc(1, 3))
    assert schedule_allows({}, utc(1, 3))


@pytest.mark.parametrize(
    ("clock", "inside"),
    [
        (utc(1, 8, 59, 59), False),
        (utc(1, 9, 0), True),
        (utc(1, 12, 0), True),
        (utc(1, 17, 0, 59), True),  # minute precision: 17:00:59 is still 17:00
        (utc(1, 17, 1), False),
    ],
)
def test_a_daytime_window_is_inclusive_at_both_ends(clock, inside):
    assert schedule_allows(schedule("09:00", "17:00"), clock) is inside


@pytest.mark.parametrize(
    ("clock", "inside"),
    [
        (utc(3, 21, 59), False),
        (utc(3, 22, 0), True),
        (utc(3, 23, 59), True),
        (utc(4, 0, 0), True),
        (utc(4, 6, 0), True),
        (utc(4, 6, 1), False),
        (utc(4, 12, 0), False),
    ],
)
def test_a_window_wrapping_midnight(clock, inside):
    assert schedule_allows(schedule("22:00", "06:00"), clock) is inside


def test_after_midnight_counts_on_the_day_the_window_started():
    friday_night = schedule("22:00", "06:00", days=["friday"])

    assert schedule_allows(friday_night, utc(4, 1, 0))  # 01:00 Saturday belongs to Friday's window
    assert schedule_allows(friday_night, utc(3, 23, 0))  # Friday 23:00
    assert not schedule_allows(friday_night, utc(3, 1, 0))  # 01:00 Friday belongs to Thursday's window
    assert not schedule_allows(friday_night, utc(4, 23, 0))  # Saturday 23:00


def test_start_equal_to_end_is_the_whole_day():
    whole_day = schedule("08:00", "08:00", days=["wednesday"])

    assert schedule_allows(whole_day, utc(1, 0, 0))  # Wednesday 00:00
    assert schedule_allows(whole_day, utc(1, 23, 59))
    assert not schedule_allows(whole_day, utc(2, 8, 0))  # Thursday


def test_days_without_times_limit_the_weekday_only():
    weekend = schedule(days=["saturday", "sunday"])

    assert schedule_allows(weekend, utc(4, 12))
    assert schedule_allows(weekend, utc(5, 0))
    assert not schedule_allows(weekend, utc(3, 23, 59))


def test_day_names_compare_case_insensitively():
    assert schedule_allows(schedule(days=["Friday"]), utc(3, 12))


def test_an_empty_day_list_means_every_day():
    for day in range(1, 8):
        assert schedule_allows(schedule("00:00", "23:59"), utc(day, 12))


def test_the_clock_is_converted_to_the_schedule_time_zone():
    # 20:30 UTC on Friday is 22:30 in Berlin (CEST, +2)
    evening_berlin = schedule("22:00", "23:00", tz="Europe/Berlin")

    assert schedule_allows(evening_berlin, utc(3, 20, 30))
    assert not schedule_allows(evening_berlin, utc(3, 22, 30))


def test_the_weekday_is_the_local_weekday():
    # 02:00 UTC Saturday is 22:00 Friday in New York (EDT, -4)
    friday_new_york = schedule(days=["friday"], tz="America/New_York")

    assert schedule_allows(friday_new_york, utc(4, 2, 0))
    assert not schedule_allows(schedule(days=["friday"]), utc(4, 2, 0))


def test_a_wrapping_window_in_another_zone_counts_on_the_local_start_day():
    # Friday 22:00–06:00 in New York; 09:00 UTC Saturday = 05:00 Saturday local → Friday's window
    friday_night_ny = schedule("22:00", "06:00", days=["friday"], tz="America/New_York")

    assert schedule_allows(friday_night_ny, utc(4, 9, 0))
    assert not schedule_allows(friday_night_ny, utc(4, 11, 0))  # 07:00 local


def test_local_wall_clock_follows_daylight_saving_changes():
    morning = schedule("07:00", "08:00", tz="Europe/Berlin")
    # 06:30 UTC is 07:30 CET in winter and 08:30 CEST in summer
    winter = dt.datetime(2024, 3, 30, 6, 30, tzinfo=UTC)
    summer = dt.datetime(2024, 3, 31, 6, 30, tzinfo=UTC)  # the day the clocks went forward

    assert schedule_allows(morning, winter)
    assert not schedule_allows(morning, summer)
    assert schedule_allows(morning, dt.datetime(2024, 3, 31, 7, 30, tzinfo=BERLIN))


def test_aware_clocks_in_any_zone_are_converted():
    clock = dt.datetime(2024, 5, 3, 22, 30, tzinfo=BERLIN)  # 20:30 UTC

    assert schedule_allows(schedule("20:00", "21:00"), clock)
    assert schedule_allows(schedule("22:00", "23:00", tz="Europe/Berlin"), clock.astimezone(NEW_YORK))
