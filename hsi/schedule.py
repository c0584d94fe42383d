"""Periodic jobs of CONTRACT §8.3: one table (``settings.PERIODIC_JOBS``), two runners.

- Distributed mode: ``celery -A hsi beat`` with ``beat_schedule()`` (``hsi/celery.py`` installs it) and
  ``HeartbeatScheduler``, which keeps the scheduler heartbeat on every beat tick.
- All-in-one mode: ``Ticker``, a thread of ``manage.py serve`` that every second hands each due job to
  ``hsi.dispatch.send`` (inline, or the in-process pool when one runs).

An entry is ``{"task.name": {"every": seconds}}``, ``{"task.name": {"minute": m}}`` (hourly at minute ``m`` of
local time, ``settings.TIME_ZONE``) or ``{"task.name": {"hour": h, "minute": m}}`` (daily at local ``h:m``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from celery.beat import PersistentScheduler
from celery.schedules import crontab
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from hsi.timeutils import utc_iso

logger = logging.getLogger("hsi.schedule")

SCHEDULER_HEARTBEAT_KEY = "hsi:hb:scheduler"
HEARTBEAT_TTL_SECONDS = 60
TICK_SECONDS = 1.0
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
# Beat sleeps until the next due job; the heartbeat (TTL 60 s) needs a tick at least this often.
BEAT_MAX_SLEEP_SECONDS = 15.0

# Outcomes of one due job in one tick (``Ticker.tick``).
SENT = "sent"
STILL_RUNNING = "still_running"
UNREGISTERED = "unregistered"
FAILED = "failed"


@dataclass(frozen=True)
class PeriodicJob:
    """One row of the schedule: ``every`` seconds, hourly at local ``minute``, or daily at local ``hour:minute``."""

    task: str
    every: float | None = None
    minute: int | None = None
    hour: int | None = None

    @property
    def period(self) -> dt.timedelta:
        if self.every is not None:
            return dt.timedelta(seconds=self.every)
        return DAY if self.hour is not None else HOUR

    def first_due(self, now: dt.datetime) -> dt.datetime:
        """Interval jobs run at the first tick (it closes what a stop left open); minute and daily jobs at their
        local time."""
        if self.every is not None:
            return now
        return self._next_local(now)

    def _next_local(self, now: dt.datetime) -> dt.datetime:
        if self.hour is not None:
            return next_local_time(now, self.hour, self.minute)
        return next_local_minute(now, self.minute)

    def next_due(self, due: dt.datetime, now: dt.datetime) -> dt.datetime:
        """The run after the one due at ``due``; a late tick skips the missed runs instead of bursting."""
        if self.every is None:
            return self._next_local(now)
        following = due + self.period
        return following if following > now else now + self.period


def periodic_jobs(config: Mapping[str, Mapping] | None = None) -> list[PeriodicJob]:
    """The jobs of ``config`` (default ``settings.PERIODIC_JOBS``); a malformed entry is ImproperlyConfigured."""
    config = settings.PERIODIC_JOBS if config is None else config
    return [_job_from_entry(task, entry) for task, entry in config.items()]


def _job_from_entry(task: str, entry: Mapping) -> PeriodicJob:
    if set(entry) == {"every"}:
        every = entry["every"]
        if isinstance(every, bool) or not isinstance(every, int | float) or every <= 0:
            raise ImproperlyConfigured(f"PERIODIC_JOBS[{task!r}]: 'every' must be a positive number of seconds")
        return PeriodicJob(task, every=float(every))
    if set(entry) == {"minute"}:
        minute = entry["minute"]
        if isinstance(minute, bool) or not isinstance(minute, int) or not 0 <= minute <= 59:
            raise ImproperlyConfigured(f"PERIODIC_JOBS[{task!r}]: 'minute' must be an integer from 0 to 59")
        return PeriodicJob(task, minute=minute)
    if set(entry) == {"hour", "minute"}:
        hour, minute = entry["hour"], entry["minute"]
        for name, value, top in (("hour", hour, 23), ("minute", minute, 59)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise ImproperlyConfigured(f"PERIODIC_JOBS[{task!r}]: {name!r} must be an integer from 0 to {top}")
        return PeriodicJob(task, minute=minute, hour=hour)
    raise ImproperlyConfigured(f"PERIODIC_JOBS[{task!r}] needs exactly one of 'every', 'minute' or 'hour' + 'minute'")


def next_local_minute(now: dt.datetime, minute: int, tz: dt.tzinfo | None = None) -> dt.datetime:
    """The first whole minute after ``now`` whose local-time minute is ``minute`` (DST and half-hour zones safe)."""
    tz = tz or ZoneInfo(settings.TIME_ZONE)
    candidate = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
    for _ in range(2 * 60):
        candidate += dt.timedelta(minutes=1)
        if candidate.astimezone(tz).minute == minute:
            return candidate
    raise ValueError(f"no local minute {minute} within two hours of {now}")  # pragma: no cover - offsets are < 1 h


def next_local_time(now: dt.datetime, hour: int, minute: int, tz: dt.tzinfo | None = None) -> dt.datetime:
    """The first instant after ``now`` whose local time is ``hour:minute``. A local time skipped by a DST change
    maps to the instant an hour later on the wall clock; a repeated one to its first occurrence."""
    tz = tz or ZoneInfo(settings.TIME_ZONE)
    day = now.astimezone(tz).date()
    for offset in range(3):
        local = dt.datetime.combine(day + dt.timedelta(days=offset), dt.time(hour, minute), tzinfo=tz)
        candidate = local.astimezone(dt.UTC)
        if candidate > now:
            return candidate
    raise ValueError(f"no local {hour:02d}:{minute:02d} within three days of {now}")  # pragma: no cover


def beat_schedule(jobs: Iterable[PeriodicJob] | None = None) -> dict[str, dict]:
    """``beat_schedule`` for Celery: timedelta for interval jobs, crontab (app time zone = TIME_ZONE) for minute ones.

    A run that no worker picks up within one period expires, so a stopped worker pool comes back to one run of
    each job, not to a backlog.
    """
    jobs = periodic_jobs() if jobs is None else jobs
    schedule = {}
    for job in jobs:
        if job.every is not None:
            when = dt.timedelta(seconds=job.every)
        elif job.hour is not None:
            when = crontab(hour=job.hour, minute=job.minute)
        else:
            when = crontab(minute=job.minute)
        schedule[job.task] = {
            "task": job.task,
            "schedule": when,
            "options": {"expires": job.period.total_seconds()},
        }
    return schedule


def scheduler_heartbeat_write(mode: str, *, now: dt.datetime | None = None, jobs: Iterable[str] = ()) -> dict:
    """Write ``hsi:hb:scheduler`` (TTL 60 s): who schedules (``beat`` or ``ticker``), where, and when."""
    payload = {
        "mode": mode,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "time": utc_iso(now or timezone.now()),
        "jobs": sorted(jobs),
    }
    cache.set(SCHEDULER_HEARTBEAT_KEY, payload, HEARTBEAT_TTL_SECONDS)
    return payload


def registered_tasks() -> set[str]:
    """Names of the tasks the Celery app knows (finalizing it imports every app's ``tasks`` module)."""
    from hsi.celery import app

    return set(app.tasks.keys())


class Ticker:
    """The in-process scheduler of ``serve``: ``tick(now)`` dispatches what is due; ``run(stop)`` ticks every second.

    A job whose previous run (a pool future) is still going is skipped for that run; a job that fails is logged
    and the others go on; a job whose task is not registered is skipped, reported once at INFO.
    """

    def __init__(
        self,
        jobs: Iterable[PeriodicJob] | None = None,
        *,
        clock: Callable[[], dt.datetime] = timezone.now,
        interval: float = TICK_SECONDS,
        registered: Callable[[], set[str]] = registered_tasks,
    ):
        self.jobs = list(periodic_jobs() if jobs is None else jobs)
        self.clock = clock
        self.interval = interval
        self._registered = registered
        self._due: dict[str, dt.datetime] = {}
        self._in_flight: dict[str, Future] = {}
        self._reported_unregistered: set[str] = set()

    def next_due(self, task: str) -> dt.datetime | None:
        return self._due.get(task)

    def in_flight(self, task: str) -> Future | None:
        """The pool future of the task's last run while it is still going."""
        future = self._in_flight.get(task)
        return future if future is not None and not future.done() else None

    def tick(self, now: dt.datetime | None = None) -> dict[str, str]:
        """Dispatch every job due at ``now``; returns ``{task: outcome}`` for the jobs that were due."""
        now = now or self.clock()
        self._write_heartbeat(now)
        outcomes: dict[str, str] = {}
        registered: set[str] | None = None
        for job in self.jobs:
            if not self._take_if_due(job, now):
                continue
            if registered is None:
                registered = self._registered()
            outcomes[job.task] = self._run_job(job.task, registered)
        return outcomes

    def run(self, stop: threading.Event) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set (the ``serve`` background service)."""
        logger.info("Ticker started with %d periodic jobs", len(self.jobs))
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                logger.exception("Ticker tick failed; ticking on")
            stop.wait(self.interval)
        logger.info("Ticker stopped")

    def _take_if_due(self, job: PeriodicJob, now: dt.datetime) -> bool:
        due = self._due.get(job.task)
        if due is None or due - now > job.period:  # first tick, or the wall clock went back
            due = self._due[job.task] = job.first_due(now)
        if now < due:
            return False
        self._due[job.task] = job.next_due(due, now)
        return True

    def _run_job(self, task: str, registered: set[str]) -> str:
        from hsi.dispatch import send

        if task not in registered:
            if task not in self._reported_unregistered:
                self._reported_unregistered.add(task)
                logger.info("Periodic job %s skipped: no such task is registered", task)
            return UNREGISTERED
        if self.in_flight(task) is not None:
            logger.info("Periodic job %s skipped: its previous run is still going", task)
            return STILL_RUNNING
        try:
            future = send(task)
        except Exception:
            logger.exception("Periodic job %s failed", task)
            return FAILED
        if future is not None:
            self._in_flight[task] = future
        return SENT

    def _write_heartbeat(self, now: dt.datetime) -> None:
        try:
            scheduler_heartbeat_write("ticker", now=now, jobs=(job.task for job in self.jobs))
        except Exception:
            logger.warning("Could not write the scheduler heartbeat", exc_info=True)


class HeartbeatScheduler(PersistentScheduler):
    """Celery beat's persistent scheduler, writing the scheduler heartbeat on every tick."""

    def tick(self, *args, **kwargs) -> float:
        try:
            scheduler_heartbeat_write("beat", jobs=self.schedule.keys())
        except Exception:
            logger.warning("Could not write the scheduler heartbeat", exc_info=True)
        return min(super().tick(*args, **kwargs), BEAT_MAX_SLEEP_SECONDS)
