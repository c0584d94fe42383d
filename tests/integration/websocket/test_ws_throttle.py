"""The websocket throttle tier (CONTRACT §6.2) counts attempts atomically in the shared cache."""

from __future__ import annotations

import threading

import time_machine

from system.websocket.throttle import websocket_attempt_allowed


def attempts_from_threads(ip: str, threads: int) -> list[bool]:
    start = threading.Barrier(threads)
    outcomes: list[bool] = []
    lock = threading.Lock()

    def attempt():
        start.wait()
        allowed = websocket_attempt_allowed(ip)
        with lock:
            outcomes.append(allowed)

    workers = [threading.Thread(target=attempt) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    return outcomes


def test_concurrent_attempts_never_get_more_than_the_rate(settings):
    settings.THROTTLE_WEBSOCKET_RATE = "5/min"

    with time_machine.travel("2026-12-04 10:00:10Z", tick=False):
        outcomes = attempts_from_threads("198.51.100.77", 40)

    assert outcomes.count(True) == 5 and outcomes.count(False) == 35


def test_concurrent_attempts_in_the_in_memory_cache_of_all_in_one(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ws-t"}}
    settings.THROTTLE_WEBSOCKET_RATE = "3/min"

    with time_machine.travel("2026-12-04 10:00:10Z", tick=False) as traveller:
        outcomes = attempts_from_threads("198.51.100.78", 20)
        traveller.shift(60)
        next_minute = websocket_attempt_allowed("198.51.100.78")

    assert outcomes.count(True) == 3
    assert next_minute is True
