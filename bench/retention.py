"""Retention at scale (CONTRACT §4.13): ``retention_run`` over 1,000,000 old detections, every statement timed.

Seeds a scratch database with COPY: 3 cameras; ``--old-events`` (100,000) events 31–60 days old with ten
detections each (1,000,000 old detections by default), their links, analysis audits, a batch and an ingested file
each, alerts with a delivery on 5 %, old unknown entities whose primary detection is an old detection, and log,
GPU, audit and dead-letter rows past their retention; plus ``--young-events`` (10,000) recent events with their
detections, which must survive. Then one ``retention_run`` with ``connection.execute_wrapper`` timing every
statement, and a report: total time, rows deleted per second, statements, max and p95 statement time (target:
every statement under 500 ms), the slowest statement kinds, and what survived.

```sh
.venv/bin/python -m bench.retention                  # drop + create hsi_bench_retention, migrate, seed, run
.venv/bin/python -m bench.retention --old-events 10000 --db-name hsi_bench_retention_small
```
Always exits 0 (a report, not a test).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import psycopg

from bench import _common

DATABASE_NAME = "hsi_bench_retention"
RANDOM_SEED = 4013
CAMERAS = ("front_door", "garage", "backyard")
DETECTIONS_PER_EVENT = 10
TARGET_MS = 500.0
SEEDED_TABLES = (
    "cameras_camera",
    "pipeline_ingestedfile",
    "pipeline_batch",
    "events_event",
    "events_detection",
    "events_eventdetection",
    "events_eventaudit",
    "events_entity",
    "alerts_alertrule",
    "alerts_alert",
    "alerts_notificationchannel",
    "alerts_delivery",
    "system_logentry",
    "system_gpustat",
    "system_auditlog",
    "pipeline_failedjob",
)
ID_TABLES = tuple(t for t in SEEDED_TABLES if t not in ("cameras_camera", "pipeline_batch", "events_entity"))
ID_TABLES = tuple(t for t in ID_TABLES if t not in ("alerts_alertrule", "alerts_alert", "alerts_notificationchannel"))


class Plan:
    """Ids and times of everything seeded, derived from the arguments (no randomness in the ids)."""

    def __init__(self, args: argparse.Namespace, now: dt.datetime):
        self.now = now
        self.old_events = args.old_events
        self.young_events = args.young_events
        self.events = self.old_events + self.young_events
        self.rng = random.Random(RANDOM_SEED)
        self.batch_ids = [uuid.UUID(int=self.rng.getrandbits(128), version=4) for _ in range(self.events)]

    def is_old(self, event: int) -> bool:
        return event < self.old_events

    def started_at(self, event: int) -> dt.datetime:
        """Old events spread over days 31–60 back, young ones over the last 20 days; ids in time order."""
        if self.is_old(event):
            fraction = event / max(1, self.old_events)
            return self.now - dt.timedelta(days=60 - 29 * fraction)
        fraction = (event - self.old_events) / max(1, self.young_events)
        return self.now - dt.timedelta(days=20 - 19.9 * fraction)

    def camera(self, event: int) -> str:
        return CAMERAS[event % len(CAMERAS)]


def _camera_rows(plan: Plan) -> Iterator[dict]:
    created = plan.now - dt.timedelta(days=90)
    for camera_id in CAMERAS:
        yield {
            "id": camera_id,
            "name": camera_id.replace("_", " ").title(),
            "folder_path": camera_id,
            "status": "online",
            "enabled": True,
            "status_changed_at": created,
            "created_at": created,
            "updated_at": created,
        }


def _file_rows(plan: Plan) -> Iterator[dict]:
    for event in range(plan.events):
        started = plan.started_at(event)
        yield {
            "id": event + 1,
            "camera_id": plan.camera(event),
            "path": f"/export/foscam/{plan.camera(event)}/img_{event}.jpg",
            "sha256": f"{event + 1:064x}",
            "size_bytes": 204800,
            "media_type": "image",
            "mime_type": "image/jpeg",
            "source": "watcher",
            "status": "processed",
            "reject_reason": None,
            "detection_count": DETECTIONS_PER_EVENT,
            "received_at": started,
            "processed_at": started,
            "error": "",
        }


def _batch_rows(plan: Plan) -> Iterator[dict]:
    for event in range(plan.events):
        started = plan.started_at(event)
        closed = started + dt.timedelta(seconds=40)
        yield {
            "id": plan.batch_ids[event],
            "camera_id": plan.camera(event),
            "status": "done",
            "is_fast_path": False,
            "opened_at": started,
            "last_detection_at": started + dt.timedelta(seconds=9),
            "closed_at": closed,
            "close_reason": "idle",
            "detection_count": DETECTIONS_PER_EVENT,
            "analysis_attempts": 1,
            "error": "",
            "created_at": started,
            "updated_at": closed,
        }


def _event_rows(plan: Plan) -> Iterator[dict]:
    for event in range(plan.events):
        started = plan.started_at(event)
        yield {
            "id": event + 1,
            "camera_id": plan.camera(event),
            "batch_id": plan.batch_ids[event],
            "started_at": started,
            "ended_at": started + dt.timedelta(seconds=9),
            "risk_score": 20,
            "risk_level": "low",
            "summary": "Person walked past",
            "reasoning": "A person walked past the camera.",
            "recommended_action": "",
            "analysis_status": "rules",
            "is_fast_path": False,
            "object_types": "person",
            "detection_count": DETECTIONS_PER_EVENT,
            "anomaly_score": None,
            "suppressed": False,
            "reviewed": False,
            "reviewed_at": None,
            "flagged": False,
            "notes": None,
            "snooze_until": None,
            "deleted_at": None,
            "version": 1,
            "created_at": started,
            "updated_at": started,
        }


def _detection_id(event: int, index: int) -> int:
    return event * DETECTIONS_PER_EVENT + index + 1


def _detection_rows(plan: Plan) -> Iterator[dict]:
    for event in range(plan.events):
        started = plan.started_at(event)
        for index in range(DETECTIONS_PER_EVENT):
            detected = started + dt.timedelta(seconds=index)
            yield {
                "id": _detection_id(event, index),
                "camera_id": plan.camera(event),
                "source_file_id": event + 1,
                "batch_id": plan.batch_ids[event],
                "file_path": f"/export/foscam/{plan.camera(event)}/img_{event}.jpg",
                "file_type": "image/jpeg",
                "media_type": "image",
                "detected_at": detected,
                "object_type": "person",
                "confidence": 0.5 + index / 25,
                "bbox_x": 10,
                "bbox_y": 10,
                "bbox_width": 100,
                "bbox_height": 200,
                "zone_ids": "[]",
                "created_at": detected,
            }


def _link_rows(plan: Plan) -> Iterator[dict]:
    for event in range(plan.events):
        for index in range(DETECTIONS_PER_EVENT):
            detection = _detection_id(event, index)
            yield {"id": detection, "event_id": event + 1, "detection_id": detection, "created_at": plan.now}


def _audit_rows(plan: Plan) -> Iterator[dict]:
    for event in range(plan.events):
        yield {
            "id": event + 1,
            "event_id": event + 1,
            "backend": "rules",
            "model": "rules-v1",
            "prompt": "",
            "prompt_chars": 0,
            "prompt_token_estimate": 0,
            "raw_response": "",
            "parse_status": "not_applicable",
            "parse_error": "",
            "rules_risk_score": 20,
            "attempts": 0,
            "latency_ms": 3,
            "context_flags": "{}",
            "evaluation_status": "pending",
            "evaluation_critique": "",
            "created_at": plan.started_at(event),
        }


def _entity_rows(plan: Plan, count: int) -> Iterator[dict]:
    """Old unknown entities (deleted) whose primary detection is an old detection (SET NULL path)."""
    for n in range(count):
        event = n * max(1, plan.old_events // max(1, count))
        seen = plan.started_at(event)
        yield {
            "id": uuid.UUID(int=plan.rng.getrandbits(128), version=4),
            "entity_type": "person",
            "label": "",
            "trust_status": "unknown",
            "notes": "",
            "embedding": "[1.0, 0.0, 0.0]",
            "embedding_model": "hsv-hist-256",
            "embedding_dim": 3,
            "first_seen_at": seen,
            "last_seen_at": seen,
            "detection_count": 1,
            "cameras_seen": f'["{plan.camera(event)}"]',
            "primary_detection_id": _detection_id(event, 0),
            "created_at": seen,
            "updated_at": seen,
        }


def _alert_rows(plan: Plan, rule_id: uuid.UUID) -> Iterator[dict]:
    for event in range(0, plan.events, 20):
        started = plan.started_at(event)
        yield {
            "id": uuid.UUID(int=event + 1, version=4),
            "kind": "event",
            "rule_id": rule_id,
            "event_id": event + 1,
            "camera_id": plan.camera(event),
            "severity": "medium",
            "status": "delivered",
            "dedup_key": f"{plan.camera(event)}:{rule_id}",
            "channels": "[]",
            "metadata": "{}",
            "version": 1,
            "created_at": started,
            "updated_at": started,
            "delivered_at": started,
        }


def _delivery_rows(plan: Plan, channel_id: uuid.UUID) -> Iterator[dict]:
    for n, event in enumerate(range(0, plan.events, 20)):
        started = plan.started_at(event)
        yield {
            "id": n + 1,
            "alert_id": uuid.UUID(int=event + 1, version=4),
            "channel_id": channel_id,
            "status": "sent",
            "attempts": 1,
            "last_error": "",
            "created_at": started,
            "updated_at": started,
            "sent_at": started,
        }


def _log_rows(plan: Plan, count: int) -> Iterator[dict]:
    for n in range(count):
        yield {
            "id": n + 1,
            "timestamp": plan.now - dt.timedelta(days=8 + 20 * n / count),
            "level": "INFO",
            "component": "pipeline",
            "message": f"processed file {n}",
            "source": "backend",
        }


def _gpu_rows(plan: Plan, count: int) -> Iterator[dict]:
    for n in range(count):
        yield {
            "id": n + 1,
            "recorded_at": plan.now - dt.timedelta(days=8 + 20 * n / count),
            "host": "gpu-host",
            "gpu_index": 0,
            "gpu_name": "Bench GPU",
            "utilization": 40.0,
            "memory_used": 2000,
            "memory_total": 8000,
            "temperature": 50.0,
            "power_usage": 90.0,
        }


def _auditlog_rows(plan: Plan, count: int) -> Iterator[dict]:
    for n in range(count):
        yield {
            "id": n + 1,
            "timestamp": plan.now - dt.timedelta(days=366 + 30 * n / count),
            "action": "event_reviewed",
            "resource_type": "event",
            "resource_id": str(n),
            "actor": "anonymous",
            "details": "{}",
            "status": "success",
        }


def _failed_job_rows(plan: Plan, count: int) -> Iterator[dict]:
    for n in range(count):
        at = plan.now - dt.timedelta(days=31 + 20 * n / count)
        yield {
            "id": n + 1,
            "queue": ("detection", "analysis", "notification")[n % 3],
            "task_name": "pipeline.process_file",
            "payload": f'{{"file_id": {n + 1}}}',
            "camera_id": "front_door",
            "error": "Connection refused",
            "error_type": "connection_error",
            "stack_trace": "",
            "attempt_count": 4,
            "requeue_count": 0,
            "first_failed_at": at,
            "last_failed_at": at,
            "created_at": at,
        }


def seed(url: str, args: argparse.Namespace, now: dt.datetime) -> Plan:
    plan = Plan(args, now)
    rule_id, channel_id = uuid.uuid4(), uuid.uuid4()
    rule = {
        "id": rule_id,
        "name": "Bench rule",
        "description": "",
        "enabled": True,
        "trigger": "event",
        "severity": "medium",
        "dedup_key_template": "{camera_id}:{rule_id}",
        "cooldown_seconds": 0,
        "created_at": now,
        "updated_at": now,
    }
    channel = {
        "id": channel_id,
        "name": "Bench hook",
        "kind": "webhook",
        "enabled": True,
        "config": '{"url": "http://127.0.0.1:9/hook"}',
        "secret": "",
        "min_severity": "low",
        "publish_events": False,
        "last_error": "",
        "created_at": now,
        "updated_at": now,
    }
    steps = (
        ("cameras_camera", _camera_rows(plan)),
        ("pipeline_ingestedfile", _file_rows(plan)),
        ("pipeline_batch", _batch_rows(plan)),
        ("events_event", _event_rows(plan)),
        ("events_detection", _detection_rows(plan)),
        ("events_eventdetection", _link_rows(plan)),
        ("events_eventaudit", _audit_rows(plan)),
        ("events_entity", _entity_rows(plan, args.entities)),
        ("alerts_alertrule", iter([rule])),
        ("alerts_alert", _alert_rows(plan, rule_id)),
        ("alerts_notificationchannel", iter([channel])),
        ("alerts_delivery", _delivery_rows(plan, channel_id)),
        ("system_logentry", _log_rows(plan, args.logs)),
        ("system_gpustat", _gpu_rows(plan, args.gpu_stats)),
        ("system_auditlog", _auditlog_rows(plan, args.audit_logs)),
        ("pipeline_failedjob", _failed_job_rows(plan, args.failed_jobs)),
    )
    with psycopg.connect(url) as conn:
        for table, rows in steps:
            result = _common.copy_rows(conn, table, rows)
            conn.commit()
            print(
                f"  COPY {table:<28} {result.rows:>10,} rows {result.seconds:7.1f} s "
                f"{result.rows_per_second:>10,.0f} rows/s",
                flush=True,
            )
        for table in ID_TABLES:
            _common.reset_identity(conn, table)
        conn.commit()
    print(f"  VACUUM (ANALYZE) {_common.vacuum_analyze(url, SEEDED_TABLES):.1f} s")
    return plan


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in SEEDED_TABLES}


def statement_kind(sql_text: str) -> str:
    words = sql_text.split()
    verb = words[0].upper() if words else "?"
    table = "?"
    for keyword in ("FROM", "INTO", "UPDATE"):
        if keyword in (w.upper() for w in words):
            index = [w.upper() for w in words].index(keyword)
            if verb == "UPDATE":
                index = 0
            if index + 1 < len(words):
                table = words[index + 1].strip('"(').split('"')[0]
            break
    return f"{verb} {table}"


def run(url: str, now: dt.datetime) -> None:
    from django.db import connection

    from system.retention import COUNT_KEYS, retention_run

    timings: list[tuple[float, str]] = []

    def timer(execute, sql_text, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql_text, params, many, context)
        finally:
            timings.append(((time.perf_counter() - started) * 1000, sql_text))

    before = counts(url)
    started = time.perf_counter()
    with connection.execute_wrapper(timer):
        result = retention_run(now=now)
    total_seconds = time.perf_counter() - started
    after = counts(url)

    deleted_rows = sum(result[key] for key in COUNT_KEYS if key not in ("thumbnails_deleted", "media_files_deleted"))
    durations = sorted(ms for ms, _ in timings)
    worst_by_kind: dict[str, float] = defaultdict(float)
    count_by_kind: dict[str, int] = defaultdict(int)
    for ms, text in timings:
        kind = statement_kind(text)
        worst_by_kind[kind] = max(worst_by_kind[kind], ms)
        count_by_kind[kind] += 1
    print("\nResult: " + ", ".join(f"{key} {result[key]:,}" for key in COUNT_KEYS if result[key]))
    print(f"Total: {total_seconds:.1f} s for {deleted_rows:,} rows = {deleted_rows / total_seconds:,.0f} rows/s")
    p95 = _common.percentile(durations, 0.95)
    print(
        f"Statements: {len(durations):,}; max {durations[-1]:.1f} ms, p95 {p95:.1f} ms, p50 "
        f"{_common.percentile(durations, 0.5):.1f} ms"
    )
    print(f"Target every statement < {TARGET_MS:.0f} ms: {_common.verdict(durations[-1] < TARGET_MS)}")
    print("\nSlowest statement kinds:")
    rows = sorted(worst_by_kind.items(), key=lambda item: -item[1])[:12]
    _common.print_table(
        ["statement", "count", "max ms"], [[kind, f"{count_by_kind[kind]:,}", f"{ms:.1f}"] for kind, ms in rows]
    )
    print("\nRows before → after:")
    _common.print_table(["table", "before", "after"], [[t, f"{before[t]:,}", f"{after[t]:,}"] for t in SEEDED_TABLES])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-name", default=DATABASE_NAME, help="scratch database (dropped and recreated)")
    parser.add_argument("--db-base", default=_common.DEFAULT_DATABASE_BASE, help="server URL without database")
    parser.add_argument("--redis-url", default=_common.DEFAULT_REDIS_URL)
    parser.add_argument("--old-events", type=int, default=100_000, help="old events (ten detections each)")
    parser.add_argument("--young-events", type=int, default=10_000, help="recent events that must survive")
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--logs", type=int, default=200_000)
    parser.add_argument("--gpu-stats", type=int, default=50_000)
    parser.add_argument("--audit-logs", type=int, default=50_000)
    parser.add_argument("--failed-jobs", type=int, default=10_000)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = _common.database_url(args.db_base, args.db_name)
    print(f"Creating scratch database {args.db_name} ...")
    _common.recreate_database(args.db_base, args.db_name)
    data_dir = Path(tempfile.mkdtemp(prefix=f"{args.db_name}_data_"))  # an empty thumbnails folder of its own
    _common.setup_django(
        url,
        redis_url=args.redis_url,
        key_prefix=f"{_common.DEFAULT_KEY_PREFIX}_{args.db_name}",
        extra_env={"HSI_DATA_DIR": str(data_dir), "LOG_DB_MIN_LEVEL": "critical"},
    )
    print(f"migrate: {_common.migrate():.1f} s")
    now = dt.datetime.now(dt.UTC)
    print(
        f"Seeding {args.old_events * DETECTIONS_PER_EVENT:,} old and {args.young_events * DETECTIONS_PER_EVENT:,} "
        "young detections ..."
    )
    seed(url, args, now)
    for line in _common.environment_lines(url):
        print(line)
    run(url, now)
    return 0


if __name__ == "__main__":
    sys.exit(main())
