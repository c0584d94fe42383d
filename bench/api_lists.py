"""List endpoint performance: ``GET /api/events`` and ``GET /api/detections`` next to the same query in raw SQL.

Seeds a scratch PostgreSQL database (``hsi_bench``) with 5 cameras, 100,000 events and 1,000,000 detections
(COPY), then, in one process and one run, times each scenario three ways:

- *ours*, through Django: the real URL routing, middleware, views and serializers, called in-process with
  Django's test ``Client`` (no network), with the per-request connection housekeeping a real server does;
- *raw view*, through the same Django request path: a plain function view (``bench/_raw_urls.py``, mounted in
  this process only) runs one hand-written SELECT returning the same data (same filter, ``ORDER BY time DESC,
  id DESC LIMIT 51``, the keyset condition for deep pages) over Django's connection and builds the page JSON
  with ``json.dumps``: the baseline of the throughput target;
- *raw*, bare psycopg, reference only: the same SELECT over a persistent psycopg connection, rows fetched,
  nothing serialised, no framework.

The sides run interleaved (``--rounds``) so that load elsewhere on the machine hits them alike, and the first
API response of each scenario is checked against the raw SQL (ids, total, cursor, joined fields).

Targets (foundation issue): p50 <= 10 ms, >= 65 % of the raw-SQL view's throughput (same request path), deep
pages within 2x of page 1.
The script always exits 0 (it is a report); it prints PASS/FAIL per target.

    .venv/bin/python -m bench.api_lists            # drop, create, migrate, seed (~3 min on 2 cores), measure (~3 min)
    .venv/bin/python -m bench.api_lists --keep     # reuse the seeded database, measure only

See bench/README.md for the options and the last figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

if __package__ in (None, ""):  # run as a file: python bench/api_lists.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg import sql

from bench import _common

DATABASE_NAME = "hsi_bench"
RANDOM_SEED = 20240601
PAGE_LIMIT = 50
DEEP_FRACTION = 0.9  # the deep-page cursor sits where 90 % of the rows are newer
CURSOR_CHAIN_PAGES = 20
TARGET_P50_MS = 10.0
TARGET_THROUGHPUT_RATIO = 0.65
TARGET_DEEP_RATIO = 2.0
LIVE_TIMING = {"warmup": 3, "min_requests": 30, "min_seconds": 1.0, "rounds": 3}  # a COUNT(*) per request
SEEDED_TABLES = ("cameras_camera", "events_event", "events_detection", "events_eventdetection", "events_eventfeedback")

CAMERAS = (  # id, name, share of the activity
    ("front_door", "Front Door", 0.32),
    ("driveway", "Driveway", 0.26),
    ("back_yard", "Back Yard", 0.18),
    ("garage", "Garage", 0.14),
    ("side_gate", "Side Gate", 0.10),
)
OBJECT_COMBOS = (  # sorted class sets, weight
    (("person",), 34),
    (("car",), 16),
    (("car", "person"), 12),
    (("dog",), 6),
    (("dog", "person"), 5),
    (("cat",), 5),
    (("truck",), 4),
    (("bicycle", "person"), 4),
    (("bird",), 4),
    (("car", "truck"), 3),
    (("car", "person", "truck"), 2),
    (("motorcycle",), 2),
    (("motorcycle", "person"), 2),
    (("cat", "dog"), 1),
)
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 7, 8, 7, 6, 6, 7, 6, 6, 7, 8, 9, 8, 6, 4, 3, 2, 1)
RISK_BANDS = {"low": (0, 29), "medium": (30, 59), "high": (60, 84), "critical": (85, 100)}
RISK_WEIGHTS = {  # (no person, person by day, person at night) -> weights of low, medium, high, critical
    "none": (75, 18, 6, 1),
    "day": (45, 28, 18, 9),
    "night": (22, 30, 30, 18),
}
ACTIONS = {
    "low": "No action needed.",
    "medium": "Review the footage when convenient.",
    "high": "Check the live feed now.",
    "critical": "Check the live feed and contact the authorities if the person is unknown.",
}


# --- seeding -------------------------------------------------------------------------------------------------


class EventPlan(NamedTuple):
    id: int
    camera: int  # index into CAMERAS
    started_at: dt.datetime
    duration: float  # seconds between the first and the last detection
    count: int
    combo: tuple[str, ...]
    first_detection_id: int
    is_video: bool

    @property
    def ended_at(self) -> dt.datetime:
        return self.started_at + dt.timedelta(seconds=self.duration)

    def detection_type(self, index: int) -> str:
        return self.combo[index % len(self.combo)]


def _detection_counts(rng: random.Random, events: int, detections: int) -> list[int]:
    """1-20 detections per event, summing exactly to ``detections``."""
    if not events <= detections <= 20 * events:
        raise SystemExit(f"--detections must be between --events and 20 x --events, got {detections}")
    mean = detections / events
    counts = [min(20, max(1, round(rng.triangular(1, 20, max(1.0, min(20.0, 3 * mean - 21)))))) for _ in range(events)]
    difference = detections - sum(counts)
    while difference:
        index = rng.randrange(events)
        step = 1 if difference > 0 else -1
        if 1 <= counts[index] + step <= 20:
            counts[index] += step
            difference -= step
    return counts


def plan_events(rng: random.Random, events: int, detections: int, days: int, now: dt.datetime) -> list[EventPlan]:
    """Event start times over the last ``days`` days (busier by day), ids in time order like a live install."""
    counts = _detection_counts(rng, events, detections)
    combos = [c for c, _ in OBJECT_COMBOS]
    combo_weights = [w for _, w in OBJECT_COMBOS]
    camera_weights = [share for _, _, share in CAMERAS]
    first_day = (now - dt.timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = []
    for _ in range(events):
        while True:
            day = rng.randrange(days + 1)
            hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
            moment = first_day + dt.timedelta(days=day, hours=hour, seconds=rng.random() * 3600)
            if now - dt.timedelta(days=days) <= moment <= now - dt.timedelta(minutes=2):
                break
        starts.append(moment)
    starts.sort()
    plans, next_detection = [], 1
    for index, (started_at, count) in enumerate(zip(starts, counts, strict=True)):
        combo = rng.choices(combos, combo_weights)[0][:count]
        duration = 0.0 if count == 1 else min(90.0, count * rng.uniform(1.5, 4.5))
        camera = rng.choices(range(len(CAMERAS)), camera_weights)[0]
        plans.append(
            EventPlan(index + 1, camera, started_at, duration, count, combo, next_detection, rng.random() < 0.05)
        )
        next_detection += count
    return plans


def _risk(rng: random.Random, plan: EventPlan) -> tuple[str, int]:
    if "person" not in plan.combo:
        weights = RISK_WEIGHTS["none"]
    else:
        weights = RISK_WEIGHTS["night" if plan.started_at.hour < 6 or plan.started_at.hour >= 22 else "day"]
    level = rng.choices(tuple(RISK_BANDS), weights)[0]
    return level, rng.randint(*RISK_BANDS[level])


def event_rows(rng: random.Random, plans: list[EventPlan], now: dt.datetime) -> Iterator[dict]:
    for plan in plans:
        level, score = _risk(rng, plan)
        camera_name = CAMERAS[plan.camera][1]
        kinds = " and ".join(plan.combo)
        ended_at = plan.ended_at
        created_at = min(now, ended_at + dt.timedelta(seconds=rng.uniform(2, 40)))
        reviewed = now - ended_at > dt.timedelta(days=1) and rng.random() < 0.45
        reviewed_at = min(now, ended_at + dt.timedelta(hours=rng.uniform(0.2, 20))) if reviewed else None
        flagged = rng.random() < (0.10 if level in ("high", "critical") else 0.01)
        notes = "Checked the footage: a neighbour." if rng.random() < 0.03 else None
        deleted_at = min(now, ended_at + dt.timedelta(hours=rng.uniform(1, 72))) if rng.random() < 0.01 else None
        yield {
            "id": plan.id,
            "camera_id": CAMERAS[plan.camera][0],
            "started_at": plan.started_at,
            "ended_at": ended_at,
            "risk_score": score,
            "risk_level": level,
            "summary": f"{kinds.capitalize()} seen at {camera_name} ({plan.count} detections, {level} risk).",
            "reasoning": f"{plan.count} detections of {kinds} over {plan.duration:.0f} s at {camera_name}, "
            f"{plan.started_at:%H:%M} UTC. Activity at this hour is {'unusual' if score > 59 else 'typical'} "
            "for this camera; no known entity matched.",
            "recommended_action": ACTIONS[level],
            "analysis_status": rng.choices(("llm", "fallback", "rules"), (85, 8, 7))[0],
            "is_fast_path": "person" in plan.combo and rng.random() < 0.08,
            "object_types": ",".join(sorted(set(plan.combo))),
            "detection_count": plan.count,
            "anomaly_score": round(rng.random() ** 3, 4) if rng.random() < 0.6 else None,
            "suppressed": level == "low" and rng.random() < 0.03,
            "reviewed": reviewed,
            "reviewed_at": reviewed_at,
            "flagged": flagged,
            "notes": notes,
            "deleted_at": deleted_at,
            "version": 1 + reviewed + flagged + (notes is not None) + (deleted_at is not None),
            "created_at": created_at,
            "updated_at": max(t for t in (created_at, reviewed_at, deleted_at) if t is not None),
        }


def detection_rows(rng: random.Random, plans: list[EventPlan]) -> Iterator[dict]:
    for plan in plans:
        camera_id = CAMERAS[plan.camera][0]
        folder = f"/export/foscam/{camera_id}/{plan.started_at:%Y/%m/%d}"
        stem = f"{folder}/{camera_id}_{plan.started_at:%H%M%S}_{plan.id}"
        step = plan.duration / (plan.count - 1) if plan.count > 1 else 0.0
        video = {
            "file_path": f"{stem}.mp4",
            "file_type": "video/mp4",
            "media_type": "video",
            "video_duration": max(30.0, plan.duration + 2),
            "video_codec": "avc1",
            "video_width": 1920,
            "video_height": 1080,
        }
        for index in range(plan.count):
            offset = step * index
            detected_at = plan.started_at + dt.timedelta(seconds=offset)
            width, height = rng.randint(40, 420), rng.randint(60, 640)
            row = {
                "id": plan.first_detection_id + index,
                "camera_id": camera_id,
                "file_path": f"{stem}_{index:02d}.jpg",
                "file_type": "image/jpeg",
                "media_type": "image",
                "detected_at": detected_at,
                "object_type": plan.detection_type(index),
                "confidence": 0.5 + 0.4999 * rng.random() ** 0.7,
                "bbox_x": rng.randint(0, 1920 - width),
                "bbox_y": rng.randint(0, 1080 - height),
                "bbox_width": width,
                "bbox_height": height,
                "image_width": 1920,
                "image_height": 1080,
                "frame_time_seconds": None,
                "video_duration": None,
                "video_codec": None,
                "video_width": None,
                "video_height": None,
                "zone_ids": "[]",
                "created_at": detected_at + dt.timedelta(seconds=rng.uniform(0.3, 3)),
            }
            if plan.is_video:
                row.update(video, frame_time_seconds=offset)
            yield row


def link_rows(plans: list[EventPlan]) -> Iterator[dict]:
    for plan in plans:
        created_at = plan.ended_at + dt.timedelta(seconds=2)
        for detection_id in range(plan.first_detection_id, plan.first_detection_id + plan.count):
            yield {"id": detection_id, "event_id": plan.id, "detection_id": detection_id, "created_at": created_at}


def feedback_rows(rng: random.Random, plans: list[EventPlan], now: dt.datetime) -> Iterator[dict]:
    """Operator feedback on ~2 % of the events (the list shows ``feedback_type``)."""
    kinds = ("accurate", "false_positive", "normal", "missed_threat", "severity_wrong")
    for plan in plans:
        if rng.random() >= 0.02:
            continue
        kind = rng.choices(kinds, (40, 25, 25, 3, 7))[0]
        created_at = min(now, plan.ended_at + dt.timedelta(hours=rng.uniform(0.5, 24)))
        suppress = kind in ("false_positive", "normal")
        yield {
            "event_id": plan.id,
            "camera_id": CAMERAS[plan.camera][0],
            "feedback_type": kind,
            "expected_severity": "low" if kind == "severity_wrong" else None,
            "notes": "",
            "suppress": suppress,
            "suppress_until": created_at + dt.timedelta(days=30) if suppress else None,
            "object_types": ",".join(sorted(set(plan.combo))),
            "time_of_day_minutes": plan.started_at.hour * 60 + plan.started_at.minute,
            "created_at": created_at,
            "updated_at": created_at,
        }


def seed(url: str, args: argparse.Namespace) -> None:
    now = dt.datetime.now(dt.UTC)
    print(f"Planning {args.events:,} events and {args.detections:,} detections over {args.days} days ...")
    plans = plan_events(random.Random(RANDOM_SEED), args.events, args.detections, args.days, now)
    results = []
    with psycopg.connect(url) as conn:
        steps = (
            ("cameras_camera", _common.camera_rows(CAMERAS, now)),
            ("events_event", event_rows(random.Random(RANDOM_SEED + 1), plans, now)),
            ("events_detection", detection_rows(random.Random(RANDOM_SEED + 2), plans)),
            ("events_eventdetection", link_rows(plans)),
            ("events_eventfeedback", feedback_rows(random.Random(RANDOM_SEED + 3), plans, now)),
        )
        for table, rows in steps:
            result = _common.copy_rows(conn, table, rows)
            conn.commit()
            results.append(result)
            print(
                f"  COPY {table:<24} {result.rows:>10,} rows  {result.seconds:7.1f} s  "
                f"{result.rows_per_second:>9,.0f} rows/s",
                flush=True,
            )
        for table in SEEDED_TABLES[1:]:
            _common.reset_identity(conn, table)
        conn.commit()
    seconds = _common.vacuum_analyze(url, SEEDED_TABLES)
    total_rows = sum(r.rows for r in results)
    total_seconds = sum(r.seconds for r in results)
    print(
        f"  VACUUM (ANALYZE) {seconds:.1f} s; COPY total {total_rows:,} rows in {total_seconds:.1f} s = "
        f"{total_rows / total_seconds:,.0f} rows/s (search_vector trigger and deferred FK checks included)"
    )


def seeded_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        query = sql.SQL("SELECT count(*) FROM {}")
        return {t: conn.execute(query.format(sql.Identifier(t))).fetchone()[0] for t in SEEDED_TABLES}


# --- scenarios -----------------------------------------------------------------------------------------------

EVENT_ITEM_COLUMNS = """
    e.id, e.batch_id, e.camera_id, e.started_at, e.ended_at, e.risk_score, e.risk_level, e.summary,
    e.recommended_action, e.analysis_status, e.is_fast_path, e.anomaly_score, e.suppressed, e.object_types,
    e.detection_count, e.reviewed, e.reviewed_at, e.flagged, e.notes, e.snooze_until, e.deleted_at, e.version,
    e.created_at, e.updated_at"""
# One statement returning everything an event list item shows (CONTRACT §2.5; list items omit reasoning).
EVENTS_PAYLOAD_SQL = f"""
SELECT {EVENT_ITEM_COLUMNS}, c.name AS camera_name,
    ARRAY(SELECT ed.detection_id FROM events_eventdetection ed WHERE ed.event_id = e.id
          ORDER BY ed.detection_id) AS detection_ids,
    (SELECT d.id FROM events_eventdetection ed JOIN events_detection d ON d.id = ed.detection_id
      WHERE ed.event_id = e.id ORDER BY d.confidence DESC, d.id LIMIT 1) AS thumbnail_detection_id,
    f.feedback_type
