"""``hsi.dispatch.send_retry``: a task handed on as its own retry number N runs with ``request.retries`` N, inline or
on the in-process pool (eager mode), after the countdown."""

from __future__ import annotations

import time

import pytest

from hsi import dispatch
from hsi.celery import app

seen: list[tuple[int, int]] = []


@app.task(name="tests.dispatch.record_retries", bind=True)
def record_retries(self, value: int) -> None:
    seen.append((value, self.request.retries))


@pytest.fixture(autouse=True)
def eager(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    seen.clear()
    yield
    dispatch.stop_local_pool()


def test_a_retry_runs_inline_as_its_retry_number_after_the_countdown():
    started = time.monotonic()

    dispatch.send_retry("tests.dispatch.record_retries", 5, retries=2, countdown=0.05)

    assert seen == [(5, 2)]
    assert time.monotonic() - started >= 0.05


def test_a_retry_runs_on_the_in_process_pool_as_its_retry_number():
    dispatch.start_local_pool(1)

    future = dispatch.send_retry("tests.dispatch.record_retries", 6, retries=1, countdown=0)
    future.result(timeout=10)

    assert seen == [(6, 1)]
