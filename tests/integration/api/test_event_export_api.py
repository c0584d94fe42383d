"""GET /api/events/export: CSV format, filters, truncation, CSV-injection guard, audit (CONTRACT §2.5, §6.6, §6.8)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import time_machine

from system.models import AuditLog
from tests.factories import CameraFactory, EventFactory
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
HEADER = "Event ID,Camera,Started At,Ended At,Risk Score,Risk Level,Summary,Object Types,Detections,Reviewed,Notes"


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def export(api_client, **params):
    response = api_client.get("/api/events/export", params)
    assert response.status_code == 200, response.content if not response.streaming else ""
    text = b"".join(response.streaming_content).decode("utf-8")
    return response, text


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))[1:]


def test_export_writes_the_header_and_rows_newest_first(api_client):
    camera = CameraFactory(id="front_door", name="Front Door")
    older = EventFactory(
        camera=camera,
        started_at=at(0),
        ended_at=at(0.5),
        risk_score=72,
        risk_level="high",
        summary='Person "at" door, ringing',
        object_types="car,person",
        detection_count=3,
        reviewed=True,
        notes="line one\nline two",
    )
    newer = EventFactory(
        camera=camera, started_at=at(10), ended_at=at(10), risk_score=None, risk_level=None, object_types="", notes=None
    )
    EventFactory(started_at=at(5), deleted_at=at(6))

    with time_machine.travel(dt.datetime(2024, 6, 2, 3, 4, 5, tzinfo=dt.UTC), tick=False):
        response, text = export(api_client)

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="events_export_20240602_030405.csv"'
    assert not response.has_header("X-Export-Truncated")
    assert text.split("\r\n")[0] == HEADER
    assert rows(text) == [
        [
            str(newer.id),
            *[
                "Front Door",
                "2024-05-01T12:10:00Z",
                "2024-05-01T12:10:00Z",
                "",
                "",
                "1 person detected",
                "",
                "0",
                "No",
                "",
            ],
        ],
        [
            str(older.id),
            *["Front Door", "2024-05-01T12:00:00Z", "2024-05-01T12:00:30Z", "72", "high"],
            *['Person "at" door, ringing', "car, person", "3", "Yes", "line one\nline two"],
        ],
    ]
    assert '"Person ""at"" door, ringing"' in text  # RFC 4180 quoting
    assert text.endswith("\r\n")


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("plain = text", "plain = text"),
    ],
)
def test_text_cells_pass_the_csv_injection_guard(api_client, value, written):
    camera = CameraFactory(name=value)
    EventFactory(camera=camera, summary=value, notes=value, risk_score=5)

    _, text = export(api_client)

    row = rows(text)[0]
    assert row[1] == written and row[6] == written and row[10] == written
    assert row[4] == "5"  # numbers stay numbers


def test_filters_apply_and_are_audited_with_the_row_count(api_client):
    front = CameraFactory(id="front", name="Front")
    kept = EventFactory(camera=front, risk_level="high", started_at=at(1))
    EventFactory(camera=front, risk_level="low", started_at=at(2))
    EventFactory(risk_level="high", started_at=at(3))

    _, text = export(api_client, camera_id="front", risk_level="high", start_date="2024-05-01")

    assert [row[0] for row in rows(text)] == [str(kept.id)]
    audit = AuditLog.objects.get(action="events_exported")
    assert audit.resource_type == "event" and audit.status == "success"
    assert audit.details["row_count"] == 1 and audit.details["truncated"] is False
    assert audit.details["filters"] == {
        "camera_id": ["front"],
        "risk_level": ["high"],
        "start_date": "2024-05-01T00:00:00Z",
    }


def test_export_is_capped_at_export_max_rows(api_client, settings):
    settings.EXPORT_MAX_ROWS = 3
    events = [EventFactory(started_at=at(minutes)) for minutes in range(5)]

    response, text = export(api_client)

    assert response["X-Export-Truncated"] == "true"
    assert [row[0] for row in rows(text)] == [str(e.id) for e in events[:1:-1]]
    assert AuditLog.objects.get(action="events_exported").details["row_count"] == 3


def test_export_streams_in_chunks(api_client, monkeypatch):
    monkeypatch.setattr("events.export.EXPORT_CHUNK_ROWS", 2)  # a setting of the module, not our logic
    same_time = [EventFactory(started_at=at(1)) for _ in range(3)]
    events = [EventFactory(started_at=at(minutes)) for minutes in (0, 2)]

    response, text = export(api_client)

    assert response.streaming
    expected = [events[1].id, *sorted((e.id for e in same_time), reverse=True), events[0].id]
    assert [int(row[0]) for row in rows(text)] == expected


def test_invalid_filters_are_rejected(api_client):
    assert "risk_level" in error_fields(api_client.get("/api/events/export", {"risk_level": "extreme"}))
    response = api_client.get("/api/events/export", {"start_date": "2024-05-02", "end_date": "2024-05-01"})
    problem(response, 400, "bad_request")
    assert not AuditLog.objects.filter(action="events_exported").exists()
