"""The in-process ticker of ``serve``, beat's heartbeat and the worker heartbeat (CONTRACT §8.1, §8.3).

Time is driven through ``Ticker.tick(now)``; tasks of this module are registered with Celery for the tests only.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time

import pytest
from celery import shared_task
from django.core.cache import cache

from hsi.dispatch import start_local_pool, stop_local_pool
from hsi.schedule import (
    FAILED,
    SCHEDULER_HEARTBEAT_KEY,
    SENT,
    STILL_RUNNING,
    UNREGISTERED,
    HeartbeatScheduler,
    PeriodicJob,
    Ticker,
)
from hsi.timeutils import utc_iso
from system.tasks import worker_heartbeat_key, worker_heartbeat_write

T0 = dt.datetime(2024, 3, 1, 10, 30, tzinfo=dt.UTC)
RUNS: list[tuple[str, str]] = []  # (task, thread name) of every run of the probe tasks
RELEASE = threading.Event()


@shared_task(name="tests.tick_probe")
def tick_probe():
    RUNS.append(("tests.tick_probe", threading.current_thread().name))


@shared_task(name="tests.tick_block")
def tick_block():
    RUNS.append(("tests.tick_block", threading.current_thread().name))
    RELEASE.wait(10)


@shared_task(name="tests.tick_fail")
def tick_fail():
    RUNS.append(("tests.tick_fail", threading.current_thread().name))
    raise RuntimeError("periodic job broke")


def seconds(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


def runs_of(task: str) -> list[str]:
    return [thread for name, thread in RUNS if name == task]


def wait_until_idle(ticker: Ticker, task: str) -> None:
    running = ticker.in_flight(task)
    if running is not None:
        running.result(timeout=5)


def redis_ttl(key: str) -> int:
    return cache._cache.get_client(key).ttl(cache.make_and_validate_key(key))


@pytest.fixture(autouse=True)
def _clean_runs():
    RUNS.clear()
    RELEASE.clear()
    yield
    RELEASE.set()


@pytest.fixture
def eager(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return settings


@pytest.fixture
def pool(eager):
    start_local_pool(2)
    yield
    RELEASE.set()
    stop_local_pool(wait=True)


@pytest.fixture
def eager_propagates():
    """Make an inline task's exception reach the caller (``task.apply`` raises), as a broken dispatch would."""
    from hsi.celery import app

    before = app.conf.task_eager_propagates
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_eager_propagates = before


def test_the_first_tick_runs_interval_jobs_inline_then_keeps_their_cadence(eager):
    ticker = Ticker([PeriodicJob("tests.tick_probe", every=5)])

    assert ticker.tick(T0) == {"tests.tick_probe": SENT}
    assert ticker.tick(T0 + seconds(1)) == {}
    assert ticker.tick(T0 + seconds(4.9)) == {}
    assert ticker.tick(T0 + seconds(5)) == {"tests.tick_probe": SENT}

    assert runs_of("tests.tick_probe") == [threading.current_thread().name] * 2
    assert ticker.next_due("tests.tick_probe") == T0 + seconds(10)


def test_every_tick_writes_the_scheduler_heartbeat_with_a_60_second_ttl(eager):
    ticker = Ticker([PeriodicJob("tests.tick_probe", every=5), PeriodicJob("tests.hourly", minute=5)])

    ticker.tick(T0)
    ticker.tick(T0 + seconds(1))  # nothing due: the heartbeat is still written

    heartbeat = cache.get(SCHEDULER_HEARTBEAT_KEY)
    assert heartbeat["mode"] == "ticker"
    assert heartbeat["time"] == utc_iso(T0 + seconds(1))
    assert heartbeat["jobs"] == ["tests.hourly", "tests.tick_probe"]
    assert heartbeat["host"] == socket.gethostname()
    assert 0 < redis_ttl(SCHEDULER_HEARTBEAT_KEY) <= 60


def test_a_minute_job_runs_once_an_hour_at_its_local_minute(eager):
    eager.TIME_ZONE = "Asia/Kolkata"  # 10:30 UTC is 16:00 local; local minute 5 is UTC minute 35
    ticker = Ticker([PeriodicJob("tests.tick_probe", minute=5)])

    assert ticker.tick(T0) == {}
    assert ticker.tick(T0 + dt.timedelta(minutes=4, seconds=59)) == {}
    assert ticker.tick(T0 + dt.timedelta(minutes=5)) == {"tests.tick_probe": SENT}
    assert ticker.tick(T0 + dt.timedelta(minutes=5, seconds=1)) == {}
    assert ticker.tick(T0 + dt.timedelta(minutes=30)) == {}
    assert ticker.tick(T0 + dt.timedelta(minutes=65)) == {"tests.tick_probe": SENT}

    assert len(runs_of("tests.tick_probe")) == 2


