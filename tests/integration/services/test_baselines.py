"""Baselines and the anomaly score (CONTRACT §4.11): numbers on hand-built detections over several weeks, with
an explicit ``now``; DST-safe hour counting; the hourly update against a full rebuild; the anomaly formula."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest

from events import baselines
from events.baselines import anomaly_context, anomaly_score, baselines_rebuild, baselines_update_hour
from events.models import ActivityBaseline, ClassBaseline
from hsi.celery import app
from tests.factories import CameraFactory, DetectionFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC
# Wednesday 5 June 2024, 10:20 UTC. The 28-day span is 8 May 11:00 → 5 June 10:00 (671 whole hours).
NOW = dt.datetime(2024, 6, 5, 10, 20, tzinfo=UTC)
MON, TUE, WED, SUN = 0, 1, 2, 6


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def detections(camera, when: dt.datetime, count: int = 1, object_type: str = "person") -> None:
    for _ in range(count):
        DetectionFactory(camera=camera, detected_at=when, object_type=object_type)


def slots(camera_id: str) -> dict[tuple[int, int], tuple[float, int]]:
    rows = ActivityBaseline.objects.filter(camera_id=camera_id).values_list(
        "day_of_week", "hour", "avg_count", "sample_count"
    )
    return {(day, hour): (avg, samples) for day, hour, avg, samples in rows}


def class_rows(camera_id: str) -> dict[tuple[str, int], tuple[float, int]]:
    rows = ClassBaseline.objects.filter(camera_id=camera_id).values_list(
        "object_class", "hour", "frequency", "sample_count"
    )
    return {(name, hour): (frequency, samples) for name, hour, frequency, samples in rows}


@pytest.fixture
def old_camera():
    return CameraFactory(id="front", created_at=NOW - dt.timedelta(days=90))


@pytest.fixture
def monday_mornings(old_camera):
    """Monday 08:xx UTC in the four weeks of the window (2, 4, 0, 6 detections) plus rows that must not count."""
    detections(old_camera, utc(2024, 5, 13, 8, 10), 2)
    detections(old_camera, utc(2024, 5, 20, 8, 30), 4, "car")
    detections(old_camera, utc(2024, 6, 3, 8, 59), 5)
    detections(old_camera, utc(2024, 6, 3, 8, 0), 1, "dog")
    detections(old_camera, utc(2024, 5, 6, 8, 10), 3)  # a Monday before the window
    detections(old_camera, utc(2024, 5, 8, 10, 30), 2)  # before the span start (rounded up to 11:00)
    detections(old_camera, utc(2024, 6, 5, 10, 5), 1)  # the current hour: not whole yet
    detections(CameraFactory(id="elsewhere"), utc(2024, 5, 13, 8, 10), 7)  # another camera
    return old_camera


# --- Full rebuild ---------------------------------------------------------------------------------------------------


def test_rebuild_averages_each_weekday_hour_over_the_weeks_of_the_window(monday_mornings):
    assert baselines_rebuild("front", now=NOW) == 1

    activity = slots("front")
    assert len(activity) == 168
    assert activity[(MON, 8)] == (3.0, 4)  # (2 + 4 + 0 + 6) / 4 Mondays
    assert activity[(WED, 10)] == (0.0, 3)  # 8 May 10:00 is before the span, 5 June 10:00 not over yet
    assert activity[(WED, 11)] == (0.0, 4)
    assert sum(samples for _, samples in activity.values()) == 28 * 24 - 1
    assert all(avg == 0 for key, (avg, _) in activity.items() if key != (MON, 8))
    assert not ActivityBaseline.objects.filter(camera_id="elsewhere").exists()


def test_rebuild_writes_class_frequencies_per_hour_of_day(monday_mornings):
    baselines_rebuild("front", now=NOW)

    assert class_rows("front") == {
        ("person", 8): (pytest.approx(7 / 28), 28),
        ("car", 8): (pytest.approx(4 / 28), 28),
        ("dog", 8): (pytest.approx(1 / 28), 28),
    }


def test_rebuild_of_every_camera_returns_how_many_were_rebuilt(monday_mornings):
    assert baselines_rebuild(now=NOW) == 2

    assert slots("elsewhere") == {}  # the factory camera was created just now, after NOW: no whole hour yet
    assert baselines_rebuild("no_such_camera", now=NOW) == 0


def test_rebuild_on_an_hour_boundary_covers_exactly_the_window(old_camera):
    detections(old_camera, utc(2024, 5, 8, 10, 0), 4)  # exactly at the span start: counted

    baselines_rebuild("front", now=utc(2024, 6, 5, 10, 0))

    activity = slots("front")
    assert {samples for _, samples in activity.values()} == {4}
    assert activity[(WED, 10)] == (1.0, 4)


def test_rebuild_removes_rows_of_classes_that_left_the_window(old_camera):
    ClassBaseline.objects.create(camera=old_camera, object_class="horse", hour=3, frequency=0.5, sample_count=28)
    detections(old_camera, utc(2024, 6, 4, 3, 0), 1, "cat")

    baselines_rebuild("front", now=NOW)

    assert set(class_rows("front")) == {("cat", 3)}


def test_a_young_camera_covers_only_the_hours_since_it_was_created(settings):
    camera = CameraFactory(id="new", created_at=utc(2024, 6, 3, 9, 40))  # span starts Monday 10:00
    detections(camera, utc(2024, 6, 3, 9, 50), 5)  # before the first whole hour
    detections(camera, utc(2024, 6, 3, 10, 15), 2)

    baselines_rebuild("new", now=NOW)

    activity = slots("new")
    assert activity[(MON, 10)] == (2.0, 1)
    assert activity[(MON, 9)] == (0.0, 0)
    assert activity[(TUE, 9)] == (0.0, 1)
    assert sum(samples for _, samples in activity.values()) == 48  # Monday 10:00 → Wednesday 10:00
    assert class_rows("new") == {("person", 10): (1.0, 2)}  # 2 detections over two 10 o'clock hours


def test_a_camera_created_this_hour_has_no_baseline_rows():
    camera = CameraFactory(id="fresh", created_at=utc(2024, 6, 5, 10, 1))
    ActivityBaseline.objects.create(camera=camera, day_of_week=0, hour=0, avg_count=1, sample_count=1)

    assert baselines_rebuild("fresh", now=NOW) == 1

    assert slots("fresh") == {}
    assert anomaly_context("fresh", ["person"], NOW) is None


def test_a_shorter_window_counts_one_week(settings, monday_mornings):
    settings.BASELINE_WINDOW_DAYS = 7

    baselines_rebuild("front", now=NOW)

    assert slots("front")[(MON, 8)] == (6.0, 1)  # only 3 June


def test_rebuild_is_idempotent(monday_mornings):
    baselines_rebuild("front", now=NOW)
    first = (slots("front"), class_rows("front"), ActivityBaseline.objects.count())

    baselines_rebuild("front", now=NOW)

    assert (slots("front"), class_rows("front"), ActivityBaseline.objects.count()) == first


def test_rebuild_counts_in_sql_aggregates_not_per_hour(monday_mornings, django_assert_max_num_queries):
    # cameras + 2 grouped aggregates + (savepoint) delete + 2 upserts + stale-class select (+ release)
    with django_assert_max_num_queries(9):
        baselines_rebuild(now=NOW)


# --- Local time and DST -------------------------------------------------------------------------------------------


def test_weekday_and_hour_are_local(settings, old_camera):
    settings.TIME_ZONE = "America/New_York"
    detections(old_camera, utc(2024, 6, 3, 2, 30), 4)  # Monday 02:30 UTC = Sunday 22:30 EDT

    baselines_rebuild("front", now=NOW)

    activity = slots("front")
    assert activity[(SUN, 22)][0] == pytest.approx(1.0)  # 4 detections / 4 Sundays
    assert activity[(MON, 2)][0] == 0.0
    assert set(class_rows("front")) == {("person", 22)}


def test_a_fall_back_day_has_two_local_two_oclock_hours(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    now = dt.datetime(2024, 11, 3, 12, 0, tzinfo=berlin)  # Sunday; the window starts 6 October 12:00
    camera = CameraFactory(id="front", created_at=now - dt.timedelta(days=90))
    detections(camera, utc(2024, 10, 27, 0, 30), 3)  # 02:30 CEST
    detections(camera, utc(2024, 10, 27, 1, 30), 2)  # 02:30 CET, one real hour later

    baselines_rebuild("front", now=now)

    activity = slots("front")
    # Sundays at 02:00 in the span: 13, 20, 27 (twice) October and 3 November.
    assert activity[(SUN, 2)] == (1.0, 5)
    assert activity[(SUN, 3)][1] == 4
    assert sum(samples for _, samples in activity.values()) == 28 * 24 + 1
    assert class_rows("front") == {("person", 2): (pytest.approx(5 / 29), 29)}
    context = anomaly_context("front", ["person"], now)
    assert context["coverage_days"] == pytest.approx(28 + 1 / 24)


def test_a_spring_forward_day_has_no_local_two_oclock_hour(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    now = dt.datetime(2024, 4, 7, 12, 0, tzinfo=berlin)  # Sunday; the window starts 10 March 12:00
    camera = CameraFactory(id="front", created_at=now - dt.timedelta(days=90))
    detections(camera, utc(2024, 3, 31, 1, 30), 2)  # 03:30 CEST (02:00–03:00 does not exist that day)

    baselines_rebuild("front", now=now)

    activity = slots("front")
    assert activity[(SUN, 2)] == (0.0, 3)  # 17 and 24 March, 7 April
    assert activity[(SUN, 3)] == (0.5, 4)
    assert sum(samples for _, samples in activity.values()) == 28 * 24 - 1


def test_hour_helpers_follow_the_local_clock():
    berlin = ZoneInfo("Europe/Berlin")
    kolkata = ZoneInfo("Asia/Kolkata")

    assert baselines.floor_local_hour(utc(2024, 10, 27, 1, 40), berlin) == utc(2024, 10, 27, 1, 0)  # 02:40 CET
    assert baselines.floor_local_hour(utc(2024, 10, 27, 0, 40), berlin) == utc(2024, 10, 27, 0, 0)  # 02:40 CEST
    assert baselines.floor_local_hour(utc(2024, 6, 1, 10, 10), kolkata) == utc(2024, 6, 1, 9, 30)  # 15:40 IST
    assert baselines.ceil_local_hour(utc(2024, 6, 1, 10, 10), kolkata) == utc(2024, 6, 1, 10, 30)
    assert baselines.ceil_local_hour(utc(2024, 6, 1, 10, 30), kolkata) == utc(2024, 6, 1, 10, 30)
    assert baselines.local_slot(utc(2024, 6, 3, 2, 30), ZoneInfo("America/New_York")) == (SUN, 22)


# --- Hourly update --------------------------------------------------------------------------------------------------


def test_the_hourly_update_recomputes_only_the_hour_that_just_ended(old_camera):
    baselines_rebuild("front", now=utc(2024, 6, 5, 9, 5))
    detections(old_camera, utc(2024, 6, 5, 9, 10), 4, "car")
    detections(old_camera, utc(2024, 6, 5, 8, 10), 8, "dog")  # an earlier hour: left for the nightly rebuild

    assert baselines_update_hour(now=utc(2024, 6, 5, 10, 5)) == 1

    activity = slots("front")
    assert activity[(WED, 9)] == (1.0, 4)  # 4 detections / 4 Wednesdays
    assert activity[(WED, 8)] == (0.0, 4)
    assert class_rows("front") == {("car", 9): (pytest.approx(4 / 28), 28)}
    assert ActivityBaseline.objects.filter(camera=old_camera, last_updated=utc(2024, 6, 5, 10, 5)).count() == 2


def test_the_hourly_update_keeps_a_young_camera_growing():
    camera = CameraFactory(id="new", created_at=utc(2024, 6, 5, 7, 30))
    detections(camera, utc(2024, 6, 5, 9, 30), 3)

    baselines_update_hour(now=utc(2024, 6, 5, 10, 5))

    assert slots("new")[(WED, 9)] == (3.0, 1)
    assert class_rows("new") == {("person", 9): (3.0, 1)}
    assert anomaly_context("new", ["person"], utc(2024, 6, 5, 10, 5))["established"] is False


def test_the_hourly_update_skips_cameras_without_a_whole_hour():
    CameraFactory(id="fresh", created_at=utc(2024, 6, 5, 9, 30))

    assert baselines_update_hour(now=utc(2024, 6, 5, 9, 59)) == 0
    assert slots("fresh") == {}


def test_the_hourly_update_drops_a_class_no_longer_seen_at_that_hour(old_camera):
    detections(old_camera, utc(2024, 5, 8, 10, 30), 1, "horse")  # the only horse: 10 o'clock, 4 weeks ago
    baselines_rebuild("front", now=utc(2024, 6, 5, 9, 5))
    assert ("horse", 10) in class_rows("front")

    baselines_update_hour(now=utc(2024, 6, 5, 10, 5))  # 8 May 10:00–11:00 has just left the window

    assert ("horse", 10) not in class_rows("front")
    assert slots("front")[(WED, 10)] == (0.0, 3)


def test_hourly_updates_match_a_full_rebuild_hour_after_hour_across_a_dst_change(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    start = utc(2024, 10, 26, 18, 5)  # Saturday evening; the clocks go back at 01:00 UTC on Sunday
    camera = CameraFactory(id="front", created_at=start - dt.timedelta(days=60))
    rng = random.Random(7)
    for _ in range(200):
        when = start - dt.timedelta(minutes=rng.randrange(0, 35 * 24 * 60))
        detections(camera, when, 1, rng.choice(["person", "car", "dog"]))
    baselines_rebuild("front", now=start)

    for step in range(1, 13):
        now = start + dt.timedelta(hours=step)
        for _ in range(rng.randrange(0, 4)):
            ended_hour = now - dt.timedelta(minutes=5 + rng.randrange(1, 60))
            detections(camera, ended_hour, 1, rng.choice(["person", "car", "cat"]))
        baselines_update_hour(now=now)
        incremental = (slots("front"), class_rows("front"))

        baselines_rebuild("front", now=now)

        assert (slots("front"), class_rows("front")) == incremental, f"differs after {now.isoformat()}"


# --- Anomaly score --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequencies", "observed", "expected", "score"),
    [
        ({"person": 0.0}, 0, 0.0, 1.0),  # a class never seen at this hour
        ({"person": 0.25}, 0, 3.0, 0.5),  # 1 / (1 + 4 × 0.25)
        ({"person": 0.1}, 0, 3.0, 0.714),  # 1 / 1.4, rounded to 3 decimals
        ({"person": 2.0, "car": 0.5}, 0, 3.0, 0.333),  # the rarest class present counts
        ({"person": 2.0}, 5, 2.0, 0.375),  # activity (5 / 2 − 1) / 4 beats rarity 1/9
        ({"person": 2.0}, 30, 2.0, 1.0),  # activity clamped to 1
        ({"person": 2.0}, 1, 2.0, 0.111),  # quieter than usual: activity 0
        ({}, 3, 0.2, 0.5),  # expected below 1 counts as 1: (3 − 1) / 4
        ({}, 0, 0.0, 0.0),
    ],
)
def test_anomaly_formula(frequencies, observed, expected, score):
    assert anomaly_score(frequencies, observed, expected) == score


def test_anomaly_context_of_an_established_baseline(monday_mornings):
    baselines_rebuild("front", now=NOW)
    at = utc(2024, 6, 10, 8, 40)  # Monday 08:40, one week later
    detections(monday_mornings, utc(2024, 6, 10, 7, 40), 2)  # exactly at − 1 h: counted
    detections(monday_mornings, utc(2024, 6, 10, 8, 39), 14)
    detections(monday_mornings, at, 1)  # at the end itself: not before it

    context = anomaly_context("front", ["person", "umbrella", "person"], at)

    assert context == {
        "established": True,
        "coverage_days": pytest.approx(27 + 23 / 24),
        "expected_count": 3.0,
        "observed_last_hour": 16,
        "class_frequencies": {"person": pytest.approx(0.25), "umbrella": 0.0},
        "anomaly_score": 1.0,  # umbrella was never seen at 8 o'clock
    }
    calm = anomaly_context("front", ["person"], utc(2024, 6, 10, 7, 0))
    assert calm["expected_count"] == 0.0 and calm["class_frequencies"] == {"person": 0.0}


def test_anomaly_context_activity_dominates_for_a_common_class(monday_mornings):
    ClassBaseline.objects.create(camera=monday_mornings, object_class="person", hour=8, frequency=3.0, sample_count=28)
    ActivityBaseline.objects.create(camera=monday_mornings, day_of_week=MON, hour=8, avg_count=2.0, sample_count=4)
    at = utc(2024, 6, 10, 8, 40)
    detections(monday_mornings, utc(2024, 6, 10, 8, 0), 6)

    context = anomaly_context("front", ["person"], at)

    assert context["anomaly_score"] == 0.5  # activity (6 / 2 − 1) / 4; rarity 1 / 13


def test_anomaly_context_before_the_baseline_is_established():
    camera = CameraFactory(id="young", created_at=utc(2024, 6, 1, 0, 0))
    baselines_rebuild("young", now=NOW)

    context = anomaly_context("young", ["person"], NOW)

    assert context["established"] is False
    assert context["coverage_days"] == pytest.approx(4 + 10 / 24)
    assert context["anomaly_score"] is None
    assert camera.id == "young"


def test_established_follows_the_minimum_days_setting(settings):
    CameraFactory(id="young", created_at=utc(2024, 6, 1, 0, 0))
    baselines_rebuild("young", now=NOW)
    settings.BASELINE_MIN_DAYS = 4

    assert anomaly_context("young", ["person"], NOW)["established"] is True


def test_anomaly_context_is_none_without_baseline_rows_or_camera(old_camera):
    assert anomaly_context("front", ["person"], NOW) is None
    assert anomaly_context("missing", ["person"], NOW) is None


def test_anomaly_context_with_only_class_rows_is_not_none(old_camera):
    ClassBaseline.objects.create(camera=old_camera, object_class="person", hour=10, frequency=1.0, sample_count=28)

    context = anomaly_context("front", ["person"], NOW)

    assert context["expected_count"] == 0.0
    assert context["anomaly_score"] == 0.2


# --- Tasks ----------------------------------------------------------------------------------------------------------


def test_baseline_tasks_are_registered_and_run_the_services(old_camera, time_machine):
    time_machine.move_to(NOW, tick=False)
    detections(old_camera, utc(2024, 6, 5, 9, 30), 4)

    app.tasks["events.rebuild_baselines"].apply(args=("front",)).get()
    assert slots("front")[(WED, 9)] == (1.0, 4)

    detections(old_camera, utc(2024, 6, 5, 9, 45), 4)
    app.tasks["events.update_baselines"].apply().get()
    assert slots("front")[(WED, 9)] == (2.0, 4)

    ActivityBaseline.objects.all().delete()
    app.tasks["events.rebuild_baselines"].apply().get()  # every camera
    assert slots("front")[(WED, 9)] == (2.0, 4)