FROM events_event e
JOIN cameras_camera c ON c.id = e.camera_id
LEFT JOIN events_eventfeedback f ON f.event_id = e.id
WHERE e.deleted_at IS NULL {{where}}
ORDER BY e.started_at DESC, e.id DESC LIMIT {PAGE_LIMIT + 1}"""
EVENTS_ROWS_SQL = f"""
SELECT {EVENT_ITEM_COLUMNS} FROM events_event e
WHERE e.deleted_at IS NULL {{where}}
ORDER BY e.started_at DESC, e.id DESC LIMIT {PAGE_LIMIT + 1}"""
EVENTS_COUNT_SQL = "SELECT count(*) FROM events_event e WHERE e.deleted_at IS NULL {where}"
EVENTS_KEYSET = "AND (e.started_at, e.id) < (%s, %s)"

DETECTION_ITEM_COLUMNS = """
    d.id, d.camera_id, d.batch_id, d.entity_id, d.file_path, d.file_type, d.media_type, d.detected_at,
    d.object_type, d.confidence, d.bbox_x, d.bbox_y, d.bbox_width, d.bbox_height, d.image_width, d.image_height,
    d.frame_time_seconds, d.video_duration, d.video_codec, d.video_width, d.video_height, d.zone_ids,
    d.entity_similarity, d.enrichment_data, d.created_at"""
# Detection JSON (CONTRACT §2.4) adds event_id, through the link table.
DETECTIONS_PAYLOAD_SQL = f"""
SELECT {DETECTION_ITEM_COLUMNS}, ed.event_id
FROM events_detection d LEFT JOIN events_eventdetection ed ON ed.detection_id = d.id
WHERE TRUE {{where}}
ORDER BY d.detected_at DESC, d.id DESC LIMIT {PAGE_LIMIT + 1}"""
DETECTIONS_ROWS_SQL = f"""
SELECT {DETECTION_ITEM_COLUMNS} FROM events_detection d
WHERE TRUE {{where}}
ORDER BY d.detected_at DESC, d.id DESC LIMIT {PAGE_LIMIT + 1}"""
DETECTIONS_COUNT_SQL = "SELECT count(*) FROM events_detection d WHERE TRUE {where}"
DETECTIONS_KEYSET = "AND (d.detected_at, d.id) < (%s, %s)"


@dataclass
class Scenario:
    name: str
    resource: str  # events | detections
    params: dict[str, str]
    where: str = ""
    args: tuple = ()
    page1: str | None = None  # for a deep page: the scenario it is compared with
    live: bool = False  # informational: the cached total is invalidated before every request, as under ingest
    api: _common.Timing | None = None
    raw_view: _common.Timing | None = None  # the raw statement served by a plain Django view (bench/_raw_urls.py)
    raw: _common.Timing | None = None
    raw_rows: _common.Timing | None = None
    first_request_ms: float | None = None
    check: str = "-"
    problems: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/api/{self.resource}"

    @property
    def view_path(self) -> str:
        return f"/api/bench-raw/{self.resource}"

    @property
    def view_params(self) -> dict[str, str]:
        """The scenario's own query string plus the registry key of its statements (``bench._raw_urls``)."""
        return {**self.params, "scenario": self.name}

    def register_raw_view(self) -> None:
        from bench import _raw_urls

        order_column = "started_at" if self.resource == "events" else "detected_at"
        _raw_urls.register(
            self.name, _raw_urls.RawPage(self.resource, tuple(self.raw_statements("payload")), order_column)
        )

    def query(self, kind: str) -> str:
        templates = {
            "events": {"payload": EVENTS_PAYLOAD_SQL, "rows": EVENTS_ROWS_SQL},
            "detections": {"payload": DETECTIONS_PAYLOAD_SQL, "rows": DETECTIONS_ROWS_SQL},
        }
        return templates[self.resource][kind].format(where=self.where)

    def raw_statements(self, kind: str) -> list[tuple[str, tuple]]:
        """What the raw side runs: the page, plus the COUNT(*) a live scenario cannot take from a cache."""
        statements = [(self.query(kind), self.args)]
        return [*statements, self.count_sql()] if self.live else statements

    def count_sql(self) -> tuple[str, tuple]:
        """The total ignores the cursor (CONTRACT §0.5)."""
        where, args = self.where, self.args
        if self.page1 is not None:
            where, args = "", ()
        templates = {"events": EVENTS_COUNT_SQL, "detections": DETECTIONS_COUNT_SQL}
        return templates[self.resource].format(where=where), args


