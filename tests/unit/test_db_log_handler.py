"""The database log handler (CONTRACT §1.5, §7 ``LOG_DB_MIN_LEVEL``): what a log call stores, what it ignores, and
that it never breaks nor loses with the caller's transaction."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading

import pytest
from django.db import IntegrityError, connection, connections, transaction

from hsi.middleware import current_request_id
from system import logging as db_logging
from system.models import AuditLog, LogEntry
from tests.factories import AuditLogFactory

log = logging.getLogger("hsi.tests.handler")


class Unserialisable:
    def __str__(self) -> str:
        return "<unserialisable>"


def rows(component: str = "hsi.tests.handler"):
    return list(LogEntry.objects.filter(component=component).order_by("id"))


@pytest.mark.django_db
def test_a_log_call_becomes_a_row_with_ids_from_extra_and_the_rest_in_extra():
    token = current_request_id.set("req-42")
    try:
        log.error(
            "analysis of batch %s failed",
            "b1",
            extra={
                "camera_id": "front_door",
                "event_id": 42,
                "detection_id": "913",
                "duration_ms": 12.6,
                "when": dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
                "thing": Unserialisable(),
                "nul": "a\x00b",
            },
        )
    finally:
        current_request_id.reset(token)

    (entry,) = rows()
    assert (entry.level, entry.message, entry.source) == ("ERROR", "analysis of batch b1 failed", "backend")
    assert (entry.camera_id, entry.event_id, entry.detection_id, entry.duration_ms) == ("front_door", 42, 913, 13)
    assert entry.request_id == "req-42"
    assert entry.extra == {"when": "2024-05-01 00:00:00+00:00", "thing": "<unserialisable>", "nul": "a\ufffdb"}


@pytest.mark.django_db
def test_long_names_and_messages_are_truncated_and_tracebacks_kept():
    long_name = "hsi.tests." + "x" * 200
    try:
        raise ValueError("bad value")
    except ValueError:
        logging.getLogger(long_name).exception("m" * 20000)

    (entry,) = rows(long_name[:100])
    assert len(entry.component) == 100 and len(entry.message) == 10000
    assert "ValueError: bad value" in entry.extra["exception"]


@pytest.mark.django_db
def test_records_below_the_minimum_level_and_database_records_are_not_stored(settings):
    settings.LOG_DB_MIN_LEVEL = "WARNING"

    log.info("routine")
    log.debug("chatter")
    logging.getLogger("django.db.backends").error("(0.001) SELECT 1")
    log.warning("kept")

    assert [entry.message for entry in rows()] == ["kept"]
    assert not LogEntry.objects.filter(component__startswith="django.db.backends").exists()


@pytest.mark.django_db
def test_celery_beats_per_tick_lines_are_not_stored_but_its_warnings_are(caplog):
    beat = logging.getLogger("celery.beat")

    with caplog.at_level(logging.INFO, logger="celery.beat"):
        beat.info("Scheduler: Sending due task system.heartbeat (system.heartbeat)")
        beat.warning("beat: lost the schedule file")

    assert [r.levelname for r in caplog.records] == ["INFO", "WARNING"]  # both still reach the console
    assert [entry.message for entry in rows("celery.beat")] == ["beat: lost the schedule file"]


@pytest.mark.django_db
def test_a_failing_log_write_does_not_break_the_callers_transaction():
    with connection.cursor() as cursor:  # a real refusal by the database (undone with the test's transaction)
        cursor.execute("ALTER TABLE system_logentry ADD CONSTRAINT refuse_boom CHECK (message <> 'boom')")

    with transaction.atomic():
        AuditLogFactory(action="kept")
        log.error("boom")  # the INSERT fails, inside its own savepoint
        log.error("too long for an int", extra={"duration_ms": 2**40})  # kept in extra instead
        AuditLogFactory(action="also_kept")

    assert AuditLog.objects.filter(action__in=["kept", "also_kept"]).count() == 2
    (entry,) = rows()
    assert entry.duration_ms is None and entry.extra == {"duration_ms": 2**40}


@pytest.mark.django_db
def test_text_postgresql_refuses_is_stored_with_replacement_characters():
    # (a lone surrogate stays out of the message: pytest-xdist itself cannot report such captured output)
    log.warning("a \x00 NUL", extra={"note": "lone \ud800 surrogate"})

    (entry,) = rows()
    assert entry.message == "a \ufffd NUL" and entry.extra == {"note": "lone ? surrogate"}


def test_logging_without_database_access_never_raises():
    log.error("the database is not reachable from here")  # pytest-django blocks database access in this test


@pytest.mark.django_db(transaction=True)
def test_an_error_logged_inside_a_transaction_that_rolls_back_is_still_stored():
    with pytest.raises(RuntimeError), transaction.atomic():
        AuditLogFactory(action="rolled_back")
        log.error("about to fail", extra={"event_id": 7})
        raise RuntimeError("boom")

    with transaction.atomic():  # a transaction PostgreSQL has already aborted
        try:
            AuditLogFactory(id=AuditLogFactory().id)
        except IntegrityError:
            log.error("duplicate audit row")
        transaction.set_rollback(True)

    async def from_async_code():
        log.warning("from a websocket consumer")

    asyncio.run(from_async_code())

    assert db_logging.flush(timeout=5)
    assert not AuditLog.objects.filter(action="rolled_back").exists()
    assert sorted(entry.message for entry in rows()) == [
        "about to fail",
        "duplicate audit row",
        "from a websocket consumer",
    ]
    assert [entry.event_id for entry in rows() if entry.message == "about to fail"] == [7]


@pytest.mark.django_db
def test_the_log_write_is_not_counted_as_one_of_the_callers_queries(django_assert_num_queries):
    with django_assert_num_queries(1):
        AuditLogFactory(action="counted")
        log.warning("a warning on the way")

    assert [entry.message for entry in rows()] == ["a warning on the way"]


@pytest.mark.django_db
def test_rows_committed_behind_the_test_transaction_are_deleted_after_the_test():
    # Async code's rows (the background writer) and another thread's commit on their own connection: the test's
    # rollback would not undo them, so the conftest fixture discards them (no later test must see them).
    async def from_async_code():
        log.warning("from async code")

    def from_a_thread():
        log.warning("from a thread")
        connections.close_all()

    asyncio.run(from_async_code())
    thread = threading.Thread(target=from_a_thread)
    thread.start()
    thread.join()
    assert db_logging.flush(timeout=5)
    assert sorted(entry.message for entry in rows()) == ["from a thread", "from async code"]
    assert db_logging.has_committed_rows()

    assert db_logging.discard_committed_rows()

    assert rows() == [] and not db_logging.has_committed_rows()
