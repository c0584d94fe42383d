"""``POST /api/system/cleanup`` (CONTRACT §2.11, §10): runs retention synchronously, or counts with ``dry_run``."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from events.models import Detection
from system.models import AuditLog
from system.retention import COUNT_KEYS
from tests.factories import CameraFactory, DetectionFactory
from tests.problems import error_fields

pytestmark = pytest.mark.django_db

BODY_KEYS = {"dry_run", *COUNT_KEYS, "cutoffs", "duration_ms"}


@pytest.fixture
def old_detection(settings):
    settings.RETENTION_DAYS = 30
    return DetectionFactory(camera=CameraFactory(), detected_at=timezone.now() - dt.timedelta(days=31))


def test_cleanup_deletes_old_data_and_answers_with_the_counts(api_client, old_detection):
    response = api_client.post("/api/system/cleanup", {}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == BODY_KEYS
    assert body["dry_run"] is False and body["detections_deleted"] == 1
    assert body["cutoffs"]["detections"].endswith("Z")
    assert not Detection.objects.exists()
    audit = AuditLog.objects.get(action="cleanup_executed")
    assert (audit.resource_type, audit.status, audit.details["detections_deleted"]) == ("system", "success", 1)


@pytest.mark.parametrize("send", [{"data": {"dry_run": True}, "format": "json"}, {"path": "?dry_run=yes"}])
def test_a_dry_run_from_the_body_or_the_query_counts_and_changes_nothing(api_client, old_detection, send):
    path = "/api/system/cleanup/" + send.get("path", "")
    response = api_client.post(path, send.get("data"), format=send.get("format"))

    assert response.status_code == 200, response.content
    assert response.json()["dry_run"] is True and response.json()["detections_deleted"] == 1
    assert Detection.objects.count() == 1
    assert not AuditLog.objects.filter(action="cleanup_executed").exists()


@pytest.mark.parametrize("send", [{"data": {"dry_run": "yes"}, "format": "json"}, {"path": "?dry_run=maybe"}])
def test_a_dry_run_that_is_not_a_boolean_is_422(api_client, old_detection, send):
    response = api_client.post(
        "/api/system/cleanup" + send.get("path", ""), send.get("data"), format=send.get("format")
    )

    assert error_fields(response) == {"dry_run"}
    assert Detection.objects.count() == 1


def test_cleanup_is_post_only(api_client):
    assert api_client.get("/api/system/cleanup").status_code == 405