def _deep_key(conn: psycopg.Connection, resource: str) -> tuple[dt.datetime, int]:
    if resource == "events":
        total = conn.execute("SELECT count(*) FROM events_event WHERE deleted_at IS NULL").fetchone()[0]
        query = (
            "SELECT started_at, id FROM events_event WHERE deleted_at IS NULL "
            "ORDER BY started_at DESC, id DESC OFFSET %s LIMIT 1"
        )
    else:
        total = conn.execute("SELECT count(*) FROM events_detection").fetchone()[0]
        query = "SELECT detected_at, id FROM events_detection ORDER BY detected_at DESC, id DESC OFFSET %s LIMIT 1"
    return conn.execute(query, (int(total * DEEP_FRACTION),)).fetchone()


def build_scenarios(conn: psycopg.Connection) -> list[Scenario]:
    from hsi.api.pagination import encode_cursor

    camera = CAMERAS[0][0]
    limit = {"limit": str(PAGE_LIMIT)}
    event_key = _deep_key(conn, "events")
    detection_key = _deep_key(conn, "detections")
    return [
        Scenario("events page 1", "events", limit),
        Scenario(
            f"events camera_id={camera}", "events", {**limit, "camera_id": camera}, "AND e.camera_id = %s", (camera,)
        ),
        Scenario(
            "events risk_level=high", "events", {**limit, "risk_level": "high"}, "AND e.risk_level = %s", ("high",)
        ),
        Scenario(
            f"events deep cursor ({DEEP_FRACTION:.0%})",
            "events",
            {**limit, "cursor": encode_cursor(*event_key)},
            EVENTS_KEYSET,
            event_key,
            page1="events page 1",
        ),
        Scenario("detections page 1", "detections", limit),
        Scenario(
            f"detections camera_id={camera}&object_type=person",
            "detections",
            {**limit, "camera_id": camera, "object_type": "person"},
            "AND d.camera_id = %s AND d.object_type = %s",
            (camera, "person"),
        ),
        Scenario(
            f"detections deep cursor ({DEEP_FRACTION:.0%})",
            "detections",
            {**limit, "cursor": encode_cursor(*detection_key)},
            DETECTIONS_KEYSET,
            detection_key,
            page1="detections page 1",
        ),
        Scenario("events page 1, live (total recounted)", "events", limit, live=True),
        Scenario("detections page 1, live (total recounted)", "detections", limit, live=True),
    ]


