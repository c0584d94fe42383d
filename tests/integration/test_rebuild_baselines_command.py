"""``manage.py rebuild_baselines [--camera ID]`` (CONTRACT §8.1, §4.11)."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from events.models import ActivityBaseline, ClassBaseline
from system.models import AuditLog
from tests.factories import CameraFactory, DetectionFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2024, 6, 5, 10, 20, tzinfo=dt.UTC)


def rebuild(*args: str) -> str:
    stdout = io.StringIO()
    call_command("rebuild_baselines", *args, stdout=stdout)
    return stdout.getvalue()


@pytest.fixture
def cameras(time_machine):
    time_machine.move_to(NOW, tick=False)
    front = CameraFactory(id="front", created_at=NOW - dt.timedelta(days=60))
    back = CameraFactory(id="back", created_at=NOW - dt.timedelta(days=60))
    for week in range(4):
        DetectionFactory(
            camera=front, detected_at=dt.datetime(2024, 5, 13, 8, 5, tzinfo=dt.UTC) + dt.timedelta(weeks=week)
        )
    DetectionFactory(camera=back, detected_at=dt.datetime(2024, 6, 4, 22, 0, tzinfo=dt.UTC), object_type="cat")
    return front, back


def test_rebuilds_every_camera_and_says_so(cameras):
    assert rebuild() == "Rebuilt baselines for 2 cameras\n"

    assert ActivityBaseline.objects.filter(camera_id="front").count() == 168
    assert ActivityBaseline.objects.get(camera_id="front", day_of_week=0, hour=8).avg_count == 1.0
    assert list(ClassBaseline.objects.filter(camera_id="back").values_list("object_class", "hour")) == [("cat", 22)]
    [audit] = AuditLog.objects.filter(action="baseline_rebuilt")
    assert (audit.resource_type, audit.resource_id, audit.actor) == ("camera", None, "manage.py rebuild_baselines")
    assert audit.details == {"cameras": 2, "scope": "all"}


def test_camera_option_rebuilds_only_that_camera(cameras):
    assert rebuild("--camera", "back") == "Rebuilt baselines for 1 camera\n"

    assert not ActivityBaseline.objects.filter(camera_id="front").exists()
    assert ActivityBaseline.objects.filter(camera_id="back").count() == 168
    assert AuditLog.objects.get(action="baseline_rebuilt").resource_id == "back"


def test_an_unknown_camera_is_an_error(cameras):
    with pytest.raises(CommandError, match="Camera nope not found"):
        rebuild("--camera", "nope")

    assert not ActivityBaseline.objects.exists()
    assert not AuditLog.objects.exists()


def test_no_cameras_rebuilds_nothing():
    assert rebuild() == "Rebuilt baselines for 0 cameras\n"


@pytest.mark.django_db(transaction=True)
def test_runs_as_a_real_command_line():
    """``python manage.py rebuild_baselines`` in its own process, against this test database."""
    environment = {
        **os.environ,
        "SECRET_KEY": "x",
        "DATABASE_URL": _test_database_url(),
        "HSI_DATA_DIR": str(django_settings.HSI_DATA_DIR),
    }
    CameraFactory(id="front", created_at=timezone.now() - dt.timedelta(days=3))

    result = subprocess.run(
        [sys.executable, "manage.py", "rebuild_baselines", "--camera", "front"],
        cwd=Path(__file__).resolve().parents[2],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Rebuilt baselines for 1 camera"
    assert ActivityBaseline.objects.filter(camera_id="front").count() == 168


def _test_database_url() -> str:
    database = django_settings.DATABASES["default"]
    user = database.get("USER") or "postgres"
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    host, port = database.get("HOST") or "127.0.0.1", database.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{database['NAME']}"
