"""Search performance: ``GET /api/search`` over 100,000 events, with and without the GIN index.

Seeds a scratch PostgreSQL database (``hsi_bench_search``) with 5 cameras and 100,000 events (COPY; the
``search_vector`` trigger fires for every row) whose summaries, reasoning and notes are built from a varied
vocabulary (subjects, actions, places, times, details; ~5 % with notes, 1 % soft-deleted), then times several
queries through the real view (``django.test.Client``: URL routing, middleware, validation, the selector and the
JSON rendering, in-process), first with the GIN index ``events_search_vector_gin``, then with it dropped (inside a
the same run; the index is rebuilt afterwards). The matching-row count
of each query is printed, since ranking cost grows with it.

Targets (search issue): p95 <= 20 ms with the index; the index >= 10x faster (p95) than without it.
The script always exits 0 (it is a report) and prints PASS/FAIL per target.

    .venv/bin/python -m bench.search           # drop, create, migrate, seed (~1 min), measure (~1 min)
    .venv/bin/python -m bench.search --keep    # reuse the seeded database
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python bench/search.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench import _common

DATABASE_NAME = "hsi_bench_search"
RANDOM_SEED = 20241204
TARGET_P95_MS = 20.0
TARGET_RATIO = 10.0
INDEXES = ("events_search_vector_gin",)

CAMERAS = (
    ("front_door", "Front Door", 0.32),
    ("driveway", "Driveway", 0.26),
    ("back_yard", "Back Yard", 0.18),
    ("garage", "Garage", 0.14),
    ("side_gate", "Side Gate", 0.10),
)
# subject, object class, weight
SUBJECTS = (
    ("A person", "person", 14),
    ("A delivery driver", "person", 6),
    ("A courier", "person", 3),
    ("A neighbour", "person", 4),
    ("A jogger", "person", 2),
    ("A child", "person", 2),
    ("A mail carrier", "person", 3),
    ("A gardener", "person", 1),
    ("An unknown man", "person", 3),
    ("An unknown woman", "person", 2),
    ("A cat", "cat", 8),
    ("A dog", "dog", 7),
    ("A fox", "fox", 2),
    ("A raccoon", "raccoon", 2),
    ("A deer", "deer", 1),
    ("A car", "car", 12),
    ("A truck", "truck", 3),
    ("A van", "truck", 3),
    ("A cyclist", "bicycle", 3),
    ("A motorbike", "motorcycle", 1),
)
ACTIONS = (
    "walking past",
    "standing at",
    "approaching",
    "leaving",
    "loitering near",
    "running across",
    "stopping at",
    "checking",
    "dropping a package at",
    "picking up a parcel from",
    "sniffing around",
    "crossing",
    "knocking at",
    "waiting by",
    "looking into",
    "turning around at",
)
PLACES = (
    "the front door",
    "the driveway",
    "the garage",
    "the back gate",
    "the porch",
    "the garden",
    "the fence",
    "the side path",
    "the mailbox",
    "the window",
    "the patio",
    "the bins",
)
TIMES = ("at night", "in the early morning", "in the afternoon", "after sunset", "around midnight", "at dawn", "")
DETAILS = (  # ~60 % of summaries have none; each detail ~2 %
    *([""] * 30),
    " briefly",
    " for several minutes",
    " repeatedly",
    " carrying a bag",
    " carrying a ladder",
    " wearing a hood",
    " wearing a helmet",
    " with a flashlight",
    " holding a phone",
    " with an umbrella",
    " pushing a stroller",
    " pulling a suitcase",
    " taking photos",
    " talking loudly",
    " with a torch",
    " wearing gloves",
    " wearing a high-visibility vest",
    " with a backpack",
    " pushing a bicycle",
    " smoking",
)
REASONS = (
    "Activity at this hour is typical for this camera.",
    "Activity at this hour is unusual for this camera.",
    "The subject did not interact with the property.",
    "The subject stayed close to the entrance.",
    "Movement pattern matches a routine visit.",
    "No known entity matched; behaviour looks deliberate.",
    "Lighting was poor; confidence is reduced.",
    "Several frames show the subject facing the camera.",
)
NOTES = (
    "Checked the footage: it was the gardener.",
    "False alarm, wind moved the branches.",
    "Reported to the police.",
    "Neighbour collecting a parcel for us.",
    "Expected delivery.",
)
LEVELS = (("low", (0, 29), 56), ("medium", (30, 59), 24), ("high", (60, 84), 14), ("critical", (85, 100), 6))
SCENARIOS = (  # name, query parameters, counted in the targets
    ("single word", {"q": "raccoon"}, True),
    ("phrase", {"q": '"unknown woman"'}, True),
    ("OR", {"q": "fox OR deer"}, True),
    ("NOT", {"q": "flashlight -cat"}, True),
    ("AND + filter", {"q": "umbrella garden", "camera_id": "back_yard"}, True),
    ("stemmed", {"q": "loiters hood"}, True),
    ("common word (info)", {"q": "person"}, False),
)


def event_rows(rng: random.Random, count: int, now: dt.datetime) -> Iterator[dict]:
    camera_weights = [c[2] for c in CAMERAS]
    subject_weights = [s[2] for s in SUBJECTS]
    span = dt.timedelta(days=60).total_seconds()
    starts = sorted(now - dt.timedelta(seconds=rng.uniform(0, span)) for _ in range(count))
    for index, started_at in enumerate(starts):
        camera_id, camera_name, _ = rng.choices(CAMERAS, camera_weights)[0]
        subject, kind, _ = rng.choices(SUBJECTS, subject_weights)[0]
        classes = {kind} | ({"car"} if rng.random() < 0.1 else set())
        when = rng.choice(TIMES)
        summary = f"{subject} {rng.choice(ACTIONS)} {rng.choice(PLACES)}{rng.choice(DETAILS)}"
        summary += f" {when}." if when else "."
        level, band, _ = rng.choices(LEVELS, [lv[2] for lv in LEVELS])[0]
        reasoning = (
            f"{subject} seen by the {camera_name} camera at {started_at:%H:%M}. "
            + " ".join(rng.sample(REASONS, 2))
            + f" Detected classes: {', '.join(sorted(classes))}."
        )
        ended_at = started_at + dt.timedelta(seconds=rng.uniform(0, 90))
        deleted = rng.random() < 0.01
        yield {
            "id": index + 1,
            "camera_id": camera_id,
            "started_at": started_at,
            "ended_at": ended_at,
            "risk_score": rng.randint(*band),
            "risk_level": level,
            "summary": summary,
            "reasoning": reasoning,
            "recommended_action": "Review the footage" if level in ("high", "critical") else "No action needed",
            "analysis_status": rng.choices(("llm", "fallback", "rules"), (85, 8, 7))[0],
            "is_fast_path": False,
            "object_types": ",".join(sorted(classes)),
            "detection_count": rng.randint(1, 12),
            "anomaly_score": None,
            "suppressed": False,
            "reviewed": rng.random() < 0.4,
            "reviewed_at": None,
            "flagged": rng.random() < 0.03,
            "notes": rng.choice(NOTES) if rng.random() < 0.05 else None,
            "deleted_at": ended_at + dt.timedelta(hours=1) if deleted else None,
            "version": 1,
            "created_at": ended_at,
            "updated_at": ended_at,
        }


def seed(url: str, events: int) -> None:
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(url) as conn:
        for table, rows in (
            ("cameras_camera", _common.camera_rows(CAMERAS, now)),
            ("events_event", event_rows(random.Random(RANDOM_SEED), events, now)),
        ):
            result = _common.copy_rows(conn, table, rows)
            conn.commit()
            print(f"  COPY {table:<16} {result.rows:>9,} rows  {result.seconds:6.1f} s", flush=True)
        _common.reset_identity(conn, "events_event")
        conn.commit()
    print(f"  VACUUM (ANALYZE) {_common.vacuum_analyze(url, ('cameras_camera', 'events_event')):.1f} s")


def match_counts(url: str) -> dict[str, int]:
    from events.search import parse_query

    counts = {}
    with psycopg.connect(url) as conn:
        for name, params, _ in SCENARIOS:
            text = parse_query(params["q"]).websearch_text()
            where, args = "", [text]
            if "camera_id" in params:
                where, args = " AND camera_id = %s", [text, params["camera_id"]]
            statement = (
                "SELECT count(*) FROM events_event WHERE deleted_at IS NULL"
                f" AND search_vector @@ websearch_to_tsquery('english', %s){where}"
            )
            counts[name] = conn.execute(statement, args).fetchone()[0]
    return counts


def measure_all(args: argparse.Namespace, *, with_floor: bool = False) -> dict[str, _common.Timing]:
    from django.db import close_old_connections
    from django.test import Client

    client = Client()
    calls = {}
    if with_floor:  # the cheapest request through the same client and middleware

        def floor():
            close_old_connections()
            client.get("/health")

        calls["floor"] = floor
    for name, params, _ in SCENARIOS:

        def call(params=params):
            close_old_connections()
            response = client.get("/api/search", params)
            assert response.status_code == 200, response.content[:300]

        calls[name] = call
    return _common.measure(
        calls, warmup=args.warmup, min_requests=args.requests, min_seconds=args.seconds, rounds=args.rounds
    )


def without_indexes(args: argparse.Namespace, url: str) -> dict[str, _common.Timing]:
    """The same calls with the search index dropped; it is rebuilt afterwards (also after a failure)."""
    with psycopg.connect(url, autocommit=True) as conn:
        definitions = [
            conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (name,)).fetchone()[0]
            for name in INDEXES
        ]
        for name in INDEXES:
            conn.execute(f"DROP INDEX {name}")
        try:
            return measure_all(args)
        finally:
            for definition in definitions:
                conn.execute(definition)


def explain(params: dict) -> str:
    from django.db import connection

    from events.search import full_text_matches, parse_query

    sql, sql_params = full_text_matches(parse_query(params["q"])).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", sql_params)
        return "\n".join("      " + row[0] for row in cursor.fetchall())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="reuse the seeded database")
    parser.add_argument("--db-base", default=_common.DEFAULT_DATABASE_BASE)
    parser.add_argument("--db-name", default=DATABASE_NAME)
    parser.add_argument("--redis-url", default=_common.DEFAULT_REDIS_URL)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="minimum timed requests per query and side")
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum seconds per query and side")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="print the plan of each query's match step")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = _common.database_url(args.db_base, args.db_name)
    reuse = args.keep and _common.database_exists(args.db_base, args.db_name)
    if not reuse:
        print(f"Creating scratch database {args.db_name} ...")
        _common.recreate_database(args.db_base, args.db_name)
    _common.setup_django(
        url,
        redis_url=args.redis_url,
        key_prefix=f"{_common.DEFAULT_KEY_PREFIX}_{args.db_name}",
        extra_env={"THROTTLE_ENABLED": "false", "API_KEY_ENABLED": "false"},
    )
    print(f"migrate: {_common.migrate():.1f} s")
    with psycopg.connect(url) as conn:
        seeded = conn.execute("SELECT count(*) FROM events_event").fetchone()[0]
    if not seeded:
        print(f"Seeding {args.events:,} events ...")
        seed(url, args.events)
        with psycopg.connect(url) as conn:
            seeded = conn.execute("SELECT count(*) FROM events_event").fetchone()[0]
    print("\n".join(_common.environment_lines(url)))
    print(f"Events: {seeded:,}")
    counts = match_counts(url)
    if args.explain:
        for name, params, _ in SCENARIOS:
            print(f"  {name}: {params}\n{explain(params)}")
    print("\nMeasuring with the GIN index ...", flush=True)
    indexed = measure_all(args, with_floor=True)
    print("Measuring without it ...", flush=True)
    plain = without_indexes(args, url)
    rows, passed = [], True
    for name, params, counted in SCENARIOS:
        with_index, without = indexed[name], plain[name]
        ratio = without.samples_ms and _common.percentile(without.samples_ms, 0.95) / _common.percentile(
            with_index.samples_ms, 0.95
        )
        p95 = _common.percentile(with_index.samples_ms, 0.95)
        ok = p95 <= TARGET_P95_MS and ratio >= TARGET_RATIO
        if counted:
            passed &= ok
        query = " ".join(f"{k}={v}" for k, v in params.items())
        rows.append(
            [
                f"{name}: {query}",
                f"{counts[name]:,}",
                _common.fmt(with_index.p50_ms),
                _common.fmt(p95),
                _common.fmt(without.p50_ms),
                _common.fmt(_common.percentile(without.samples_ms, 0.95)),
                _common.fmt(ratio, 1) + "x",
                _common.verdict(ok) if counted else "-",
            ]
        )
    print()
    _common.print_table(
        ["query", "matches", "GIN p50 ms", "GIN p95 ms", "no-index p50", "no-index p95", "p95 ratio", "target"], rows
    )
    floor = indexed["floor"]
    print(
        f"\nFramework floor, GET /health through the same path: p50 {floor.p50_ms:.2f} ms, p95 "
        f"{_common.percentile(floor.samples_ms, 0.95):.2f} ms"
    )
    print(
        f"Targets: p95 <= {TARGET_P95_MS:g} ms with the index, >= {TARGET_RATIO:g}x faster than without: "
        f"{_common.verdict(passed)}"
    )
    print(f"Load average at the end (1/5/15 min): {_common.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