# --- checks: the API returns what the raw SQL returns ---------------------------------------------------------


def _body_head(response) -> str:
    return response.content[:300].decode("utf-8", "replace").replace("\n", " ")


def _compare(scenario: Scenario, body: dict, rows: list[tuple], total: int) -> list[str]:
    problems = []
    items = body.get("items") or []
    pagination = body.get("pagination") or {}
    expected_ids = [row[0] for row in rows[:PAGE_LIMIT]]
    got_ids = [item.get("id") for item in items]
    if got_ids != expected_ids:
        problems.append(f"ids differ: api {got_ids[:3]}... vs sql {expected_ids[:3]}... ({len(got_ids)} items)")
    if pagination.get("total") != total:
        problems.append(f"total {pagination.get('total')} != sql count {total}")
    if pagination.get("has_more") != (len(rows) > PAGE_LIMIT):
        problems.append(f"has_more {pagination.get('has_more')} != {len(rows) > PAGE_LIMIT}")
    if (pagination.get("next_cursor") is None) == (len(rows) > PAGE_LIMIT):
        problems.append("next_cursor missing" if len(rows) > PAGE_LIMIT else "next_cursor set on the last page")
    if items and rows and got_ids == expected_ids:
        first, row = items[0], rows[0]
        if scenario.resource == "events":
            # payload columns: ..., camera_name, detection_ids, thumbnail_detection_id, feedback_type
            expected = {
                "camera_name": row[-4],
                "detection_ids": list(row[-3]),
                "thumbnail_url": f"/api/media/detections/{row[-2]}",
                "feedback_type": row[-1],
            }
        else:
            expected = {"event_id": row[-1], "camera_id": row[1], "object_type": row[8]}
        for key, value in expected.items():
            if first.get(key) != value:
                problems.append(f"items[0].{key} = {first.get(key)!r}, sql {value!r}")
    return problems