def test_a_job_without_a_registered_task_is_skipped_with_one_info_log(eager, caplog):
    ticker = Ticker([PeriodicJob("tests.not_registered", every=1), PeriodicJob("tests.tick_probe", every=1)])

    with caplog.at_level(logging.INFO, logger="hsi.schedule"):
        outcomes = [ticker.tick(T0 + seconds(n)) for n in range(3)]

    assert outcomes == [{"tests.not_registered": UNREGISTERED, "tests.tick_probe": SENT}] * 3
    messages = [r.getMessage() for r in caplog.records if "tests.not_registered" in r.getMessage()]
    assert messages == ["Periodic job tests.not_registered skipped: no such task is registered"]
    assert len(runs_of("tests.tick_probe")) == 3


def test_with_the_in_process_pool_a_job_still_running_is_skipped(pool):
    ticker = Ticker([PeriodicJob("tests.tick_block", every=1)])

    assert ticker.tick(T0) == {"tests.tick_block": SENT}
    running = ticker.in_flight("tests.tick_block")
    assert running is not None
    assert ticker.tick(T0 + seconds(1)) == {"tests.tick_block": STILL_RUNNING}
    assert ticker.tick(T0 + seconds(2)) == {"tests.tick_block": STILL_RUNNING}

    RELEASE.set()
    running.result(timeout=5)
    assert ticker.in_flight("tests.tick_block") is None
    assert ticker.tick(T0 + seconds(3)) == {"tests.tick_block": SENT}
    RELEASE.set()
    wait_until_idle(ticker, "tests.tick_block")

    threads = runs_of("tests.tick_block")
    assert len(threads) == 2
    assert all(name.startswith("hsi-task") for name in threads)


def test_a_failing_job_is_logged_and_the_other_jobs_still_run(eager, eager_propagates, caplog):
    ticker = Ticker([PeriodicJob("tests.tick_fail", every=1), PeriodicJob("tests.tick_probe", every=1)])

    with caplog.at_level(logging.ERROR, logger="hsi.schedule"):
        first = ticker.tick(T0)
        second = ticker.tick(T0 + seconds(1))

    assert first == second == {"tests.tick_fail": FAILED, "tests.tick_probe": SENT}
    assert len(runs_of("tests.tick_fail")) == 2
    assert len(runs_of("tests.tick_probe")) == 2
    failures = [r for r in caplog.records if r.getMessage() == "Periodic job tests.tick_fail failed"]
    assert len(failures) == 2
    assert "periodic job broke" in str(failures[0].exc_info[1])


def test_a_job_failing_on_the_pool_runs_again_at_its_next_time(pool, caplog):
    ticker = Ticker([PeriodicJob("tests.tick_fail", every=1)])

    with caplog.at_level(logging.ERROR):
        for n in range(2):
            assert ticker.tick(T0 + seconds(n)) == {"tests.tick_fail": SENT}
            wait_until_idle(ticker, "tests.tick_fail")

    assert len(runs_of("tests.tick_fail")) == 2
    assert [r.name for r in caplog.records if "periodic job broke" in r.getMessage()] == ["celery.app.trace"] * 2


def test_when_the_wall_clock_goes_back_jobs_are_rescheduled_from_the_new_time(eager):
    ticker = Ticker([PeriodicJob("tests.tick_probe", every=5)])
    ticker.tick(T0)

    earlier = T0 - dt.timedelta(hours=1)
    assert ticker.tick(earlier) == {"tests.tick_probe": SENT}
    assert ticker.next_due("tests.tick_probe") == earlier + seconds(5)


