"""System reads: readiness and dependency checks."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

logger = logging.getLogger("hsi.system")

_migrations_state: dict[str, str] = {}


def database_check() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.warning("Database readiness check failed", exc_info=True)
        return "error"
    return "ok"


def redis_check() -> str:
    if not settings.REDIS_URL:
        return "disabled"
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
    except Exception:  # noqa: BLE001
        logger.warning("Redis readiness check failed")
        return "error"
    return "ok"


def migrations_check() -> str:
    """Unapplied migrations are looked for once per process (CONTRACT §2.1)."""
    if "result" not in _migrations_state:
        try:
            executor = MigrationExecutor(connection)
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except Exception:  # noqa: BLE001
            return "error"
        _migrations_state["result"] = "ok" if not plan else "error"
    return _migrations_state["result"]


def readiness_checks() -> dict[str, str]:
    database = database_check()
    return {
        "database": database,
        "redis": redis_check(),
        "migrations": migrations_check() if database == "ok" else "error",
    }