def check_scenario(client, conn: psycopg.Connection, scenario: Scenario) -> bool:
    """First request (cold: the total is not cached yet), compared with the raw SQL. False when not 200."""
    started = time.perf_counter()
    response = client.get(scenario.path, scenario.params)
    scenario.first_request_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        scenario.check = f"HTTP {response.status_code}"
        scenario.problems.append(f"GET {scenario.path} -> {response.status_code}: {_body_head(response)}")
        return False
    rows = conn.execute(scenario.query("payload"), scenario.args).fetchall()
    count_sql, count_args = scenario.count_sql()
    total = conn.execute(count_sql, count_args).fetchone()[0]
    scenario.problems.extend(_compare(scenario, json.loads(response.content), rows, total))
    scenario.check = "ok" if not scenario.problems else "DIFF"
    return True


def check_raw_view(client, conn: psycopg.Connection, scenario: Scenario) -> bool:
    """The raw-SQL view answers 200 with the ids of the raw statement. False when not 200."""
    response = client.get(scenario.view_path, scenario.view_params)
    if response.status_code != 200:
        scenario.check = f"view {response.status_code}"
        scenario.problems.append(f"GET {scenario.view_path} -> {response.status_code}: {_body_head(response)}")
        return False
    body = json.loads(response.content)
    rows = conn.execute(scenario.query("payload"), scenario.args).fetchall()
    got = [item.get("id") for item in body.get("items") or []]
    problems = []
    if got != [row[0] for row in rows[:PAGE_LIMIT]]:
        problems.append(f"raw view ids differ from the raw SQL: {got[:3]}... ({len(got)} items)")
    if (body.get("pagination") or {}).get("has_more") != (len(rows) > PAGE_LIMIT):
        problems.append("raw view has_more differs from the raw SQL")
    if problems:
        scenario.problems.extend(problems)
        scenario.check = "DIFF"
    return True


