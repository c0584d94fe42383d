"""The README's demo as a real process: ``manage.py serve`` all-in-one turns dropped JPEGs into an event.

SQLite, no Redis, nothing configured: the embedded OpenCV detector and the rules analyzer (CONTRACT §0.1, §8.1).
Images come from ``manage.py drop_demo_images``; the watcher thread ingests them, the in-process pool detects,
the ticker closes the idle batch, the rules verdict becomes an event visible at ``/api/events``.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_serve import (
    REPO_ROOT,
    SERVER_DATA_DIR,
    RunningServer,
    _free_port,
    _server_environment,
    _stop_server,
    _wait_until_alive,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EVENT_DEADLINE_SECONDS = 60
DEMO_IMAGES = 4
# Anything that would point the server at an external detector or LLM, or change the backends.
UNCONFIGURED = ("DETECTOR_URL", "DETECTOR_BACKEND", "DETECTOR_ONNX_PATH", "LLM_URL", "LLM_BACKEND")


def _pipeline_environment(workdir: Path, **overrides: str) -> dict[str, str]:
    environment = _server_environment(workdir / SERVER_DATA_DIR, workdir / "camera-root")
    for name in UNCONFIGURED:
        environment.pop(name, None)
    environment.update(
        BATCH_IDLE_TIMEOUT_SECONDS="2",
        BATCH_WINDOW_SECONDS="30",
        BATCH_CHECK_INTERVAL_SECONDS="0.5",
        WATCHER_DEBOUNCE_SECONDS="0.1",
        FILE_STABILITY_SECONDS="0.3",
        FAST_PATH_ENABLED="false",
        SERVE_WORKER_THREADS="2",
    )
    environment.update(overrides)
    return environment


def _start(workdir: Path, log_name: str, **overrides: str) -> RunningServer:
    port = _free_port()
    log_path = workdir / log_name
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=REPO_ROOT,
            env=_pipeline_environment(workdir, **overrides),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(process=process, base_url=f"http://127.0.0.1:{port}", log_path=log_path)
    _wait_until_alive(server)
    return server


def _drop_demo_images(workdir: Path, count: int = DEMO_IMAGES) -> list[Path]:
    done = subprocess.run(
        [sys.executable, "manage.py", "drop_demo_images", "--count", str(count), "--interval", "0.4"],
        cwd=REPO_ROOT,
        env=_pipeline_environment(workdir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [Path(line) for line in done.stdout.splitlines()]


def _poll(server: RunningServer, path: str, found, deadline_seconds: float = EVENT_DEADLINE_SECONDS):
    """GET ``path`` until ``found(body)`` returns something truthy; fail with the server log at the deadline."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"serve exited with {server.process.returncode}:\n{server.output()}")
        response = httpx.get(f"{server.base_url}{path}", timeout=10)
        assert response.status_code == 200, response.text
        result = found(response.json())
        if result:
            return result
        time.sleep(0.25)
    pytest.fail(f"nothing found at {path} within {deadline_seconds} s:\n{server.output()}")


def _event_with_detections(body: dict) -> dict | None:
    return next((item for item in body["items"] if item["detection_count"] > 0), None)


def _rows(database: Path, query: str) -> list[tuple]:
    """Read the server's SQLite database directly (WAL mode lets another process read while it writes)."""
    connection = sqlite3.connect(database, timeout=10)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def _wait_for_rows(server: RunningServer, database: Path, query: str, expected: list[tuple]) -> None:
    deadline = time.monotonic() + EVENT_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"serve exited with {server.process.returncode}:\n{server.output()}")
        if _rows(database, query) == expected:
            return
        time.sleep(0.25)
    pytest.fail(f"{query} gave {_rows(database, query)}, not {expected}, within {EVENT_DEADLINE_SECONDS} s")


FILES_DONE = "SELECT COUNT(*) FROM pipeline_ingestedfile WHERE status IN ('processed', 'no_detections')"
UNBATCHED = "SELECT COUNT(*) FROM events_detection WHERE batch_id IS NULL"  # batching runs after the file commits
BATCHES_IN_FLIGHT = "SELECT COUNT(*) FROM pipeline_batch WHERE status IN ('open', 'closed', 'analyzing')"


