"""/api/audit (CONTRACT §2.14): list with filters and paging, stats, detail."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from tests.factories import AuditLogFactory
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2024, 5, 10, 12, 0, tzinfo=dt.UTC)
AUDIT_KEYS = {
    "id",
    "timestamp",
    "action",
    "resource_type",
    "resource_id",
    "actor",
    "ip_address",
    "user_agent",
    "request_id",
    "details",
    "status",
}


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def test_list_is_newest_first_with_every_field(api_client):
    older = AuditLogFactory(timestamp=days_ago(2))
    tie_low = AuditLogFactory(timestamp=days_ago(1))
    tie_high = AuditLogFactory(
        timestamp=days_ago(1),
        action="camera_updated",
        actor="api_key:ops",
        ip_address="10.0.0.5",
        user_agent="curl/8",
        request_id="req-9",
        details={"changes": {"name": {"old": "A", "new": "B"}}},
    )

    response = api_client.get("/api/audit")

    assert ids(response) == [tie_high.id, tie_low.id, older.id]
    body = response.json()
    assert body["pagination"] == {"total": 3, "limit": 100, "offset": 0, "next_cursor": None, "has_more": False}
    assert body["items"][0] == {
        "id": tie_high.id,
        "timestamp": "2024-05-09T12:00:00Z",
        "action": "camera_updated",
        "resource_type": "camera",
        "resource_id": "front_door",
        "actor": "api_key:ops",
        "ip_address": "10.0.0.5",
        "user_agent": "curl/8",
        "request_id": "req-9",
        "details": {"changes": {"name": {"old": "A", "new": "B"}}},
        "status": "success",
    }
    assert set(body["items"][1]) == AUDIT_KEYS


def test_filters_narrow_the_list(api_client):
    created = AuditLogFactory(action="camera_created", timestamp=days_ago(3))
    deleted = AuditLogFactory(action="zone_deleted", resource_type="zone", resource_id="z1", timestamp=days_ago(1))
    failed = AuditLogFactory(action="auth_failed", resource_type="request", resource_id=None, status="failure")
    by_key = AuditLogFactory(action="rule_created", resource_type="alert_rule", actor="api_key:ops")

    assert set(ids(api_client.get("/api/audit?action=camera_created,zone_deleted"))) == {created.id, deleted.id}
    assert ids(api_client.get("/api/audit?action=no_such_action")) == []
    assert ids(api_client.get("/api/audit?resource_type=zone&resource_id=z1")) == [deleted.id]
    assert ids(api_client.get("/api/audit?actor=api_key:ops")) == [by_key.id]
    assert ids(api_client.get("/api/audit?status=failure")) == [failed.id]
    start, end = days_ago(3).date().isoformat(), "2024-05-09T12:00:00Z"
    assert ids(api_client.get(f"/api/audit?start_date={start}&end_date={end}")) == [deleted.id, created.id]


def test_limit_and_offset_page_through_the_list(api_client):
    rows = [AuditLogFactory(timestamp=days_ago(i)) for i in range(3)]

    response = api_client.get("/api/audit?limit=1&offset=1")

    assert ids(response) == [rows[1].id]
    assert response.json()["pagination"]["has_more"] is True and response.json()["pagination"]["total"] == 3


@pytest.mark.parametrize(
    "query, field",
    [("status=maybe", "status"), ("limit=0", "limit"), ("limit=1001", "limit"), ("end_date=soon", "end_date")],
)
def test_invalid_query_is_422_naming_the_field(api_client, query, field):
    assert field in error_fields(api_client.get(f"/api/audit?{query}"))


def test_inverted_date_range_is_400_on_list_and_stats(api_client):
    for path in ("/api/audit", "/api/audit/stats"):
        body = problem(api_client.get(f"{path}?start_date=2024-05-02&end_date=2024-05-01"), 400, "bad_request")
        assert "start_date" in body["detail"] and "end_date" in body["detail"]


def test_detail_returns_the_row_and_404_for_unknown_ids(api_client):
    row = AuditLogFactory(action="dlq_cleared", resource_type="failed_job")

    response = api_client.get(f"/api/audit/{row.id}/")

    assert response.status_code == 200 and response.json()["action"] == "dlq_cleared"
    problem(api_client.get(f"/api/audit/{row.id + 1000}"), 404, "not_found")


def test_stats_count_by_action_resource_and_status_with_recent_actors(api_client):
    AuditLogFactory(timestamp=days_ago(0.1), actor="api_key:ops")
    AuditLogFactory(timestamp=days_ago(1), actor="api_key:ops", action="camera_deleted")
    AuditLogFactory(
        timestamp=days_ago(2), actor="user:admin", status="failure", action="auth_failed", resource_type="request"
    )
    AuditLogFactory(timestamp=days_ago(30), actor="user:old")

    with time_machine.travel(NOW, tick=False):
        response = api_client.get("/api/audit/stats")
        ranged = api_client.get("/api/audit/stats?start_date=2024-05-08&end_date=2024-05-09")

    assert response.status_code == 200
    assert response.json() == {
        "total_logs": 4,
        "logs_today": 1,
        "by_action": {"camera_created": 2, "auth_failed": 1, "camera_deleted": 1},
        "by_resource_type": {"camera": 3, "request": 1},
        "by_status": {"success": 3, "failure": 1},
        "recent_actors": [{"actor": "api_key:ops", "count": 2}, {"actor": "user:admin", "count": 1}],
    }
    assert ranged.json()["total_logs"] == 2 and ranged.json()["logs_today"] == 0
    assert ranged.json()["by_status"] == {"success": 1, "failure": 1}