def check_cursor_chain(client, conn: psycopg.Connection, resource: str) -> str:
    """Follow ``next_cursor`` from page 1 and compare every page with the raw keyset query."""
    scenario = Scenario("chain", resource, {"limit": str(PAGE_LIMIT)})
    keyset = EVENTS_KEYSET if resource == "events" else DETECTIONS_KEYSET
    params, where, args = dict(scenario.params), "", ()
    for page in range(1, CURSOR_CHAIN_PAGES + 1):
        response = client.get(scenario.path, params)
        if response.status_code != 200:
            return f"page {page}: HTTP {response.status_code}: {_body_head(response)}"
        body = json.loads(response.content)
        scenario.where = where
        rows = conn.execute(scenario.query("rows"), args).fetchall()
        got = [item.get("id") for item in body.get("items") or []]
        if got != [row[0] for row in rows[:PAGE_LIMIT]]:
            return f"DIFF at page {page}"
        cursor = (body.get("pagination") or {}).get("next_cursor")
        if not cursor:
            return f"ok (ended at page {page})"
        params["cursor"] = cursor
        last = rows[PAGE_LIMIT - 1]
        where, args = keyset, (last[3] if resource == "events" else last[7], last[0])
    return f"ok ({CURSOR_CHAIN_PAGES} pages)"


# --- measuring -----------------------------------------------------------------------------------------------


def use_bench_urlconf() -> None:
    """The project's routes plus the raw-SQL view (``bench._raw_urls``), in this process only."""
    from django.conf import settings
    from django.urls import clear_url_caches

    settings.ROOT_URLCONF = "bench._raw_urls"
    clear_url_caches()


