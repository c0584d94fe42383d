"""Structured application logs stored as ``LogEntry`` rows (CONTRACT §1.5, §7 ``LOG_DB_MIN_LEVEL``).

``DatabaseLogHandler`` sits on the root logger next to the console handler. Every record at or above
``LOG_DB_MIN_LEVEL`` becomes one row: ``component`` is the logger name, ``camera_id`` / ``event_id`` /
``detection_id`` / ``request_id`` / ``duration_ms`` come from ``extra=`` on the call (the request id falls back to
the id of the request being served), any other ``extra=`` keys go, JSON-safe, into ``extra``.

Where the row is written, and why:

- **Caller outside any transaction** (autocommit, the usual case for views and tasks): one INSERT on the
  caller's own connection, right away. Nothing to lose, nothing to break.
- **Caller inside an application transaction**, or in async code (where a synchronous query is not allowed),
  or with autocommit switched off: the row goes to an in-process queue drained by a background writer thread
  with its own connection and autocommit. So the ERROR logged just before a transaction rolls back is stored
  anyway, and a write never lands inside (or fails inside) a transaction that is already broken. On SQLite the
  writer simply waits for the caller's write lock instead of blocking the caller.
- **Inside a test case's transaction** (pytest-django / ``TestCase`` wrap each test in an atomic block that is
  never committed): the row is written in a savepoint of that transaction, so tests see their logs at once and
  nothing leaks into the next test. ``flush()`` waits for the background writer (transactional tests). Rows
  committed on another connection during a test (the background writer, another thread's autocommit INSERT)
  are tracked and deleted after the test (``track_committed_rows`` / ``discard_committed_rows``,
  tests/conftest.py), so they never show up in a later test either.

The handler never raises into the caller (database errors are swallowed), and it never recurses: records of
``django.db.backends`` and of this module are ignored, and a record logged while a row is being written is
dropped.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime as dt
import json
import logging
import os
import queue
import re
import threading
from typing import Any

MESSAGE_MAX = 10000
COMPONENT_MAX = 100
EXTRA_MAX_BYTES = 16384
QUEUE_MAX = 10000
_IGNORED_PREFIXES = ("django.db.backends", __name__)
_ID_FIELDS = ("event_id", "detection_id")
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_KNOWN_EXTRAS = {"camera_id", "event_id", "detection_id", "request_id", "duration_ms"}

_local = threading.local()
# The escape ``\u0000`` in JSON text, not preceded by an escaped backslash (``\\u0000`` is the text "\u0000").
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def level_name(levelno: int) -> str:
    """The LogEntry level of a numeric level (custom levels round down to the nearest contract level)."""
    if levelno >= logging.CRITICAL:
        return "CRITICAL"
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARNING"
    if levelno >= logging.INFO:
        return "INFO"
    return "DEBUG"


def _min_level() -> int:
    from django.conf import settings

    return logging.getLevelName(str(getattr(settings, "LOG_DB_MIN_LEVEL", "INFO")).upper())


def clean_text(text: str) -> str:
    """``text`` as PostgreSQL stores it: NUL (which it refuses) becomes U+FFFD, a lone surrogate "?"."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def json_safe(value: Any) -> Any:
    """A JSON-serialisable copy of ``value`` (unknown objects become their ``str``)."""
    try:  # NUL is valid JSON but PostgreSQL's jsonb refuses it (in keys too), as it refuses lone surrogates
        text = clean_text(json.dumps(value, default=str, ensure_ascii=False))
        return json.loads(_JSON_NUL.sub(r"\1\\ufffd", text) if "\\u0000" in text else text)
    except (TypeError, ValueError, RecursionError):
        return str(value)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, float) and value == value and abs(value) < 2**31:
        return round(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return _as_int(int(value.strip()))
    return None


def _current_request_id() -> str | None:
    try:
        from hsi.middleware import current_request_id
    except ImportError:  # pragma: no cover - middleware without the contextvar
        return None
    return current_request_id.get()


def record_to_row(record: logging.LogRecord) -> dict:
    """The LogEntry field values of one record."""
    message = clean_text(record.getMessage())
    attrs = record.__dict__
    extra = {k: v for k, v in attrs.items() if k not in _STANDARD_ATTRS and k not in _KNOWN_EXTRAS}
    if record.exc_info and record.exc_info[0] is not None:
        extra["exception"] = logging.Formatter().formatException(record.exc_info)[:MESSAGE_MAX]
    row: dict[str, Any] = {
        "timestamp": dt.datetime.fromtimestamp(record.created, tz=dt.UTC),
        "level": level_name(record.levelno),
        "component": clean_text(record.name or "root")[:COMPONENT_MAX],
        "message": message[:MESSAGE_MAX],
        "source": "backend",
    }
    camera_id = attrs.get("camera_id")
    if camera_id is not None:
        row["camera_id"] = clean_text(str(camera_id))[:64]
    for name in _ID_FIELDS:
        if attrs.get(name) is not None:
            number = _as_int(attrs[name])
            if number is None:
                extra[name] = attrs[name]
            else:
                row[name] = number
    if attrs.get("duration_ms") is not None:
        duration = _as_int(attrs["duration_ms"])
        if duration is None or not -(2**31) <= duration < 2**31:
            extra["duration_ms"] = attrs["duration_ms"]
        else:
            row["duration_ms"] = duration
    request_id = attrs.get("request_id") or _current_request_id()
    if request_id:
        row["request_id"] = clean_text(str(request_id))[:64]
    if extra:
        safe = json_safe(extra)
        if len(json.dumps(safe)) > EXTRA_MAX_BYTES:
            safe = {"truncated": True, "keys": sorted(str(k) for k in extra)[:100]}
        row["extra"] = safe
    return row


class _Call:
    """A function the writer thread runs on its own connection, in queue order (after the rows queued before it)."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None


class _Writer:
    """The background writer: a bounded queue and one daemon thread per process (re-created after a fork)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None

    def put(self, row: dict) -> None:
        q = self._ensure()
        with contextlib.suppress(queue.Full):  # a log storm must not grow memory without bound
            q.put_nowait(row)

    def busy(self) -> bool:
        """True while rows handed to this writer are not written (or dropped) yet. No lock, no query."""
        q = self._queue
        return q is not None and self._pid == os.getpid() and q.unfinished_tasks > 0

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued row has been written (or dropped); True when the queue drained in time."""
        q = self._queue
        if q is None or self._pid != os.getpid():
            return True
        done = threading.Event()
        try:
            q.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def call(self, fn, timeout: float = 5.0) -> Any:
        """Run ``fn()`` on the writer's thread and connection after what is queued; its result (None on timeout)."""
        job = _Call(fn)
        try:
            self._ensure().put(job, timeout=timeout)
        except queue.Full:
            return None
        return job.result if job.done.wait(timeout) else None

    def _ensure(self) -> queue.Queue:
        if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                    self._queue = queue.Queue(QUEUE_MAX)
                    self._pid = os.getpid()
                    self._thread = threading.Thread(target=self._run, name="hsi-db-log-writer", daemon=True)
                    self._thread.start()
        return self._queue

    def _run(self) -> None:
        q = self._queue
        while True:
            items = [q.get()]
            while True:  # drain what is already waiting: one INSERT for a burst
                try:
                    items.append(q.get_nowait())
                except queue.Empty:
                    break
            batch = [item for item in items if isinstance(item, dict)]
            _local.active = True
            try:
                if batch:
                    _note_committed(_insert(batch))
                for item in items:
                    if isinstance(item, _Call):
                        with contextlib.suppress(Exception):
                            item.result = item.fn()
                        item.done.set()
            finally:
                _local.active = False
                _close_thread_connection()  # keep no idle connection (lets test databases be dropped)
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()
                q.task_done()


def _insert(rows: list[dict]) -> list:
    from system.models import LogEntry

    with contextlib.suppress(Exception):  # never let logging fail loudly; the console handler has the record
        return LogEntry.objects.bulk_create([LogEntry(**row) for row in rows])
    return []


def _close_thread_connection() -> None:
    from django.db import connections

    with contextlib.suppress(Exception):
        connections["default"].close()


# --- test support: rows committed behind a test's back --------------------------------------------------------
# A test case runs in a transaction that is rolled back, but rows written by the background writer, or by another
# thread (a server thread, a connection pool's worker), are committed on a connection of their own and would be
# seen by every later test on the same database. When tracking is on (tests/conftest.py turns it on), the ids of
# such rows are remembered, and ``discard_committed_rows`` deletes them after the test. Off in production.
_committed_ids: list[int] | None = None
_committed_lock = threading.Lock()


def track_committed_rows() -> None:
    """Remember the id of every row committed outside a test case's transaction (for ``discard_committed_rows``)."""
    global _committed_ids
    with _committed_lock:
        if _committed_ids is None:
            _committed_ids = []


def _note_committed(entries: list) -> None:
    if _committed_ids is not None and entries:
        with _committed_lock:
            _committed_ids.extend(entry.pk for entry in entries if entry.pk is not None)


def has_committed_rows() -> bool:
    """True when rows are queued for the writer or were committed since the last discard (no query: cheap)."""
    return bool(_committed_ids) or _writer.busy()


def discard_committed_rows(timeout: float = 5.0) -> bool:
    """Wait for the writer, then delete (on the writer's own connection, so a test's rollback cannot undo it)
    every tracked row. Ids that could not be deleted (database blocked, timeout) are kept for the next call."""
    global _committed_ids
    _writer.flush(timeout)
    with _committed_lock:
        ids, _committed_ids = _committed_ids or [], ([] if _committed_ids is not None else None)
    if not ids:
        return True

    def delete() -> bool:
        from system.models import LogEntry

        LogEntry.objects.filter(pk__in=ids).delete()
        return True

    if _writer.call(delete, timeout) is True:
        return True
    with _committed_lock:
        if _committed_ids is not None:
            _committed_ids.extend(ids)
    return False


_writer = _Writer()
atexit.register(_writer.flush, 2.0)


def flush(timeout: float = 5.0) -> bool:
    """Wait for the rows queued for the background writer (used by tests and at exit)."""
    return _writer.flush(timeout)


def _in_async_context() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def store(row: dict) -> None:
    """Write one LogEntry row where it cannot be lost with, nor break, the caller's transaction (module doc)."""
    from django.db import connections, transaction

    from system.models import LogEntry

    if _in_async_context():
        _writer.put(row)
        return
    connection = connections["default"]
    blocks = connection.atomic_blocks
    if connection.in_atomic_block and not (blocks and getattr(blocks[0], "_from_testcase", False)):
        _writer.put(row)  # an application transaction, or autocommit off: write on the writer's connection
        return
    if connection.in_atomic_block and connection.needs_rollback:
        return  # a test whose transaction is already doomed
    if not connection.in_atomic_block and not connection.get_autocommit():
        _writer.put(row)
        return
    with _unrecorded(connection):
        if connection.in_atomic_block:
            with transaction.atomic(savepoint=True):
                LogEntry.objects.create(**row)
        else:
            _note_committed([LogEntry.objects.create(**row)])


@contextlib.contextmanager
def _unrecorded(connection):
    """Keep the log write out of ``connection.queries`` captured for the caller (query-count checks, the debug
    toolbar): the row is a side effect of logging, not one of the caller's queries. (``DEBUG`` still records it.)"""
    previous = connection.force_debug_cursor
    connection.force_debug_cursor = False
    try:
        yield
    finally:
        connection.force_debug_cursor = previous


class DatabaseLogHandler(logging.Handler):
    """Stores records at or above ``LOG_DB_MIN_LEVEL`` as LogEntry rows. Never raises, never recurses.

    ``quiet_loggers``: loggers (with their children) whose records are stored only from WARNING, while the console
    still shows their INFO lines (Celery beat's "Sending due task" every few seconds; LOGGING in settings)."""

    def __init__(self, level: int | str = logging.NOTSET, quiet_loggers: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(level)
        self.quiet_loggers = tuple(quiet_loggers)
        self._quiet_children = tuple(f"{name}." for name in self.quiet_loggers)

    def _quiet(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING and (
            record.name in self.quiet_loggers or record.name.startswith(self._quiet_children)
        )

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(_local, "active", False) or record.name.startswith(_IGNORED_PREFIXES):
            return
        _local.active = True
        try:
            if record.levelno < _min_level() or self._quiet(record):
                return
            store(record_to_row(record))
        except Exception:  # noqa: BLE001 - a log call must never break the caller
            pass
        finally:
            _local.active = False


def frontend_log_create(
    *,
    level: str,
    component: str,
    message: str,
    extra: dict | None = None,
    url: str | None = None,
    user_agent: str | None = None,
    request_id: str | None = None,
):
    """Store a log line sent by the web UI (CONTRACT §2.13); ``None`` when below ``LOG_DB_MIN_LEVEL`` (§10)."""
    from system.models import LogEntry, LogSource

    if logging.getLevelName(level) < _min_level():
        return None
    return LogEntry.objects.create(
        level=level,
        component=clean_text(component)[:COMPONENT_MAX],
        message=clean_text(message)[:MESSAGE_MAX],
        extra=json_safe(extra) if extra is not None else None,  # NUL in a key or value: stored as U+FFFD
        url=clean_text(url)[:2000] if url else None,
        user_agent=clean_text(user_agent)[:500] if user_agent else None,
        request_id=clean_text(request_id)[:64] if request_id else None,
        source=LogSource.FRONTEND,
    )
