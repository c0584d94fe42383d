"""/api/logs (CONTRACT §2.13, §10): list with filters and paging, today's stats, detail, frontend log posts."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
import time_machine

from system.models import LogEntry
from tests.factories import LogEntryFactory, NotificationChannelFactory
from tests.fakes.webhook_sink import WebhookSink
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
LOG_KEYS = {
    "id",
    "timestamp",
    "level",
    "component",
    "message",
    "camera_id",
    "event_id",
    "detection_id",
    "request_id",
    "duration_ms",
    "extra",
    "source",
    "user_agent",
    "url",
}


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


@pytest.fixture
def sink():
    server = WebhookSink().start()
    yield server
    server.stop()


# --- GET /api/logs ------------------------------------------------------------------------------------------------


def test_list_is_newest_first_with_every_field(api_client):
    older = LogEntryFactory(timestamp=at(0), level="ERROR", component="hsi.pipeline", message="boom")
    tie_low = LogEntryFactory(timestamp=at(5))
    tie_high = LogEntryFactory(
        timestamp=at(5),
        camera_id="front_door",
        event_id=42,
        detection_id=913,
        request_id="req-1",
        duration_ms=12,
        extra={"attempt": 2},
        user_agent="UA",
        url="http://ui/x",
    )

    response = api_client.get("/api/logs")

    assert ids(response) == [tie_high.id, tie_low.id, older.id]
    body = response.json()
    assert body["pagination"] == {"total": 3, "limit": 100, "offset": 0, "next_cursor": None, "has_more": False}
    assert set(body["items"][0]) == LOG_KEYS
    assert body["items"][0] == {
        "id": tie_high.id,
        "timestamp": "2024-05-01T12:05:00Z",
        "level": "INFO",
        "component": "pipeline",
        "message": tie_high.message,
        "camera_id": "front_door",
        "event_id": 42,
        "detection_id": 913,
        "request_id": "req-1",
        "duration_ms": 12,
        "extra": {"attempt": 2},
        "source": "backend",
        "user_agent": "UA",
        "url": "http://ui/x",
    }


def test_filters_narrow_the_list(api_client):
    error = LogEntryFactory(level="ERROR", component="hsi.alerts", camera_id="garage", message="SMTP refused")
    warning = LogEntryFactory(level="WARNING", component="hsi.pipeline", event_id=7, request_id="abc")
    info = LogEntryFactory(level="INFO", source="frontend", timestamp=at(0))
    debug = LogEntryFactory(level="DEBUG", timestamp=at(-60 * 24))
    mine = {error.id, warning.id, info.id, debug.id}  # (a line the app logs meanwhile is not one of them)

    assert set(ids(api_client.get("/api/logs?level=error,Warning"))) & mine == {error.id, warning.id}
    assert set(ids(api_client.get("/api/logs?min_level=warning"))) & mine == {error.id, warning.id}
    assert ids(api_client.get("/api/logs?component=hsi.alerts")) == [error.id]
    assert ids(api_client.get("/api/logs?camera_id=garage")) == [error.id]
    assert ids(api_client.get("/api/logs?event_id=7")) == [warning.id]
    assert ids(api_client.get("/api/logs?request_id=abc")) == [warning.id]
    assert ids(api_client.get("/api/logs?source=frontend")) == [info.id]
    assert ids(api_client.get("/api/logs?search=smtp")) == [error.id]
    assert ids(api_client.get("/api/logs?start_date=2024-04-30&end_date=2024-04-30")) == [debug.id]
    assert ids(api_client.get("/api/logs?end_date=2024-05-01T12:00:00")) == [info.id, debug.id]


def test_limit_and_offset_page_through_the_list(api_client):
    rows = [LogEntryFactory(timestamp=at(i)) for i in range(3)]

    response = api_client.get("/api/logs?limit=2&offset=1")

    assert ids(response) == [rows[1].id, rows[0].id]
    assert response.json()["pagination"] == {
        "total": 3,
        "limit": 2,
        "offset": 1,
        "next_cursor": None,
        "has_more": False,
    }
    assert ids(api_client.get("/api/logs?limit=1"))[0] == rows[2].id
    assert api_client.get("/api/logs?limit=1").json()["pagination"]["has_more"] is True


@pytest.mark.parametrize(
    "query, field",
    [
        ("level=LOUD", "level"),
        ("min_level=verbose", "min_level"),
        ("source=mobile", "source"),
        ("search=" + "x" * 201, "search"),
        ("event_id=abc", "event_id"),
        ("event_id=1.5", "event_id"),
        ("event_id=-1", "event_id"),
        ("start_date=yesterday", "start_date"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("offset=-1", "offset"),
    ],
)
def test_invalid_query_is_422_naming_the_field(api_client, query, field):
    assert field in error_fields(api_client.get(f"/api/logs?{query}"))


def test_inverted_date_range_is_400(api_client):
    body = problem(api_client.get("/api/logs?start_date=2024-05-02&end_date=2024-05-01"), 400, "bad_request")
    assert "start_date" in body["detail"] and "end_date" in body["detail"]


# --- GET /api/logs/{id} -------------------------------------------------------------------------------------------


def test_detail_returns_the_entry_and_404_for_unknown_ids(api_client):
    entry = LogEntryFactory(message="hello")

    response = api_client.get(f"/api/logs/{entry.id}/")

    assert response.status_code == 200
    assert response.json()["message"] == "hello" and set(response.json()) == LOG_KEYS
    problem(api_client.get(f"/api/logs/{entry.id + 1000}"), 404, "not_found")
    problem(api_client.get("/api/logs/abc"), 404, "not_found")


# --- GET /api/logs/stats ------------------------------------------------------------------------------------------


def test_stats_count_the_local_day(api_client, settings):
    settings.TIME_ZONE = "America/New_York"  # 2024-05-01 local = 04:00Z on May 1st .. 04:00Z on May 2nd
    LogEntryFactory(timestamp=dt.datetime(2024, 5, 1, 3, 59, tzinfo=dt.UTC), level="ERROR")  # April 30th local
    LogEntryFactory(timestamp=dt.datetime(2024, 5, 1, 4, 0, tzinfo=dt.UTC), level="ERROR", component="hsi.alerts")
    LogEntryFactory(timestamp=at(0), level="CRITICAL", component="hsi.pipeline")
    LogEntryFactory(timestamp=at(1), level="WARNING", component="hsi.pipeline")
    LogEntryFactory(timestamp=at(2), level="INFO", component="hsi.pipeline")

    with time_machine.travel(dt.datetime(2024, 5, 2, 3, 0, tzinfo=dt.UTC), tick=False):
        response = api_client.get("/api/logs/stats")

    assert response.status_code == 200
    assert response.json() == {
        "total_today": 4,
        "errors_today": 2,
        "warnings_today": 1,
        "by_level": {"ERROR": 1, "CRITICAL": 1, "WARNING": 1, "INFO": 1},
        "by_component": {"hsi.pipeline": 3, "hsi.alerts": 1},
        "top_component": "hsi.pipeline",
    }


def test_stats_of_an_empty_day(api_client):
    LogEntryFactory(timestamp=at(-60 * 24))  # the day before

    with time_machine.travel(T0, tick=False):
        response = api_client.get("/api/logs/stats")

    assert response.json() == {
        "total_today": 0,
        "errors_today": 0,
        "warnings_today": 0,
        "by_level": {},
        "by_component": {},
        "top_component": None,
    }


# --- POST /api/logs/frontend --------------------------------------------------------------------------------------


def test_frontend_log_is_stored_with_source_frontend_and_the_browser_user_agent(api_client):
    response = api_client.post(
        "/api/logs/frontend",
        {"level": "error", "component": "EventTimeline", "message": "render failed", "extra": {"stack": "at x"}},
        format="json",
        HTTP_USER_AGENT="Mozilla/5.0 Test",
        HTTP_X_REQUEST_ID="front-1",
    )

    assert response.status_code == 201, response.content
    entry = LogEntry.objects.get(pk=response.json()["id"])
    assert response.json() == {"id": entry.id, "status": "created"}
    assert (entry.level, entry.component, entry.message, entry.source) == (
        "ERROR",
        "EventTimeline",
        "render failed",
        "frontend",
    )
    assert entry.extra == {"stack": "at x"} and entry.user_agent == "Mozilla/5.0 Test"
    assert entry.request_id == "front-1" and entry.url is None


def test_frontend_log_keeps_the_user_agent_and_url_it_was_sent(api_client):
    response = api_client.post(
        "/api/logs/frontend",
        {"level": "Info", "component": "App", "message": "hi", "url": "http://ui/cams", "user_agent": "Sent UA"},
        format="json",
        HTTP_USER_AGENT="Header UA",
    )

    assert response.status_code == 201
    entry = LogEntry.objects.get(pk=response.json()["id"])
    assert (entry.user_agent, entry.url, entry.level) == ("Sent UA", "http://ui/cams", "INFO")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"component": "App", "message": "m"}, "level"),
        ({"level": "LOUD", "component": "App", "message": "m"}, "level"),
        ({"level": "INFO", "message": "m"}, "component"),
        ({"level": "INFO", "component": "", "message": "m"}, "component"),
        ({"level": "INFO", "component": "c" * 51, "message": "m"}, "component"),
        ({"level": "INFO", "component": "App", "message": ""}, "message"),
        ({"level": "INFO", "component": "App", "message": "m" * 2001}, "message"),
        ({"level": "INFO", "component": "App", "message": "m", "extra": [1]}, "extra"),
        ({"level": "INFO", "component": "App", "message": "m", "extra": {"blob": "x" * 8200}}, "extra"),
        ({"level": "INFO", "component": "App", "message": "m", "url": "u" * 2001}, "url"),
        ({"level": "INFO", "component": "App", "message": "m", "user_agent": "a" * 501}, "user_agent"),
    ],
)
def test_invalid_frontend_log_is_422_naming_the_field(api_client, body, field):
    before = LogEntry.objects.count()

    assert field in error_fields(api_client.post("/api/logs/frontend", body, format="json"))
    assert LogEntry.objects.filter(source="frontend").count() == 0 and LogEntry.objects.count() == before


def test_text_the_database_refuses_in_extra_is_stored_with_replacement_characters(api_client):
    body = {"level": "WARNING", "component": "App", "message": "m", "extra": {"k\x00ey": ["a\x00b", "\ud800"]}}

    response = api_client.post("/api/logs/frontend", json.dumps(body), content_type="application/json")

    assert response.status_code == 201, response.content
    detail = api_client.get(f"/api/logs/{response.json()['id']}").json()
    assert detail["extra"] == {"k\ufffdey": ["a\ufffdb", "?"]}


@pytest.mark.parametrize("field", ["component", "message", "url", "user_agent"])
def test_nul_in_a_text_field_of_a_frontend_log_is_422_naming_it(api_client, field):
    body = {"level": "INFO", "component": "App", "message": "m", field: "a\x00b"}

    assert field in error_fields(api_client.post("/api/logs/frontend", body, format="json"))
    assert not LogEntry.objects.filter(source="frontend").exists()


def test_frontend_log_below_the_stored_level_is_not_stored(api_client, settings):
    settings.LOG_DB_MIN_LEVEL = "WARNING"

    response = api_client.post(
        "/api/logs/frontend", {"level": "INFO", "component": "App", "message": "noise"}, format="json"
    )

    assert response.status_code == 202
    assert response.json() == {"id": None, "status": "ignored"}
    assert not LogEntry.objects.filter(source="frontend").exists()


def test_backend_log_call_is_listed_with_the_ids_and_extras_it_carried(api_client):
    logging.getLogger("hsi.tests.logs").warning(
        "camera %s went quiet", "garage", extra={"camera_id": "garage", "duration_ms": 7.4, "reason": "silence"}
    )

    response = api_client.get("/api/logs?component=hsi.tests.logs")

    item = response.json()["items"][0]
    assert item["message"] == "camera garage went quiet" and item["level"] == "WARNING"
    assert (item["camera_id"], item["duration_ms"], item["extra"]) == ("garage", 7, {"reason": "silence"})


def test_a_line_logged_while_serving_a_request_carries_its_request_id(api_client, settings):
    settings.ADMIN_API_ENABLED = True

    seeded = api_client.post(
        "/api/admin/seed", {"cameras": 1, "events": 0}, format="json", HTTP_X_REQUEST_ID="seed-req-1"
    )
    response = api_client.get("/api/logs?request_id=seed-req-1&component=hsi.system.seeding")

    assert seeded.status_code == 201
    (item,) = response.json()["items"]
    assert item["message"].startswith("Seeded demo data") and item["source"] == "backend"
    assert item["request_id"] == "seed-req-1" and item["level"] == "INFO"


def test_third_party_request_lines_are_not_stored_so_webhook_tokens_stay_out_of_the_log(api_client, sink):
    # httpx logs every request's full URL at INFO; a Slack-style webhook carries its token in the URL
    channel = NotificationChannelFactory(config={"url": f"{sink.url}/hooks/T000/SECRETTOKEN?token=abc"})

    sent = api_client.post(f"/api/notifications/channels/{channel.id}/test")

    assert sent.status_code == 200 and sent.json()["success"] is True
    assert len(sink.requests_to("/hooks/T000/SECRETTOKEN")) == 1
    assert api_client.get("/api/logs?search=SECRETTOKEN").json()["pagination"]["total"] == 0
    assert not LogEntry.objects.filter(component__in=["httpx", "httpcore"]).exists()


def test_the_openapi_schema_documents_the_ignored_frontend_post_and_the_integer_event_id(api_client):
    response = api_client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    frontend = paths["/api/logs/frontend/"]["post"]["responses"]
    assert {"201", "202", "422"} <= set(frontend) and "LOG_DB_MIN_LEVEL" in frontend["202"]["description"]
    parameters = {p["name"]: p["schema"] for p in paths["/api/logs/"]["get"]["parameters"]}
    assert parameters["event_id"]["type"] == "integer" and parameters["limit"]["maximum"] == 1000