@pytest.fixture
def servers():
    started: list[RunningServer] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def test_dropped_demo_images_become_a_rules_event_and_serve_stops_cleanly(tmp_path, servers):
    # Given serve all-in-one with its watcher and ticker, and nothing configured for detection or analysis
    server = _start(tmp_path, "serve.log")
    servers.append(server)
    assert "background: watcher, ticker" in server.output()
    assert "pipeline: detector opencv, analyzer rules, 2 task threads" in server.output()

    # When the demo images are dropped into the front_door folder
    paths = _drop_demo_images(tmp_path)
    assert [path.parent for path in paths] == [tmp_path / "camera-root" / "front_door"] * DEMO_IMAGES

    # Then an event with detections appears once the batch has been idle for 2 s
    event = _poll(server, "/api/events", _event_with_detections)
    assert event["camera_id"] == "front_door"
    assert event["analysis_status"] == "rules"
    assert event["risk_level"] in {"low", "medium", "high", "critical"}
    assert isinstance(event["risk_score"], int)
    assert "motion" in event["object_types"]
    assert event["summary"].endswith(".")

    # And once every file is processed and every batch analysed, each detection is in exactly one event
    database = tmp_path / SERVER_DATA_DIR / "hsi.sqlite3"
    _wait_for_rows(server, database, FILES_DONE, [(DEMO_IMAGES,)])
    _wait_for_rows(server, database, UNBATCHED, [(0,)])
    _wait_for_rows(server, database, BATCHES_IN_FLIGHT, [(0,)])
    events = httpx.get(f"{server.base_url}/api/events", timeout=10).json()["items"]
    detections = httpx.get(f"{server.base_url}/api/detections", params={"limit": 100}, timeout=10).json()
    assert detections["pagination"]["total"] == sum(item["detection_count"] for item in events) > 0
    assert sorted(d["id"] for d in detections["items"]) == sorted(i for e in events for i in e["detection_ids"])
    assert {d["camera_id"] for d in detections["items"]} == {"front_door"}
    assert all(d["event_id"] is not None for d in detections["items"])
    camera = httpx.get(f"{server.base_url}/api/cameras/front_door", timeout=10)
    assert camera.status_code == 200 and camera.json()["status"] == "online"

    # When SIGTERM arrives, then serve stops cleanly
    assert _stop_server(server) == 0
    assert "HSI stopped." in server.output()
    assert "Traceback" not in server.output()


def test_a_batch_left_open_by_a_stop_is_closed_by_the_first_tick_after_the_restart(tmp_path, servers):
    database = tmp_path / SERVER_DATA_DIR / "hsi.sqlite3"
    # Given a server whose batches stay open for a long while
    first = _start(tmp_path, "serve-first.log", BATCH_IDLE_TIMEOUT_SECONDS="600", BATCH_WINDOW_SECONDS="600")
    servers.append(first)
    paths = _drop_demo_images(tmp_path)
    assert len(paths) == DEMO_IMAGES

    # When every file is processed and the server is stopped before the batch is due
    _wait_for_rows(first, database, FILES_DONE, [(DEMO_IMAGES,)])
    _wait_for_rows(first, database, UNBATCHED, [(0,)])
    ((detection_count,),) = _rows(database, "SELECT COUNT(*) FROM events_detection")
    assert detection_count > 0
    assert _stop_server(first, signal.SIGINT) == 0
    assert "Traceback" not in first.output()

    # Then the batch is still open in the database, and no event exists
    assert _rows(database, "SELECT status, detection_count FROM pipeline_batch") == [("open", detection_count)]
    assert _rows(database, "SELECT COUNT(*) FROM events_event") == [(0,)]

    # When the server starts again with a short idle timeout
    second = _start(tmp_path, "serve-second.log", BATCH_IDLE_TIMEOUT_SECONDS="1")
    servers.append(second)

    # Then the batch is closed and analysed, with every detection in the event and none twice
    event = _poll(second, "/api/events", _event_with_detections)
    assert event["detection_count"] == detection_count
    # (idle, or window when the restart itself took longer than the window on a loaded machine)
    [(status, close_reason)] = _rows(database, "SELECT status, close_reason FROM pipeline_batch")
    assert (status, close_reason in ("idle", "window")) == ("done", True)
    files = _rows(database, "SELECT COUNT(*), COUNT(DISTINCT sha256) FROM pipeline_ingestedfile")
    assert files == [(len(paths), len(paths))]
    assert _stop_server(second) == 0
    assert "Traceback" not in second.output()
