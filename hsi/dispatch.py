"""Hand a task to whoever runs it, always after the current transaction commits (CONTRACT §4, DESIGN §1).

- Distributed mode (a broker is configured): ``apply_async`` to the broker; the queue comes from
  ``CELERY_TASK_ROUTES``. A broker that is down loses nothing: the row stays ``pending``/``closed`` in the database
  and ``pipeline.reconcile`` dispatches it again.
- Eager mode (no broker): inline in the calling thread, or on the in-process pool when one is running
  (``manage.py serve`` starts it with ``SERVE_WORKER_THREADS`` threads, so the watcher, the ticker and request
  handlers never wait for an analysis).

``coalesced`` gathers the dispatches of a per-item task made by one thread within a block into chunks for a
per-chunk task (the watcher hands a burst of files to ``pipeline.process_files`` this way).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections, connections, transaction

logger = logging.getLogger("hsi.dispatch")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_coalescing = threading.local()


@dataclass
class _Coalescer:
    task_name: str
    chunk_task_name: str
    size: int
    items: list = field(default_factory=list)

    def add(self, item) -> None:
        self.items.append(item)
        if len(self.items) >= self.size:
            self.flush()

    def flush(self) -> None:
        items, self.items = self.items, []
        current, _coalescing.current = getattr(_coalescing, "current", None), None  # an eager chunk task's own
        try:  # dispatches (a failed file handed on) go out as they are
            if len(items) == 1:
                _send_now(self.task_name, items[0])  # a lone item goes as it would have: nothing to share
            elif items:
                _send_now(self.chunk_task_name, items)
        finally:
            _coalescing.current = current


@contextlib.contextmanager
def coalesced(task_name: str, chunk_task_name: str, *, size: int) -> Iterator[None]:
    """Within the block, this thread's dispatches of ``task_name(item)`` are sent as ``chunk_task_name([items])``,
    ``size`` at a time and the rest when the block ends (even by an exception: every dispatch was committed work).
    A dispatch still waits for its transaction to commit; a single leftover item is sent as ``task_name(item)``."""
    outer = getattr(_coalescing, "current", None)
    coalescer = _Coalescer(task_name, chunk_task_name, max(1, size))
    _coalescing.current = coalescer
    try:
        yield
    finally:
        _coalescing.current = outer
        coalescer.flush()


def enqueue(task_name: str, *args) -> None:
    """Dispatch ``task_name(*args)`` once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: send(task_name, *args))


def send(task_name: str, *args) -> Future | None:
    """Dispatch now (into the current ``coalesced`` chunk when it gathers ``task_name``). Returns the pool's future
    in eager mode with a pool, else None."""
    coalescer = getattr(_coalescing, "current", None)
    if coalescer is not None and coalescer.task_name == task_name and len(args) == 1:
        coalescer.add(args[0])
        return None
    return _send_now(task_name, *args)


def send_retry(task_name: str, *args, retries: int, countdown: float) -> Future | None:
    """Dispatch ``task_name(*args)`` as its retry number ``retries``, ``countdown`` seconds from now (the task's own
    retry policy then counts on from there). In eager mode the countdown is slept first, as an eager retry is."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        time.sleep(countdown)
    return _send_now(task_name, *args, retries=retries, countdown=countdown)


def _send_now(task_name: str, *args, **options) -> Future | None:
    from hsi.celery import app

    task = app.tasks[task_name]
    if settings.CELERY_TASK_ALWAYS_EAGER:
        eager = {"retries": options["retries"]} if "retries" in options else {}
        pool = _pool
        if pool is not None:
            return pool.submit(_run_in_pool, task, args, eager)
        task.apply(args=args, **eager)
        return None
    try:
        task.apply_async(args=args, **options)
    except Exception:
        # The work is durable in the database; the reconcile sweeper dispatches it again.
        logger.warning("Could not send %s%r to the broker; reconcile will retry", task_name, args, exc_info=True)
    return None


def _run_in_pool(task, args: tuple, options: dict | None = None) -> None:
    close_old_connections()
    try:
        task.apply(args=args, **(options or {}))
    except Exception:
        logger.exception("In-process task %s%r failed", task.name, args)
    finally:
        connections.close_all()


def start_local_pool(threads: int | None = None) -> ThreadPoolExecutor:
    """Start the in-process pool used in eager mode (``serve``)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=threads or settings.SERVE_WORKER_THREADS, thread_name_prefix="hsi-task"
            )
        return _pool


def stop_local_pool(wait: bool = True) -> None:
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=not wait)


def local_pool_running() -> bool:
    return _pool is not None
