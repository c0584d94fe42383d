"""``manage.py watch_cameras [--polling] [--root PATH]`` (CONTRACT §8.1): watches until SIGINT/SIGTERM."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection, connections

from hsi.dispatch import local_pool_running
from pipeline.models import IngestedFile
from pipeline.watcher import heartbeat_key
from tests.images import jpeg_bytes
from tests.integration.ingest_support import ensure_process_file_task, wait_for, write

pytestmark = pytest.mark.django_db(transaction=True)

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _quick(settings):
    ensure_process_file_task()
    settings.WATCHER_DEBOUNCE_SECONDS = 0.05
    settings.FILE_STABILITY_SECONDS = 0.2
    settings.WATCHER_POLL_INTERVAL_SECONDS = 0.1


def interrupt_after(steps) -> None:
    """Run ``steps`` (on a helper thread), then interrupt the command like CONTROL-C does."""
    try:
        steps()
    finally:
        connections.close_all()
        os.kill(os.getpid(), signal.SIGINT)


def test_the_command_watches_the_given_root_until_sigint(tmp_path, settings):
    root = tmp_path / "cams"  # missing: created at start
    stdout = io.StringIO()
    seen = {}

    def operator():
        wait_for(lambda: cache.get(heartbeat_key()), timeout=30)
        seen["beat"] = cache.get(heartbeat_key())
        seen["path"] = write(root / "porch" / "a.jpg", jpeg_bytes(seed=1))
        wait_for(lambda: IngestedFile.objects.filter(path=str(seen["path"])).exists(), timeout=30)

    helper = threading.Thread(target=interrupt_after, args=(operator,), daemon=True)
    previous_handler = signal.getsignal(signal.SIGINT)
    helper.start()
    call_command("watch_cameras", "--polling", "--root", str(root), stdout=stdout)
    helper.join(timeout=10)

    assert root.is_dir() and root == settings.FOSCAM_BASE_PATH
    assert (seen["beat"]["mode"], seen["beat"]["root"]) == ("polling", str(root))
    row = IngestedFile.objects.get()
    assert (row.path, row.camera_id, row.status) == (str(seen["path"]), "porch", "pending")
    output = stdout.getvalue()
    assert f"Watching {root} (polling)" in output and "Watcher stopped." in output
    assert signal.getsignal(signal.SIGINT) is previous_handler  # handlers restored
    assert cache.get(heartbeat_key()) is None


def test_without_a_broker_files_are_processed_in_process(tmp_path, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.RETRY_BASE_DELAY_SECONDS = 0
    root = tmp_path / "cams"

    def operator():
        wait_for(lambda: cache.get(heartbeat_key()), timeout=30)
        path = write(root / "porch" / "a.jpg", jpeg_bytes(seed=3))
        done = IngestedFile.objects.filter(path=str(path), status__in=("processed", "no_detections", "failed"))
        wait_for(done.exists, timeout=60)

    helper = threading.Thread(target=interrupt_after, args=(operator,), daemon=True)
    helper.start()
    call_command("watch_cameras", "--root", str(root), stdout=io.StringIO())
    helper.join(timeout=10)

    assert not local_pool_running()
    assert IngestedFile.objects.get().status in ("processed", "no_detections", "failed")


def test_a_root_that_cannot_be_created_is_a_command_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CommandError, match="Cannot watch"):
        call_command("watch_cameras", "--root", str(blocker / "cams"), stdout=io.StringIO())


def _database_url() -> str:
    database = connection.settings_dict
    host = database.get("HOST") or "127.0.0.1"
    port = database.get("PORT") or 5432
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    return f"postgres://{database['USER']}{password}@{host}:{port}/{database['NAME']}"


def test_a_real_watch_cameras_process_ingests_files_and_stops_on_sigterm(tmp_path):
    root = tmp_path / "cams"
    environment = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "HSI_KEY_PREFIX": django_settings.HSI_KEY_PREFIX,
        "FOSCAM_BASE_PATH": str(tmp_path / "unused"),
        "HSI_DATA_DIR": str(tmp_path / "data"),
        "WATCHER_DEBOUNCE_SECONDS": "0.05",
        "FILE_STABILITY_SECONDS": "0.2",
        "WATCHER_POLL_INTERVAL_SECONDS": "0.1",
        "AUTO_CREATE_CAMERAS": "true",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "watch_cameras", "--root", str(root)],
        cwd=REPOSITORY,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: (root.is_dir() and cache.get(heartbeat_key())) or process.poll() is not None, timeout=60)
        assert process.poll() is None, process.stdout.read()
        path = write(root / "driveway" / "2024" / "a.jpg", jpeg_bytes(seed=2))
        wait_for(lambda: IngestedFile.objects.filter(path=str(path)).exists(), timeout=30)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "(native)" in output and "Watcher stopped." in output
    assert IngestedFile.objects.get().camera_id == "driveway"
