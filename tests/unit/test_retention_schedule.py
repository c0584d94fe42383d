"""``system.run_retention`` runs daily at ``RETENTION_RUN_AT`` local time (CONTRACT §4.13, §8.3), under the
in-process ticker (all-in-one) and under Celery beat (distributed)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from hsi.env import env_str
from hsi.schedule import SENT, PeriodicJob, Ticker, beat_schedule, next_local_time, periodic_jobs


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_the_shipped_table_runs_retention_daily_at_three_local():
    assert env_str("RETENTION_RUN_AT", "03:00") == "03:00"  # the test environment keeps the default

    job = next(job for job in periodic_jobs() if job.task == "system.run_retention")

    assert (job.hour, job.minute) == (3, 0)
    assert job.period == dt.timedelta(days=1)


def test_a_daily_entry_parses_and_a_malformed_one_stops_start_up():
    assert periodic_jobs({"d.job": {"hour": 23, "minute": 59}}) == [PeriodicJob("d.job", minute=59, hour=23)]
    for entry in ({"hour": 24, "minute": 0}, {"hour": 3, "minute": 60}, {"hour": "3", "minute": 0}):
        with pytest.raises(ImproperlyConfigured, match=r"d\.job"):
            periodic_jobs({"d.job": entry})


def test_next_local_time_is_the_next_wall_clock_occurrence_in_the_time_zone():
    berlin = ZoneInfo("Europe/Berlin")  # UTC+1 in winter, UTC+2 in summer

    assert next_local_time(at("2024-01-10T02:00:00+00:00"), 3, 0, berlin) == at("2024-01-11T02:00:00+00:00")
    assert next_local_time(at("2024-01-10T01:00:00+00:00"), 3, 0, berlin) == at("2024-01-10T02:00:00+00:00")
    assert next_local_time(at("2024-07-10T00:30:00+00:00"), 3, 0, berlin) == at("2024-07-10T01:00:00+00:00")
    # 2024-03-31 02:00–03:00 does not exist in Berlin; 02:30 runs at 03:30 summer time (01:30 UTC), once.
    assert next_local_time(at("2024-03-30T23:00:00+00:00"), 2, 30, berlin) == at("2024-03-31T01:30:00+00:00")


def test_the_ticker_sends_retention_once_at_the_local_run_time(settings, monkeypatch):
    settings.TIME_ZONE = "America/New_York"  # 03:00 local = 08:00 UTC in winter
    sent: list[str] = []
    monkeypatch.setattr("hsi.dispatch.send", lambda task, *a, **k: sent.append(task))
    ticker = Ticker(
        [PeriodicJob("system.run_retention", minute=0, hour=3)], registered=lambda: {"system.run_retention"}
    )

    assert ticker.tick(at("2024-01-10T07:59:00+00:00")) == {}
    assert ticker.next_due("system.run_retention") == at("2024-01-10T08:00:00+00:00")
    assert ticker.tick(at("2024-01-10T08:00:00+00:00")) == {"system.run_retention": SENT}
    assert ticker.tick(at("2024-01-10T08:00:01+00:00")) == {}
    assert ticker.next_due("system.run_retention") == at("2024-01-11T08:00:00+00:00")
    assert sent == ["system.run_retention"]


def test_beat_runs_retention_with_a_daily_crontab_in_the_app_time_zone():
    from hsi.celery import app

    entry = beat_schedule([PeriodicJob("system.run_retention", minute=0, hour=3)])["system.run_retention"]

    assert entry["schedule"] == crontab(hour=3, minute=0)
    assert entry["options"] == {"expires": 86400.0}
    assert app.conf.beat_schedule["system.run_retention"]["schedule"] == crontab(hour=3, minute=0)