def test_in_distributed_mode_the_ticker_hands_jobs_to_the_broker(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    ticker = Ticker([PeriodicJob("tests.tick_probe", every=5)])

    assert ticker.tick(T0) == {"tests.tick_probe": SENT}
    assert RUNS == []  # queued for a worker, not run here


def test_the_settings_table_runs_the_registered_worker_heartbeat(eager):
    eager.PERIODIC_JOBS = {"system.heartbeat": {"every": 15}, "later.issue_task": {"every": 60}}
    ticker = Ticker()

    assert ticker.tick(T0) == {"system.heartbeat": SENT, "later.issue_task": UNREGISTERED}

    heartbeat = cache.get(worker_heartbeat_key(socket.gethostname()))
    assert heartbeat["mode"] == "in-process"
    assert heartbeat["queues"] == ["analysis", "default", "detection", "notifications"]


def test_run_ticks_until_stopped_and_survives_a_failing_tick(eager):
    calls = {"n": 0}

    def clock():
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("clock trouble")
        return T0 + seconds(calls["n"])

    ticker = Ticker([PeriodicJob("tests.tick_probe", every=1)], clock=clock, interval=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=ticker.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 5
    while len(runs_of("tests.tick_probe")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(2)

    assert not thread.is_alive()
    assert len(runs_of("tests.tick_probe")) >= 2
    assert calls["n"] >= 3


def test_serve_ticker_service_stops_when_told(eager):
    from system.management.commands.serve import background_services

    eager.PERIODIC_JOBS = {"tests.tick_probe": {"every": 60}}
    services = background_services(watcher=False, ticker=True)
    assert [service.name for service in services] == ["ticker"]

    services[0].start()
    deadline = time.monotonic() + 5
    while not runs_of("tests.tick_probe") and time.monotonic() < deadline:
        time.sleep(0.01)
    services[0].shutdown(timeout=5)

    assert runs_of("tests.tick_probe")  # the first tick ran the job at once
    assert not services[0].thread.is_alive()
    assert cache.get(SCHEDULER_HEARTBEAT_KEY)["mode"] == "ticker"


def test_beat_writes_the_scheduler_heartbeat_on_every_tick(settings, tmp_path):
    from hsi.celery import app

    scheduler = HeartbeatScheduler(app=app, schedule_filename=str(tmp_path / "celerybeat-schedule"))
    try:
        sleep_for = scheduler.tick()
    finally:
        scheduler.close()

    heartbeat = cache.get(SCHEDULER_HEARTBEAT_KEY)
    assert heartbeat["mode"] == "beat"
    assert set(settings.PERIODIC_JOBS) <= set(heartbeat["jobs"])
    assert 0 <= sleep_for <= 15
    assert 0 < redis_ttl(SCHEDULER_HEARTBEAT_KEY) <= 60


def test_the_worker_heartbeat_names_the_node_its_queues_and_expires(settings):
    written = worker_heartbeat_write("celery@box-1", queues=["detection", "default", "detection"], now=T0)

    stored = cache.get("hsi:hb:worker:celery@box-1")
    assert stored == written
    assert stored["hostname"] == "celery@box-1"
    assert stored["queues"] == ["default", "detection"]
    assert stored["time"] == "2024-03-01T10:30:00Z"
    assert stored["mode"] == "celery"
    assert isinstance(stored["pid"], int)
    assert 0 < redis_ttl("hsi:hb:worker:celery@box-1") <= 60


def test_the_heartbeat_task_outside_eager_mode_reports_the_queues_it_consumes(settings):
    from system.tasks import heartbeat

    written = heartbeat()  # called as a worker calls it: not eager

    assert written["mode"] == "celery"
    assert written["queues"] == ["default"]  # this process consumes no -Q selection: the default queue
    assert cache.get(worker_heartbeat_key(written["hostname"])) == written


@pytest.fixture
def cache_down(settings):
    """The cache points at a Redis that refuses connections (a Redis outage)."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    return settings


def test_a_cache_outage_costs_the_heartbeat_but_not_the_jobs(eager, cache_down, caplog):
    ticker = Ticker([PeriodicJob("tests.tick_probe", every=5)], registered=lambda: {"tests.tick_probe"})

    with caplog.at_level(logging.WARNING, logger="hsi.schedule"):
        assert ticker.tick(T0) == {"tests.tick_probe": SENT}

    assert len(runs_of("tests.tick_probe")) == 1
    assert "Could not write the scheduler heartbeat" in caplog.text


def test_beat_keeps_scheduling_during_a_cache_outage(cache_down, tmp_path, caplog):
    from hsi.celery import app

    scheduler = HeartbeatScheduler(app=app, schedule_filename=str(tmp_path / "celerybeat-schedule"))
    try:
        with caplog.at_level(logging.WARNING, logger="hsi.schedule"):
            sleep_for = scheduler.tick()
    finally:
        scheduler.close()

    assert 0 <= sleep_for <= 15
    assert "Could not write the scheduler heartbeat" in caplog.text


def wait_for(condition, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"condition not met within {seconds} s")


@pytest.mark.django_db(transaction=True)
def test_serve_watcher_service_ingests_a_dropped_file_and_stops_when_told(settings, foscam_root):
    from pipeline.models import IngestedFile
    from pipeline.watcher import heartbeat_key
    from system.management.commands.serve import background_services
    from tests.images import write_jpeg

    settings.WATCHER_DEBOUNCE_SECONDS = 0.05
    settings.FILE_STABILITY_SECONDS = 0.2
    services = background_services(watcher=True, ticker=False)
    assert [service.name for service in services] == ["watcher"]

    services[0].start()
    try:
        wait_for(lambda: cache.get(heartbeat_key()))  # written once the observer runs
        path = write_jpeg(foscam_root / "porch" / "a.jpg", seed=61)
        row = wait_for(lambda: IngestedFile.objects.first())
    finally:
        services[0].shutdown(timeout=10)

    assert not services[0].thread.is_alive()
    assert (row.camera_id, row.path, row.status) == ("porch", str(path), "pending")
    assert cache.get(heartbeat_key()) is None  # a stopped watcher withdraws its heartbeat
