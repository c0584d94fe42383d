"""Migrations: models and migrations agree, and ``migrate`` builds a working schema from nothing (CONTRACT §1.7, §8.1).

The from-nothing runs use real processes (``manage.py migrate``) against a scratch PostgreSQL database and a
scratch SQLite file, exactly as an operator would.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command

from alerts.models import NotificationPreference

MANAGE = Path(settings.BASE_DIR) / "manage.py"


@pytest.mark.django_db
def test_models_and_migrations_agree():
    out = StringIO()

    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exit_:
        pytest.fail(f"makemigrations --check found model changes without a migration:\n{out.getvalue()} ({exit_})")


@pytest.mark.django_db
def test_migrate_created_the_global_notification_preference():
    row = NotificationPreference.objects.get(camera__isnull=True)

    assert row.enabled is True
    assert row.severities == ["medium", "high", "critical"]
    assert row.min_risk_score == 0


def _migrate(env: dict, *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, str(MANAGE), "migrate", "--no-input", *args],
        env=env,
        cwd=str(MANAGE.parent),
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def _base_env(tmp_path) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_URL", "REDIS_URL"))}
    env.pop("CELERY_BROKER_URL", None)
    env.update(
        DJANGO_SETTINGS_MODULE="hsi.settings",
        SECRET_KEY="migration-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        HSI_DATA_DIR=str(tmp_path / "data"),
        FOSCAM_BASE_PATH=str(tmp_path / "foscam"),
        LOG_LEVEL="warning",
    )
    return env


@pytest.fixture
def scratch_postgres():
    """An empty database on the test server, dropped afterwards; yields its URL."""
    db = settings.DATABASES["default"]
    server = {
        "host": db.get("HOST") or "127.0.0.1",
        "port": int(db.get("PORT") or 5432),
        "user": db.get("USER") or "postgres",
        "password": db.get("PASSWORD") or None,
        "dbname": "postgres",
    }
    name = f"hsi_migrate_check_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(**server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    credentials = server["user"] + (f":{server['password']}" if server["password"] else "")
    try:
        yield name, f"postgres://{credentials}@{server['host']}:{server['port']}/{name}", server
    finally:
        with psycopg.connect(**server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.timeout(300)  # two real `migrate` processes; slow under a loaded parallel run
def test_migrate_builds_the_postgresql_schema_from_an_empty_database(tmp_path, scratch_postgres):
    name, url, server = scratch_postgres
    env = {**_base_env(tmp_path), "DATABASE_URL": url}

    _migrate(env)

    with psycopg.connect(**{**server, "dbname": name}) as conn:

        def scalar(sql, params=()):
            return conn.execute(sql, params).fetchone()[0]

        assert scalar("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'") == 1
        assert scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'events_object_types_trgm'") == 1
        assert scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'batch_one_open_per_camera'") == 1
        triggers = {row[0] for row in conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
        assert {"events_event_search_vector_trg", "cameras_camera_refresh_event_search_trg"} <= triggers
        assert scalar("SELECT count(*) FROM alerts_notificationpreference WHERE camera_id IS NULL") == 1
        # post_migrate gave the foreign keys their database ON DELETE actions
        actions = dict(
            conn.execute(
                """
                SELECT cl.relname || '.' || a.attname, c.confdeltype FROM pg_constraint c
                JOIN pg_class cl ON cl.oid = c.conrelid
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
                WHERE c.contype = 'f' AND cl.relname IN ('events_detection', 'alerts_alert')
                """
            ).fetchall()
        )
        assert actions["events_detection.camera_id"] == "c"
        assert actions["events_detection.batch_id"] == "n"
        assert actions["alerts_alert.rule_id"] == "n"

    second = _migrate(env)
    assert "No migrations to apply" in second
    with psycopg.connect(**{**server, "dbname": name}) as conn:
        assert conn.execute("SELECT count(*) FROM alerts_notificationpreference").fetchone()[0] == 1


@pytest.mark.timeout(300)
def test_migrate_builds_the_sqlite_schema_in_the_data_directory(tmp_path):
    env = _base_env(tmp_path)

    _migrate(env)

    database = tmp_path / "data" / "hsi.sqlite3"
    assert database.exists()
    conn = sqlite3.connect(database)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"cameras_camera", "events_event", "alerts_alert", "pipeline_batch", "system_auditlog"} <= tables
        columns = {row[1] for row in conn.execute("PRAGMA table_info(events_event)")}
        assert "search_vector" not in columns  # PostgreSQL only (§1.7)
        index_sql = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'batch_one_open_per_camera'"
        ).fetchone()[0]
        assert "UNIQUE" in index_sql.upper() and "WHERE" in index_sql.upper()
        assert conn.execute(
            "SELECT count(*) FROM alerts_notificationpreference WHERE camera_id IS NULL"
        ).fetchone() == (1,)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    finally:
        conn.close()
