"""``manage.py serve`` as a real process in all-in-one mode: SQLite, no Redis, one data directory (CONTRACT §8.1)."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

REPO_ROOT = Path(__file__).resolve().parents[2]
START_DEADLINE_SECONDS = 120
STOP_DEADLINE_SECONDS = 30
SERVER_DATA_DIR = "server-data"  # not the per-test "data" directory that conftest makes: serve must create it
# Variables of the test process that would turn the server into a distributed one or leak the test set-up.
STRIPPED_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "HSI_KEY_PREFIX", "API_KEY_ENABLED", "DEBUG")


@dataclass
class RunningServer:
    process: subprocess.Popen
    base_url: str
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_environment(data_dir: Path, foscam_dir: Path) -> dict[str, str]:
    environment = {name: value for name, value in os.environ.items() if name not in STRIPPED_VARIABLES}
    environment.update(
        DJANGO_SETTINGS_MODULE="hsi.settings",
        SECRET_KEY="e2e-serve-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        HSI_DATA_DIR=str(data_dir),
        FOSCAM_BASE_PATH=str(foscam_dir),
        HSI_HOST="127.0.0.1",
        PYTHONUNBUFFERED="1",
    )
    return environment


def _start_server(workdir: Path, log_name: str = "serve.log") -> RunningServer:
    port = _free_port()
    log_path = workdir / log_name
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port), "--no-watcher", "--no-ticker"],
            cwd=REPO_ROOT,
            env=_server_environment(workdir / SERVER_DATA_DIR, workdir / "camera-root"),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(process=process, base_url=f"http://127.0.0.1:{port}", log_path=log_path)
    _wait_until_alive(server)
    return server


def _wait_until_alive(server: RunningServer) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"serve exited with {server.process.returncode} before answering:\n{server.output()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.process.kill()
    pytest.fail(f"serve did not answer /health within {START_DEADLINE_SECONDS} s:\n{server.output()}")


def _stop_server(server: RunningServer, signal_number: int = signal.SIGTERM) -> int:
    server.process.send_signal(signal_number)
    try:
        return server.process.wait(timeout=STOP_DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        pytest.fail(f"serve did not stop within {STOP_DEADLINE_SECONDS} s of signal {signal_number}")


@pytest.fixture
def first_start(tmp_path):
    server = _start_server(tmp_path)
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


def _admin_login(base_url: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        form = client.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        return client.post(
            "/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": token, "username": "admin", "password": password, "next": "/admin/"},
            headers={"Referer": f"{base_url}/admin/login/"},
        )


def test_serve_runs_all_in_one_on_sqlite_and_stops_on_sigterm(first_start, tmp_path):
    # Given a first start with an empty data directory and neither DATABASE_URL nor REDIS_URL
    base_url = first_start.base_url

    # Then the probes, the root and the OpenAPI document answer
    ready = httpx.get(f"{base_url}/ready", timeout=10)
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "status": "ready",
        "checks": {"database": "ok", "redis": "disabled", "migrations": "ok"},
    }
    root = httpx.get(f"{base_url}/", timeout=10)
    assert root.status_code == 200 and root.json()["docs"] == "/api/docs"
    schema = httpx.get(f"{base_url}/api/schema", timeout=30)
    assert schema.status_code == 200
    assert str(yaml.safe_load(schema.text)["openapi"]).startswith("3.")

    # And the admin is styled: collected static files are served
    css = httpx.get(f"{base_url}/static/admin/css/base.css", timeout=10)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")

    # And the SQLite database and the admin password live in the data directory
    data_dir = tmp_path / SERVER_DATA_DIR
    assert (data_dir / "hsi.sqlite3").is_file()
    password_file = data_dir / "admin_password"
    password = password_file.read_text().strip()
    assert len(password) >= 16
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) & 0o077 == 0
    assert password in first_start.output()
    assert (tmp_path / "camera-root").is_dir() and (data_dir / "thumbnails").is_dir()

    # And the printed password logs in to /admin/
    login = _admin_login(base_url, password)
    assert login.status_code == 302 and login.headers["location"] == "/admin/"

    # When SIGTERM arrives, then serve exits cleanly
    assert _stop_server(first_start) == 0
    assert "HSI stopped." in first_start.output()
    assert "Traceback" not in first_start.output()


def test_restart_keeps_the_admin_password_and_stops_on_sigint(first_start, tmp_path):
    # Given a server that created its admin account and was stopped with CONTROL-C
    password = (tmp_path / SERVER_DATA_DIR / "admin_password").read_text().strip()
    assert _stop_server(first_start, signal.SIGINT) == 0

    # When it starts again on the same data directory
    second = _start_server(tmp_path, log_name="serve-again.log")
    try:
        # Then no new account or password is made, and the first password still logs in
        assert password not in second.output()
        assert "Created the operator account" not in second.output()
        assert (tmp_path / SERVER_DATA_DIR / "admin_password").read_text().strip() == password
        assert "Applying" not in second.output()
        login = _admin_login(second.base_url, password)
        assert login.status_code == 302
    finally:
        assert _stop_server(second) == 0
