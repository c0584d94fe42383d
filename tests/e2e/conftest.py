"""Fixtures of the distributed e2e tests: a ``Deployment`` on pytest-django's test database.

The child processes share the test database (its name is read inside a ``transactional_db`` test, so they see
the rows the test commits and the test sees theirs) and get a Redis key prefix of their own under this xdist
worker's prefix, so the harness's per-test clean-up removes their keys too.
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.e2e.processes import Deployment, database_url


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long e2e runs (the 5,000-file burst); deselect with -m 'not slow'")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    deployment = getattr(item, "_hsi_deployment", None)
    if report.failed and deployment is not None:
        report.sections.append(("child process logs", deployment.logs()))


@pytest.fixture
def deployment(request, transactional_db, settings, tmp_path):
    """An install whose processes the test starts (``.worker()``, ``.beat()``, ``.watcher()``, ``.web()``)."""
    from django.db import connection

    foscam = tmp_path / "foscam"
    data = tmp_path / "data"
    foscam.mkdir(exist_ok=True)
    data.mkdir(exist_ok=True)
    install = Deployment(
        database_url=database_url(connection.settings_dict),
        redis_url=settings.REDIS_URL or os.environ["REDIS_URL"],
        workdir=tmp_path,
        foscam_root=foscam,
        data_dir=data,
        key_prefix=f"{settings.HSI_KEY_PREFIX}:e2e:{uuid.uuid4().hex[:8]}",
    )
    request.node._hsi_deployment = install
    yield install
    install.stop_all()
    install.delete_redis_keys()
    connection.close()
