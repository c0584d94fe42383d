"""Retry policy, error classification and circuit breakers shared by every pipeline stage and the notification
outbox (CONTRACT §4.8, §5.8): cross-cutting, so ``alerts`` uses them without importing ``pipeline``.

- ``PipelineError`` carries the ``error_type`` stored in the DLQ and whether another attempt may succeed.
- ``retry_delay(n)`` is the capped exponential backoff with jitter before retry ``n`` (1-based).
- ``CircuitBreaker(name)`` keeps its state in the cache, so every worker sharing the Redis cache shares it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger("hsi.resilience")

T = TypeVar("T")

BREAKER_NAMES = ("detector", "llm", "webhook", "email", "mqtt")
CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
STATE_NUMBERS = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class PipelineError(Exception):
    """A failure of one attempt. ``error_type`` is one of CONTRACT §1.4's FailedJob error types."""

    def __init__(self, message: str, *, error_type: str, retryable: bool = True, counts_for_breaker: bool = True):
        super().__init__(message)
        self.error_type = error_type
        self.retryable = retryable
        self.counts_for_breaker = counts_for_breaker


class CircuitOpenError(PipelineError):
    def __init__(self, name: str):
        super().__init__(f"Circuit breaker '{name}' is open", error_type="circuit_open", counts_for_breaker=False)
        self.breaker = name


def error_type_for_status(status: int) -> tuple[str, bool]:
    """(error_type, retryable) of an HTTP error status: 5xx, 408 and 429 are retryable, other 4xx permanent."""
    if status >= 500:
        return "http_5xx", True
    if status in (408, 429):
        return "http_4xx", True
    return "http_4xx", False


def retry_delay(retry_number: int, *, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry ``retry_number`` (1, 2, 3, ...): min(base × 2^(n−1), max) × (1 + U[0, jitter])."""
    base = settings.RETRY_BASE_DELAY_SECONDS * 2 ** max(retry_number - 1, 0)
    capped = min(base, settings.RETRY_MAX_DELAY_SECONDS)
    return capped * (1 + (rng or random).uniform(0, settings.RETRY_JITTER))


@dataclass(frozen=True)
class BreakerState:
    name: str
    state: str
    failures: int
    opened_at: float | None
    last_failure_at: float | None = None

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "state": self.state,
            "failures": self.failures,
            "opened_at": self.opened_at,
            "last_failure_at": self.last_failure_at,
        }


class CircuitBreaker:
    """closed → (N consecutive failures) → open → (recovery time) → half_open → one trial → closed | open.

    State lives in the cache under ``hsi:cb:<name>``; the half-open trial is claimed with ``cache.add`` so only
    one caller at a time probes a recovering service.
    """

    TTL = 7 * 24 * 3600

    def __init__(self, name: str, *, clock: Callable[[], float] = time.time):
        self.name = name
        self.clock = clock

    @property
    def _key(self) -> str:
        return f"hsi:cb:{self.name}"

    @property
    def _trial_key(self) -> str:
        return f"hsi:cb:{self.name}:trial"

    def snapshot(self) -> BreakerState:
        raw = cache.get(self._key) or {}
        state = raw.get("state", CLOSED)
        opened_at = raw.get("opened_at")
        if state == OPEN and opened_at is not None and self.clock() - opened_at >= settings.CIRCUIT_RECOVERY_SECONDS:
            state = HALF_OPEN
        return BreakerState(self.name, state, int(raw.get("failures", 0)), opened_at, raw.get("last_failure_at"))

    def call(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` under the breaker; raise ``CircuitOpenError`` without calling it when open."""
        trial = self._admit()
        try:
            result = operation()
        except PipelineError as error:
            if error.counts_for_breaker:
                self.record_failure()
            elif trial:
                cache.delete(self._trial_key)
            raise
        except Exception:
            self.record_failure()
            raise
        self.record_success(trial=trial)
        return result

    def _admit(self) -> bool:
        current = self.snapshot()
        if current.state == CLOSED:
            return False
        trial_timeout = max(settings.CIRCUIT_RECOVERY_SECONDS, 1)
        if current.state == HALF_OPEN and cache.add(self._trial_key, 1, timeout=trial_timeout):
            return True
        raise CircuitOpenError(self.name)

    def record_success(self, *, trial: bool = True) -> None:
        """Close the breaker (and end the half-open trial; ``trial=False``: this call was not one, the common case
        of a closed breaker, which then costs one cache read)."""
        previous = self.snapshot()
        if trial or previous.state != CLOSED:
            cache.delete(self._trial_key)
        if previous.state != CLOSED or previous.failures:
            self._store(CLOSED, 0, None, previous.last_failure_at)
        if previous.state != CLOSED:
            self._announce(previous.state, CLOSED)

    def _store(self, state: str, failures: int, opened_at: float | None, last_failure_at: float | None) -> None:
        value = {"state": state, "failures": failures, "opened_at": opened_at, "last_failure_at": last_failure_at}
        cache.set(self._key, value, self.TTL)

    def record_failure(self) -> None:
        previous = self.snapshot()
        cache.delete(self._trial_key)
        failures = previous.failures + 1
        now = self.clock()
        if previous.state == HALF_OPEN or failures >= settings.CIRCUIT_FAILURE_THRESHOLD:
            self._store(OPEN, failures, now, now)
            if previous.state != OPEN:
                self._announce(previous.state, OPEN)
        else:
            self._store(previous.state, failures, None, now)

    def reset(self) -> None:
        previous = self.snapshot()
        cache.delete(self._trial_key)
        self._store(CLOSED, 0, None, previous.last_failure_at)  # the history of failures outlives a reset
        if previous.state != CLOSED:
            self._announce(previous.state, CLOSED)

    def _announce(self, old: str, new: str) -> None:
        level = logging.WARNING if new == OPEN else logging.INFO
        logger.log(level, "Circuit breaker %s: %s -> %s", self.name, old, new)
        from hsi.realtime import send_now

        send_now(
            "system",
            "system.service_status",
            {
                "service": self.name,
                "status": _SERVICE_STATUS[new],
                "previous_status": _SERVICE_STATUS[old],
                "message": f"circuit breaker {old} -> {new}",
            },
        )


_SERVICE_STATUS = {CLOSED: "healthy", HALF_OPEN: "degraded", OPEN: "unhealthy"}


def breaker(name: str) -> CircuitBreaker:
    if name not in BREAKER_NAMES:
        raise ValueError(f"unknown circuit breaker {name!r}")
    return CircuitBreaker(name)
