"""Hand a task to whoever runs it, always after the current transaction commits (CONTRACT §4, DESIGN §1).

- Distributed mode (a broker is configured): ``apply_async`` to the broker; the queue comes from
  ``CELERY_TASK_ROUTES``. A broker that is down loses nothing: the row stays ``pending``/``closed`` in the database
  and ``pipeline.reconcile`` dispatches it again.
- Eager mode (no broker): inline in the calling thread, or on the in-process pool when one is running
  (``manage.py serve`` starts it with ``SERVE_WORKER_THREADS`` threads, so the watcher, the ticker and request
  handlers never wait for an analysis).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connections, transaction

logger = logging.getLogger("hsi.dispatch")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def enqueue(task_name: str, *args) -> None:
    """Dispatch ``task_name(*args)`` once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: send(task_name, *args))


def send(task_name: str, *args) -> Future | None:
    """Dispatch now. Returns the pool's future in eager mode with a pool, else None."""
    from hsi.celery import app

    task = app.tasks[task_name]
    if settings.CELERY_TASK_ALWAYS_EAGER:
        pool = _pool
        if pool is not None:
            return pool.submit(_run_in_pool, task, args)
        task.apply(args=args)
        return None
    try:
        task.apply_async(args=args)
    except Exception:
        # The work is durable in the database; the reconcile sweeper dispatches it again.
        logger.warning("Could not send %s%r to the broker; reconcile will retry", task_name, args, exc_info=True)
    return None


def _run_in_pool(task, args: tuple) -> None:
    close_old_connections()
    try:
        task.apply(args=args)
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