def run(args: argparse.Namespace, url: str) -> None:
    from django.db import close_old_connections
    from django.test import Client

    from hsi.api.counts import invalidate_counts

    use_bench_urlconf()  # before the first request
    invalidate_counts("events", "detections")  # first requests of this run compute their totals (cold)
    client = Client()
    timing = {
        "warmup": args.warmup,
        "min_requests": args.requests,
        "min_seconds": args.seconds,
        "rounds": args.rounds,
    }
    prepare = 5 if args.raw_prepared else None
    floor = measure_floor(client, timing)
    with psycopg.connect(url, autocommit=True, prepare_threshold=prepare) as conn:
        scenarios = build_scenarios(conn)
        for scenario in scenarios:
            print(f"  {scenario.name} (load average {_common.load_average()}) ...", flush=True)
            calls = {kind: _common.sql_call(conn, scenario.raw_statements(kind)) for kind in ("payload", "rows")}
            failures: list[str] = []
            if check_scenario(client, conn, scenario):

                def api_call(scenario=scenario, failures=failures):
                    if scenario.live:  # what every detection or event written by the pipeline does
                        invalidate_counts(scenario.resource)
                    close_old_connections()  # what Django's request_started does in a real server
                    status = client.get(scenario.path, scenario.params).status_code
                    if status != 200:
                        failures.append(f"api {status}")

                calls["api"] = api_call
            scenario.register_raw_view()
            if check_raw_view(client, conn, scenario):

                def view_call(scenario=scenario, failures=failures):
                    close_old_connections()  # same housekeeping as the API side
                    status = client.get(scenario.view_path, scenario.view_params).status_code
                    if status != 200:
                        failures.append(f"raw view {status}")

                calls["view"] = view_call
            timings = _common.measure(calls, **(timing | LIVE_TIMING if scenario.live else timing))
            scenario.api, scenario.raw_view = timings.get("api"), timings.get("view")
            scenario.raw, scenario.raw_rows = timings["payload"], timings["rows"]
            if failures:
                scenario.check = "ERR"
                scenario.problems.append(f"{len(failures)} non-200 responses while timing: {sorted(set(failures))}")
            if args.explain:
                plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + scenario.query("payload"), scenario.args)
                print("\n".join("      " + line[0] for line in plan.fetchall()))
        chains = {resource: check_cursor_chain(client, conn, resource) for resource in ("events", "detections")}
    report(scenarios, chains)
    print(
        f"\nFramework floor, GET /health through the same path: p50 {floor.p50_ms:.2f} ms, p99 {floor.p99_ms:.2f} ms, "
        f"{floor.requests_per_second:,.0f} req/s, {floor.cpu_ms:.2f} CPU ms"
    )
    print(f"Load average at the end (1/5/15 min): {_common.load_average()} on {_common.cpu_count()} CPU(s)")


def measure_floor(client, timing: dict) -> _common.Timing:
    """The cheapest request through the same client and middleware: what no list endpoint can go below."""
    from django.db import close_old_connections

    def call():
        close_old_connections()
        client.get("/health")

    return _common.measure({"health": call}, **timing)["health"]


def _deep_ratio(scenario: Scenario, by_name: dict[str, Scenario]) -> float | None:
    if scenario.page1 is None or scenario.api is None or by_name[scenario.page1].api is None:
        return None
    return scenario.api.p50_ms / by_name[scenario.page1].api.p50_ms


def report(scenarios: list[Scenario], chains: dict[str, str]) -> None:
    fmt = _common.fmt
    by_name = {s.name: s for s in scenarios}
    rows = []
    for s in scenarios:
        api, view = s.api, s.raw_view
        rows.append(
            [
                s.name,
                fmt(api and api.p50_ms),
                fmt(api and api.p99_ms),
                fmt(api and api.requests_per_second, 0),
                fmt(api and api.cpu_ms),
                fmt(view and view.p50_ms),
                fmt(view and view.p99_ms),
                fmt(view and view.requests_per_second, 0),
                fmt(view and view.cpu_ms),
                fmt(_common.throughput_ratio(api, view)),
                fmt(_deep_ratio(s, by_name)),
                fmt(s.first_request_ms, 1),
                s.check,
            ]
        )
    print(
        "\nGET /api/... (ours) vs GET /api/bench-raw/... (raw-view: the same data from one hand-written SQL statement,"
        "\njson.dumps in a plain view), both through Django: same URL routing, middleware and in-process test Client"
    )
    _common.print_table(
        [
            "scenario",
            "p50 ms",
            "p99 ms",
            "req/s",
            "cpu ms",
            "raw-view p50",
            "raw-view p99",
            "raw-view req/s",
            "raw-view cpu",
            "ours/raw-view",
            "deep/page1",
            "1st ms",
            "check",
        ],
        rows,
    )
    print(
        "\nReference, no Django: bare psycopg over its own connection, rows fetched, nothing serialised;"
        "\nraw = the same statement, rows = the table rows only (no camera name, detection ids, thumbnail, event link)"
    )
    _common.print_table(
        ["scenario", "raw p50", "raw p99", "raw req/s", "ours/raw", "rows p50", "rows p99", "rows req/s", "ours/rows"],
        [
            [
                s.name,
                fmt(s.raw.p50_ms),
                fmt(s.raw.p99_ms),
                fmt(s.raw.requests_per_second, 0),
                fmt(_common.throughput_ratio(s.api, s.raw)),
                fmt(s.raw_rows.p50_ms),
                fmt(s.raw_rows.p99_ms),
                fmt(s.raw_rows.requests_per_second, 0),
                fmt(_common.throughput_ratio(s.api, s.raw_rows)),
            ]
            for s in scenarios
        ],
    )
    print(
        f"\nCursor chain ({CURSOR_CHAIN_PAGES} pages following next_cursor vs raw keyset): "
        + "; ".join(f"{k}: {v}" for k, v in chains.items())
    )
    problems = [(s.name, p) for s in scenarios for p in s.problems]
    if problems:
        print("\nProblems:")
        for name, problem in problems:
            print(f"  {name}: {problem}")
    print_targets(scenarios, by_name)


