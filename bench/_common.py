"""Shared machinery of the bench scripts: a scratch PostgreSQL database, Django pointed at it, COPY seeding,
a timing loop and the report table.

Nothing here imports Django at module level: ``setup_django`` must run first, because the project's settings
read the environment once, when they are imported.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_BASE = "postgres://postgres@127.0.0.1:5432"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_KEY_PREFIX = "hsibench"
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


# --- scratch database ----------------------------------------------------------------------------------------


def database_url(base: str, name: str) -> str:
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"not a safe database name: {name!r}")
    return f"{base.rstrip('/')}/{name}"


def _admin_connection(base: str) -> psycopg.Connection:
    return psycopg.connect(database_url(base, "postgres"), autocommit=True)


def database_exists(base: str, name: str) -> bool:
    with _admin_connection(base) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def drop_database(base: str, name: str) -> None:
    database_url(base, name)  # validates the name
    with _admin_connection(base) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def recreate_database(base: str, name: str) -> None:
    """Drop the database (closing its sessions) and create it empty."""
    drop_database(base, name)
    with _admin_connection(base) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def vacuum_analyze(url: str, tables: Iterable[str]) -> float:
    """VACUUM (ANALYZE) the tables, as autovacuum would have by the time a real install holds this much data.

    Sets the visibility map too, so index-only scans behave as in steady state. Returns the seconds taken.
    """
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
    return time.perf_counter() - started


# --- Django --------------------------------------------------------------------------------------------------


def setup_django(
    url: str,
    *,
    redis_url: str = DEFAULT_REDIS_URL,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    extra_env: dict[str, str] | None = None,
) -> None:
    """Point the project's settings at the scratch database and Redis, then ``django.setup()``.

    DEBUG stays off (with DEBUG every query is kept in ``connection.queries`` and timings drift).
    """
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    environment = {
        "DJANGO_SETTINGS_MODULE": "hsi.settings",
        "DATABASE_URL": url,
        "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789abcdef",
        "DEBUG": "false",
        "REDIS_URL": redis_url,
        "HSI_KEY_PREFIX": key_prefix,
        "HSI_DATA_DIR": str(Path(tempfile.gettempdir()) / f"{key_prefix}_data"),
        "ALLOWED_HOSTS": "localhost,127.0.0.1,testserver",
        "LOG_LEVEL": "warning",
        **(extra_env or {}),
    }
    os.environ.update(environment)
    import django

    django.setup()


def migrate() -> float:
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    return time.perf_counter() - started


# --- seeding -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyResult:
    table: str
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def copy_rows(conn: psycopg.Connection, table: str, rows: Iterable[dict]) -> CopyResult:
    """COPY rows streamed from an iterable of dicts (memory stays flat whatever the row count).

    The first row's keys name the columns; every row must have the same keys in the same order.
    """
    iterator = iter(rows)
    started = time.perf_counter()
    first = next(iterator, None)
    if first is None:
        return CopyResult(table, 0, time.perf_counter() - started)
    columns = tuple(first)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    count = 1
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        copy.write_row(tuple(first.values()))
        for row in iterator:
            copy.write_row(tuple(row.values()))
            count += 1
    return CopyResult(table, count, time.perf_counter() - started)


def reset_identity(conn: psycopg.Connection, table: str, column: str = "id") -> None:
    """Move the id sequence past the explicit ids that COPY wrote."""
    conn.execute(
        sql.SQL(
            "SELECT setval(pg_get_serial_sequence(%s, %s), COALESCE((SELECT max({}) FROM {}), 0) + 1, false)"
        ).format(sql.Identifier(column), sql.Identifier(table)),
        (table, column),
    )


# --- timing --------------------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); ``sorted_values`` must be sorted."""
    if not sorted_values:
        return float("nan")
    position = (len(sorted_values) - 1) * fraction
    lower = int(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * (position - lower)


@dataclass(frozen=True)
class Timing:
    samples_ms: tuple[float, ...]  # sorted
    elapsed_seconds: float
    cpu_seconds: float = 0.0  # CPU time of this process (not of the database server) spent in the calls

    @property
    def count(self) -> int:
        return len(self.samples_ms)

    @property
    def p50_ms(self) -> float:
        return percentile(self.samples_ms, 0.50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.samples_ms, 0.99)

    @property
    def requests_per_second(self) -> float:
        return self.count / self.elapsed_seconds if self.elapsed_seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        """Mean CPU ms of this process per call: the Python cost, whatever the load on the machine."""
        return self.cpu_seconds * 1000 / self.count if self.count else float("nan")


def measure(
    calls: dict[str, Callable[[], object]],
    *,
    warmup: int = 20,
    min_requests: int = 300,
    min_seconds: float = 3.0,
    rounds: int = 10,
    max_requests: int = 50000,
) -> dict[str, Timing]:
    """Time several alternatives of the same work, interleaved so that they share whatever else the machine is
    doing: ``warmup`` untimed calls each, then ``rounds`` rounds in which every alternative runs for its share
    of ``min_requests`` calls and ``min_seconds`` (both minimums, ``max_requests`` at most in total).

    Sequential, one caller: requests/s is calls / time spent in them. The garbage collector runs before the
    timed loop and stays enabled during it (a real server has it on).
    """
    for call in calls.values():
        for _ in range(warmup):
            call()
    gc.collect()
    clock = time.perf_counter_ns
    samples: dict[str, list[float]] = {name: [] for name in calls}
    spent: dict[str, int] = dict.fromkeys(calls, 0)
    cpu: dict[str, int] = dict.fromkeys(calls, 0)
    per_round_requests = max(1, -(-min_requests // rounds))
    per_round_ns = int(min_seconds * 1e9 / rounds)
    per_round_max = max(per_round_requests, max_requests // rounds)
    for _ in range(rounds):
        for name, call in calls.items():
            times = samples[name]
            count, started, cpu_started = 0, clock(), time.process_time_ns()
            deadline = started + per_round_ns
            while count < per_round_max:
                before = clock()
                call()
                after = clock()
                times.append((after - before) / 1e6)
                count += 1
                if count >= per_round_requests and after >= deadline:
                    break
            spent[name] += clock() - started
            cpu[name] += time.process_time_ns() - cpu_started
    return {name: Timing(tuple(sorted(samples[name])), spent[name] / 1e9, cpu[name] / 1e9) for name in calls}


def load_average() -> str:
    try:
        return "/".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def sql_call(conn: psycopg.Connection, statements: Sequence[tuple[str, tuple]]) -> Callable[[], None]:
    """A call running the statements over ``conn`` and fetching every row (the raw-SQL side of a comparison)."""

    def call() -> None:
        for statement, args in statements:
            conn.execute(statement, args).fetchall()

    return call


def throughput_ratio(ours: Timing | None, reference: Timing | None) -> float | None:
    if ours is None or reference is None or not reference.requests_per_second:
        return None
    return ours.requests_per_second / reference.requests_per_second


# --- report --------------------------------------------------------------------------------------------------


def machine_busy_seconds() -> float | None:
    """CPU seconds every process on the machine has used (all cores; ``/proc/stat`` without idle and iowait), or
    None off Linux. The difference over a run, next to the bench's own CPU time, shows what the other processes
    (PostgreSQL, Redis, a fake server) took."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal; guest is inside user
    return busy / os.sysconf("SC_CLK_TCK")


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def environment_lines(url: str) -> list[str]:
    """Versions, the settings that change timings, the database, the key prefix and the load right now."""
    import django
    from django.conf import settings

    with psycopg.connect(url) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
    database = settings.DATABASES["default"]
    return [
        f"Python {platform.python_version()}, Django {django.get_version()}, psycopg {psycopg.__version__}, "
        f"PostgreSQL {server}, {cpu_count()} CPU(s)",
        f"Settings: DEBUG={settings.DEBUG}, API_KEY_ENABLED={settings.API_KEY_ENABLED}, "
        f"THROTTLE_ENABLED={settings.THROTTLE_ENABLED}, CONN_MAX_AGE={database.get('CONN_MAX_AGE')}, "
        f"CONN_HEALTH_CHECKS={database.get('CONN_HEALTH_CHECKS')}, cache={settings.CACHES['default']['BACKEND']}",
        f"Database {database['NAME']}, Redis key prefix {settings.HSI_KEY_PREFIX}",
        f"Load average (1/5/15 min): {load_average()}",
    ]


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:,.{digits}f}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, out=None) -> None:
    """A plain-text table; the first column is left-aligned, the others right-aligned."""
    out = out or sys.stdout
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    print(line(headers), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in rows:
        print(line(row), file=out)


def camera_rows(cameras: Iterable[tuple], now: dt.datetime) -> Iterator[dict]:
    """Camera rows for COPY: one per ``(id, name, …)`` tuple, online and enabled."""
    for camera_id, name, *_ in cameras:
        yield {
            "id": camera_id,
            "name": name,
            "folder_path": f"/export/foscam/{camera_id}",
            "status": "online",
            "enabled": True,
            "status_changed_at": now,
            "created_at": now,
            "updated_at": now,
        }
