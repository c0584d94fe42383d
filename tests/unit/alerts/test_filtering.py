"""Notification filtering rules of CONTRACT §5.7 as pure functions: quiet-hours coverage and the check order."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from alerts.filtering import FilterContext, Preferences, QuietPeriod, quiet_hours_cover, suppression_reason

WED_NOON = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)  # a Wednesday
ALL_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """2024-05-<day> (6 = Monday ... 12 = Sunday) at hour:minute UTC."""
    return dt.datetime(2024, 5, day, hour, minute, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("moment", "covered"),
    [
        (at(6, 9, 0), True),  # start is inside
        (at(6, 16, 59), True),
        (at(6, 17, 0), False),  # end is outside: [start, end)
        (at(6, 8, 59), False),
        (at(7, 12, 0), False),  # Tuesday is not listed
    ],
)
def test_a_daytime_period_covers_start_up_to_end_on_listed_days(moment, covered):
    assert quiet_hours_cover(dt.time(9), dt.time(17), ["monday"], moment) is covered


@pytest.mark.parametrize(
    ("moment", "covered"),
    [
        (at(10, 22, 0), True),  # Friday 22:00
        (at(10, 23, 59), True),
        (at(11, 0, 0), True),  # Saturday 00:00: the day after a listed day
        (at(11, 5, 59), True),
        (at(11, 6, 0), False),  # end excluded
        (at(11, 22, 30), False),  # Saturday evening: Saturday is not listed
        (at(12, 1, 0), False),  # Sunday morning: Saturday (the day before) is not listed
        (at(10, 1, 0), False),  # Friday morning: Thursday is not listed
        (at(10, 21, 59), False),
    ],
)
def test_a_period_past_midnight_wraps_into_the_day_after_a_listed_day(moment, covered):
    assert quiet_hours_cover(dt.time(22), dt.time(6), ["friday"], moment) is covered


def test_sunday_night_wraps_into_monday():
    assert quiet_hours_cover(dt.time(23), dt.time(1), ["sunday"], at(13, 0, 30))


def test_coverage_uses_the_local_clock_given():
    berlin = at(10, 20, 30).astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))  # 22:30 local on Friday
    assert quiet_hours_cover(dt.time(22), dt.time(6), ["friday"], berlin)
    assert not quiet_hours_cover(dt.time(22), dt.time(6), ["friday"], at(10, 20, 30))


def test_day_names_are_case_insensitive_and_none_means_every_day():
    assert quiet_hours_cover(dt.time(9), dt.time(17), ["Monday"], at(6, 10))
    assert quiet_hours_cover(dt.time(9), dt.time(17), None, at(9, 10))


def context(**overrides) -> FilterContext:
    preferences = Preferences(
        globally_enabled=overrides.pop("globally_enabled", True),
        camera_enabled=overrides.pop("camera_enabled", True),
        severities=overrides.pop("severities", ["medium", "high", "critical"]),
        min_risk_score=overrides.pop("min_risk_score", 0),
    )
    return FilterContext(
        notifications_enabled=overrides.pop("notifications_enabled", True),
        preferences=preferences,
        quiet_periods=overrides.pop("quiet_periods", ()),
        zone=overrides.pop("zone", dt.UTC),
    )


def reason(ctx: FilterContext, **alert) -> str | None:
    values = {
        "severity": "high",
        "is_event_alert": True,
        "risk_score": 70,
        "created_at": WED_NOON,
        "channel_enabled": True,
        "channel_min_severity": "low",
    }
    values.update(alert)
    return suppression_reason(context=ctx, **values)


def test_every_check_passing_gives_no_reason():
    assert reason(context()) is None


@pytest.mark.parametrize(
    ("ctx", "alert", "expected"),
    [
        (context(notifications_enabled=False), {}, "notifications_disabled"),
        (context(globally_enabled=False), {}, "notifications_disabled"),
        (context(camera_enabled=False), {}, "camera_disabled"),
        (context(severities=["critical"]), {}, "severity_filtered"),
        (context(min_risk_score=71), {}, "risk_below_threshold"),
        (context(min_risk_score=1), {"risk_score": None}, "risk_below_threshold"),
        (context(), {"channel_enabled": False}, "channel_disabled"),
        (context(), {"channel_min_severity": "critical"}, "channel_min_severity"),
        (
            context(quiet_periods=[QuietPeriod(dt.time(11), dt.time(13), ALL_DAYS, True)]),
            {},
            "quiet_hours",
        ),
    ],
)
def test_each_check_has_its_reason(ctx, alert, expected):
    assert reason(ctx, **alert) == expected


def test_the_first_failing_check_wins():
    ctx = context(camera_enabled=False, severities=["low"], min_risk_score=100)
    assert reason(ctx, channel_enabled=False) == "camera_disabled"
    assert reason(context(min_risk_score=100), channel_enabled=False) == "risk_below_threshold"
    assert reason(context(), channel_enabled=False, channel_min_severity="critical") == "channel_disabled"


def test_camera_offline_alerts_skip_the_risk_check():
    assert reason(context(min_risk_score=100), is_event_alert=False, risk_score=None) is None


def test_the_minimum_risk_score_is_inclusive():
    assert reason(context(min_risk_score=70), risk_score=70) is None


def test_critical_alerts_pass_quiet_hours_that_allow_them():
    allowing = QuietPeriod(dt.time(11), dt.time(13), ALL_DAYS, allow_critical=True)
    strict = QuietPeriod(dt.time(11), dt.time(13), ALL_DAYS, allow_critical=False)
    assert reason(context(quiet_periods=[allowing]), severity="critical") is None
    assert reason(context(quiet_periods=[allowing, strict]), severity="critical") == "quiet_hours"
    assert reason(context(quiet_periods=[allowing]), severity="high") == "quiet_hours"


def test_quiet_hours_are_checked_in_the_local_zone():
    period = QuietPeriod(dt.time(13), dt.time(15), ALL_DAYS, True)  # 13:00–15:00 local
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")  # UTC+2 in May: noon UTC is 14:00 local
    assert reason(context(quiet_periods=[period], zone=berlin)) == "quiet_hours"
    assert reason(context(quiet_periods=[period])) is None
