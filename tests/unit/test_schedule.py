"""The periodic-job table (CONTRACT §8.3): parsing, local-minute arithmetic and the Celery beat schedule."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from hsi.schedule import PeriodicJob, beat_schedule, next_local_minute, periodic_jobs

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_periodic_jobs_reads_interval_and_minute_entries():
    jobs = periodic_jobs({"a.every": {"every": 5}, "b.hourly": {"minute": 5}, "c.fraction": {"every": 0.5}})

    assert jobs == [
        PeriodicJob("a.every", every=5.0),
        PeriodicJob("b.hourly", minute=5),
        PeriodicJob("c.fraction", every=0.5),
    ]


def test_periodic_jobs_defaults_to_the_settings_table(settings):
    settings.PERIODIC_JOBS = {"x.job": {"every": 7}}

    assert periodic_jobs() == [PeriodicJob("x.job", every=7.0)]


@pytest.mark.parametrize(
    "entry",
    [
        {},
        {"every": 5, "minute": 3},
        {"every": 0},
        {"every": -1},
        {"every": "5"},
        {"every": True},
        {"minute": 60},
        {"minute": -1},
        {"minute": 5.5},
        {"hour": 3},
    ],
)
def test_a_malformed_entry_stops_start_up_naming_the_task(entry):
    with pytest.raises(ImproperlyConfigured, match=r"broken\.job"):
        periodic_jobs({"broken.job": entry})


def test_the_shipped_table_parses_and_includes_the_jobs_of_this_issue(settings):
    tasks = {job.task for job in periodic_jobs()}

    assert {
        "pipeline.close_expired_batches",
        "pipeline.reconcile",
        "cameras.check_silence",
        "system.heartbeat",
        "events.update_baselines",
    } <= tasks


def test_next_local_minute_in_utc():
    assert next_local_minute(at("2024-03-01T10:04:59+00:00"), 5, UTC) == at("2024-03-01T10:05:00+00:00")
    assert next_local_minute(at("2024-03-01T10:05:00+00:00"), 5, UTC) == at("2024-03-01T11:05:00+00:00")
    assert next_local_minute(at("2024-03-01T10:05:30+00:00"), 5, UTC) == at("2024-03-01T11:05:00+00:00")
    assert next_local_minute(at("2024-03-01T23:59:10+00:00"), 0, UTC) == at("2024-03-02T00:00:00+00:00")


def test_next_local_minute_follows_a_half_hour_time_zone():
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30: local minute 5 is UTC minute 35

    assert next_local_minute(at("2024-03-01T10:00:00+00:00"), 5, kolkata) == at("2024-03-01T10:35:00+00:00")


def test_next_local_minute_runs_once_per_real_hour_across_daylight_saving_changes():
    berlin = ZoneInfo("Europe/Berlin")
    # Spring forward (2024-03-31 02:00 → 03:00 local) and fall back (2024-10-27 03:00 → 02:00 local).
    for start in (at("2024-03-30T22:00:00+00:00"), at("2024-10-26T22:00:00+00:00")):
        runs, now = [], start
        for _ in range(6):
            now = next_local_minute(now, 5, berlin)
            runs.append(now)

        assert [run - start for run in runs] == [dt.timedelta(hours=n, minutes=5) for n in range(6)]
        assert all(run.astimezone(berlin).minute == 5 for run in runs)


def test_next_local_minute_uses_the_time_zone_setting(settings):
    settings.TIME_ZONE = "Asia/Kolkata"

    assert next_local_minute(at("2024-03-01T10:00:00+00:00"), 5) == at("2024-03-01T10:35:00+00:00")


def test_an_interval_job_is_due_at_the_first_tick_and_keeps_its_cadence():
    job = PeriodicJob("a", every=5.0)
    start = at("2024-03-01T10:00:00+00:00")

    assert job.first_due(start) == start
    assert job.next_due(start, start + dt.timedelta(seconds=0.4)) == start + dt.timedelta(seconds=5)


def test_a_late_interval_job_skips_the_missed_runs_instead_of_bursting():
    job = PeriodicJob("a", every=5.0)
    due = at("2024-03-01T10:00:00+00:00")
    late = due + dt.timedelta(seconds=23)

    assert job.next_due(due, late) == late + dt.timedelta(seconds=5)


def test_a_minute_job_is_due_at_its_next_local_minute(settings):
    settings.TIME_ZONE = "UTC"
    job = PeriodicJob("hourly", minute=5)
    now = at("2024-03-01T10:30:00+00:00")

    assert job.first_due(now) == at("2024-03-01T11:05:00+00:00")
    assert job.next_due(at("2024-03-01T11:05:00+00:00"), at("2024-03-01T11:05:01+00:00")) == at(
        "2024-03-01T12:05:00+00:00"
    )
    assert job.period == dt.timedelta(hours=1)


def test_beat_schedule_has_one_entry_per_job_with_an_expiry_of_one_period():
    schedule = beat_schedule([PeriodicJob("a.every", every=5.0), PeriodicJob("b.hourly", minute=5)])

    assert schedule["a.every"] == {
        "task": "a.every",
        "schedule": dt.timedelta(seconds=5),
        "options": {"expires": 5.0},
    }
    assert schedule["b.hourly"]["task"] == "b.hourly"
    assert schedule["b.hourly"]["schedule"] == crontab(minute=5)
    assert schedule["b.hourly"]["options"] == {"expires": 3600.0}


def test_beat_crontab_fires_hourly_at_the_minute_in_the_app_time_zone(settings):
    from hsi.celery import app

    schedule = beat_schedule([PeriodicJob("b.hourly", minute=5)])["b.hourly"]["schedule"]

    assert schedule.minute == {5}
    assert schedule.hour == set(range(24))
    assert app.conf.timezone == settings.TIME_ZONE  # Celery evaluates crontabs in local time (CELERY_TIMEZONE)


def test_the_celery_app_runs_the_settings_table_with_the_heartbeat_scheduler(settings):
    from hsi.celery import app

    assert set(app.conf.beat_schedule) == set(settings.PERIODIC_JOBS)
    assert app.conf.beat_scheduler == "hsi.schedule:HeartbeatScheduler"
    every = settings.PERIODIC_JOBS["pipeline.close_expired_batches"]["every"]
    assert app.conf.beat_schedule["pipeline.close_expired_batches"]["schedule"] == dt.timedelta(seconds=every)
