"""Test harness (DESIGN §4).

- Real PostgreSQL at ``DATABASE_URL`` (default 127.0.0.1:5432, user postgres); pytest-django gives every xdist
  worker its own database (``test_hsi_gw0``, ...). When nothing answers and a Docker engine exists, a
  PostgreSQL container is started with testcontainers; otherwise the run stops with a clear message.
- Real Redis at ``REDIS_URL`` (default 127.0.0.1:6379/0) with a per-worker key prefix for the cache, the
  channel layer and Celery, so workers never see each other's keys.
- Every test gets its own camera root (``FOSCAM_BASE_PATH``) and data directory (``HSI_DATA_DIR``).

This module runs before Django's settings are loaded, so it can set the environment they are read from.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from urllib.parse import urlparse

import pytest

pytest_plugins = ["tests.fakes.detector_server", "tests.fakes.llm_server"]

_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
_RUN_ID = uuid.uuid4().hex[:8]
_containers: list = []


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def _docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _ensure_postgres() -> None:
    url = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hsi")
    if not url.startswith("postgres") or _reachable(url, 5432):
        return
    if not _docker_available():
        raise pytest.UsageError(
            f"No PostgreSQL answers at {urlparse(url).hostname}:{urlparse(url).port or 5432} and no Docker engine "
            "is available for testcontainers. Start PostgreSQL (./run test does) or set DATABASE_URL."
        )
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer("postgres:15-alpine", driver=None).start()
    _containers.append(container)
    os.environ["DATABASE_URL"] = container.get_connection_url()


def _ensure_redis() -> None:
    url = os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    if _reachable(url, 6379):
        return
    if not _docker_available():
        raise pytest.UsageError(
            f"No Redis answers at {url} and no Docker engine is available for testcontainers. "
            "Start Redis (./run test does) or set REDIS_URL."
        )
    from testcontainers.redis import RedisContainer

    container = RedisContainer("redis:7-alpine").start()
    _containers.append(container)
    host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
    os.environ["REDIS_URL"] = f"redis://{host}:{port}/0"


def _configure_environment() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hsi.settings")
    os.environ.setdefault("SECRET_KEY", "hsi-tests-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    os.environ["HSI_KEY_PREFIX"] = f"hsitest:{_RUN_ID}:{_WORKER}"
    scratch = tempfile.mkdtemp(prefix=f"hsi-tests-{_WORKER}-")
    os.environ.setdefault("HSI_DATA_DIR", os.path.join(scratch, "data"))
    os.environ.setdefault("FOSCAM_BASE_PATH", os.path.join(scratch, "foscam"))
    _ensure_postgres()
    _ensure_redis()


_configure_environment()

from django.conf import settings as _settings  # noqa: E402

from system import logging as _db_logging  # noqa: E402

_settings.DATABASES  # noqa: B018 - load settings now, so pytest-django sets Django up in pytest_configure


def _apply_worker_key_prefix() -> None:
    """Give this process its own Redis key prefix, even when settings were loaded before this module ran.

    xdist workers inherit the controller's environment, so pytest-django may have read ``HSI_KEY_PREFIX`` of the
    controller before this conftest could set the worker's own; the prefix is patched in place before any cache,
    channel layer or Celery connection is created.
    """
    prefix = os.environ["HSI_KEY_PREFIX"]
    _settings.HSI_KEY_PREFIX = prefix
    if "KEY_PREFIX" in _settings.CACHES["default"]:
        _settings.CACHES["default"]["KEY_PREFIX"] = prefix
    layer_config = _settings.CHANNEL_LAYERS["default"].get("CONFIG")
    if layer_config is not None:
        layer_config["prefix"] = f"{prefix}:asgi"
    _settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = f"{prefix}:celery:"


_apply_worker_key_prefix()
_db_logging.track_committed_rows()  # see the _no_committed_log_rows fixture
# Password hashing at production strength costs ~1.7 s per user on this machine; tests need no such strength.
_settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pytest_sessionfinish(session, exitstatus):
    _delete_prefixed_keys()
    for container in _containers:
        container.stop()


def _delete_prefixed_keys() -> None:
    from django.conf import settings

    if not settings.REDIS_URL:
        return
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{settings.HSI_KEY_PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _isolated_state(settings, tmp_path):
    """Each test: its own camera root and data directory, and a cache that starts empty."""
    foscam = tmp_path / "foscam"
    data = tmp_path / "data"
    foscam.mkdir()
    data.mkdir()
    settings.FOSCAM_BASE_PATH = foscam
    settings.HSI_DATA_DIR = data
    yield
    _delete_prefixed_keys()
    from django.core.cache import cache

    from pipeline.previews import previews_clear

    previews_clear()  # a preview one test's ingest kept is never another test's

    if "locmem" in settings.CACHES["default"]["BACKEND"]:
        cache.clear()


@pytest.fixture(autouse=True)
def _no_committed_log_rows():
    """LogEntry rows committed behind the test's transaction (the log handler's background writer for async code,
    other threads) are deleted after the test, so no later test sees them. No query unless such rows exist."""
    if _db_logging.has_committed_rows():  # left by a thread after the previous test ended
        _db_logging.discard_committed_rows()
    yield
    if _db_logging.has_committed_rows():
        _db_logging.discard_committed_rows()


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def foscam_root(settings):
    return settings.FOSCAM_BASE_PATH


@pytest.fixture
def data_dir(settings):
    return settings.HSI_DATA_DIR


@pytest.fixture
def events_stream():
    """Messages broadcast to ``/ws/events`` clients during the test (this worker's own key prefix)."""
    from tests.streams import GroupStream

    stream = GroupStream("hsi.events")
    yield stream
    stream.close()