def print_targets(scenarios: list[Scenario], by_name: dict[str, Scenario]) -> None:
    verdict = _common.verdict
    print(
        f"\nTargets: p50 <= {TARGET_P50_MS:g} ms; >= {TARGET_THROUGHPUT_RATIO:.0%} of the raw-SQL view's req/s "
        f"(ours/raw-view: same Django request path, page built by hand); deep page p50 <= {TARGET_DEEP_RATIO:g} x "
        "page 1. ours/raw (bare psycopg, no Django) is printed as reference, not a target."
    )
    failures = 0
    for s in scenarios:
        if s.live:
            if s.api is not None:
                print(f"  info  {s.name}: p50 {s.api.p50_ms:.2f} ms (not a target; shows the COUNT(*) under ingest)")
            continue
        if s.api is None:
            print(f"  FAIL  {s.name}: not measured ({s.check})")
            failures += 1
            continue
        ratio = _common.throughput_ratio(s.api, s.raw_view)
        reference = f"reference: {_common.fmt(_common.throughput_ratio(s.api, s.raw))} x bare-psycopg raw req/s"
        ratio_text = f"{_common.fmt(ratio)} x raw-view req/s" if s.raw_view is not None else "raw view not measured"
        verdicts = [
            (s.api.p50_ms <= TARGET_P50_MS, f"p50 {s.api.p50_ms:.2f} ms"),
            (ratio is not None and ratio >= TARGET_THROUGHPUT_RATIO, f"{ratio_text} ({reference})"),
        ]
        deep = _deep_ratio(s, by_name)
        if s.page1 is not None:
            verdicts.append((deep is not None and deep <= TARGET_DEEP_RATIO, f"deep/page1 {_common.fmt(deep)}x"))
        for passed, text in verdicts:
            failures += not passed
            print(f"  {verdict(passed)}  {s.name}: {text}")
    print(f"\n{'ALL TARGETS MET' if not failures else f'{failures} target(s) missed'}")


# --- entry point ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="reuse an already seeded database (seed it if empty)")
    parser.add_argument("--db-name", default=DATABASE_NAME, help="scratch database (dropped unless --keep)")
    parser.add_argument("--db-base", default=_common.DEFAULT_DATABASE_BASE, help="server URL without database")
    parser.add_argument("--redis-url", default=_common.DEFAULT_REDIS_URL)
    parser.add_argument("--key-prefix", help="HSI_KEY_PREFIX (default hsibench, hsibench_<db-name> for other names)")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--detections", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=300, help="timed requests per scenario, at least")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per scenario, at least")
    parser.add_argument("--warmup", type=int, default=30, help="untimed requests per scenario")
    parser.add_argument("--rounds", type=int, default=10, help="API and raw SQL alternate this many times")
    parser.add_argument(
        "--raw-prepared",
        action="store_true",
        help="prepare the bare-psycopg raw statements (Django's connection follows DATABASE_PREPARE_THRESHOLD)",
    )
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of each raw statement")
    return parser.parse_args(argv)


def print_environment(url: str, counts: dict[str, int]) -> None:
    for line in _common.environment_lines(url):
        print(line)
    print("Rows: " + ", ".join(f"{table} {count:,}" for table, count in counts.items()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = _common.database_url(args.db_base, args.db_name)
    reuse = args.keep and _common.database_exists(args.db_base, args.db_name)
    if not reuse:
        print(f"Creating scratch database {args.db_name} ...")
        _common.recreate_database(args.db_base, args.db_name)
    # Throttling off: one client at hundreds of req/s is not what the 60/min tier is for.
    # Cached totals are keyed by query text, not by database: each scratch database gets its own key prefix, so
    # two runs on different databases sharing one Redis never read each other's totals.
    prefix = args.key_prefix or (
        _common.DEFAULT_KEY_PREFIX if args.db_name == DATABASE_NAME else f"{_common.DEFAULT_KEY_PREFIX}_{args.db_name}"
    )
    _common.setup_django(url, redis_url=args.redis_url, key_prefix=prefix, extra_env={"THROTTLE_ENABLED": "false"})
    print(f"migrate: {_common.migrate():.1f} s")
    counts = seeded_counts(url)
    if not counts["events_event"]:
        seed(url, args)
        counts = seeded_counts(url)
    elif not reuse:
        raise SystemExit("a freshly created database is not empty")
    print_environment(url, counts)
    print(f"\nMeasuring (warm-up {args.warmup}, then >= {args.requests} requests and >= {args.seconds:g} s each):")
    run(args, url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
