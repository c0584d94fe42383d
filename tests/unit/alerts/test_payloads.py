"""What notifications say (CONTRACT §5.9): webhook body, test payload, e-mail subject, text and HTML."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from types import SimpleNamespace

import pytest

from alerts.payloads import (
    alert_payload,
    body_bytes,
    email_html,
    email_subject,
    email_text,
    test_payload,
    thumbnail_bytes,
)

CREATED = dt.datetime(2025, 1, 1, 22, 14, 3, tzinfo=dt.UTC)
ALERT_ID = uuid.UUID("6a1d3f0e-1111-4222-8333-944445555666")
RULE_ID = uuid.UUID("7b2e4f1f-1111-4222-8333-944445555666")


@pytest.fixture(autouse=True)
def base_url(settings):
    settings.PUBLIC_BASE_URL = "https://hsi.example.test"
    settings.TIME_ZONE = "Europe/Berlin"


def an_alert(**overrides):
    values = {
        "id": ALERT_ID,
        "kind": "event",
        "severity": "high",
        "status": "pending",
        "rule_id": RULE_ID,
        "dedup_key": "front_door:rule",
        "metadata": {"rule_name": "Night person", "matched_conditions": ["risk_score >= 60"]},
        "created_at": CREATED,
        "camera": SimpleNamespace(id="front_door", name="Front Door", status="online"),
    }
    values.update(overrides)
    return SimpleNamespace(**values)


EVENT_ITEM = {
    "id": 42,
    "camera_id": "front_door",
    "risk_score": 72,
    "risk_level": "high",
    "summary": "A person at the door <b>",
    "object_types": ["person"],
    "started_at": "2025-01-01T22:13:00Z",
    "ended_at": "2025-01-01T22:13:30Z",
    "thumbnail_url": "/api/media/detections/913",
}


def test_the_webhook_body_has_the_contract_shape():
    body = alert_payload(an_alert(), event_item=EVENT_ITEM, sent_at=CREATED)

    assert body == {
        "type": "alert.created",
        "sent_at": "2025-01-01T22:14:03Z",
        "alert": {
            "id": str(ALERT_ID),
            "kind": "event",
            "severity": "high",
            "status": "pending",
            "rule_id": str(RULE_ID),
            "rule_name": "Night person",
            "dedup_key": "front_door:rule",
            "matched_conditions": ["risk_score >= 60"],
            "created_at": "2025-01-01T22:14:03Z",
        },
        "event": {
            "id": 42,
            "risk_score": 72,
            "risk_level": "high",
            "summary": "A person at the door <b>",
            "object_types": ["person"],
            "started_at": "2025-01-01T22:13:00Z",
            "ended_at": "2025-01-01T22:13:30Z",
            "url": "https://hsi.example.test/api/events/42",
            "thumbnail_url": "https://hsi.example.test/api/media/detections/913",
        },
        "camera": {"id": "front_door", "name": "Front Door", "status": "online"},
    }


def test_camera_offline_alerts_have_a_null_event_and_rule_less_alerts_a_null_rule_id():
    body = alert_payload(an_alert(kind="camera_offline", rule_id=None), event_item=None)
    assert body["event"] is None
    assert body["alert"]["rule_id"] is None


def test_an_event_without_detections_has_a_null_thumbnail_url():
    body = alert_payload(an_alert(), event_item={**EVENT_ITEM, "thumbnail_url": None})
    assert body["event"]["thumbnail_url"] is None


def test_the_body_bytes_are_compact_utf8_json():
    data = body_bytes({"a": "é", "b": [1, 2]})
    assert data == '{"a":"é","b":[1,2]}'.encode()
    assert json.loads(data) == {"a": "é", "b": [1, 2]}


def test_the_test_payload_says_test():
    payload = test_payload(sent_at=CREATED)
    assert payload["type"] == "test"
    assert payload["sent_at"] == "2025-01-01T22:14:03Z"
    assert payload["event"] is None
    assert set(payload) >= {"alert", "camera"}


def test_the_email_subject():
    body = alert_payload(an_alert(), event_item=EVENT_ITEM)
    assert email_subject(body) == "[HSI] HIGH alert: Night person on Front Door"
    assert email_subject(body, subject_prefix="[Home]") == "[Home] HIGH alert: Night person on Front Door"


def test_the_email_text_has_summary_risk_local_time_camera_and_links():
    text = email_text(alert_payload(an_alert(), event_item=EVENT_ITEM))
    assert "A person at the door <b>" in text
    assert "72 (high)" in text
    assert "2025-01-01 23:14:03 CET" in text  # local time (Europe/Berlin)
    assert "Front Door" in text
    assert "https://hsi.example.test/api/events/42" in text
    assert "https://hsi.example.test/api/media/detections/913" in text


def test_the_email_html_escapes_values_and_links_urls():
    html = email_html(alert_payload(an_alert(), event_item=EVENT_ITEM))
    assert "A person at the door &lt;b&gt;" in html
    assert '<a href="https://hsi.example.test/api/events/42">' in html


def test_thumbnail_bytes_reads_absolute_and_data_dir_relative_paths(tmp_path, settings):
    settings.HSI_DATA_DIR = tmp_path
    (tmp_path / "thumbnails").mkdir()
    (tmp_path / "thumbnails" / "1_thumb.jpg").write_bytes(b"\xff\xd8jpeg")
    assert thumbnail_bytes("thumbnails/1_thumb.jpg") == b"\xff\xd8jpeg"
    assert thumbnail_bytes(str(tmp_path / "thumbnails" / "1_thumb.jpg")) == b"\xff\xd8jpeg"
    assert thumbnail_bytes(str(tmp_path / "missing.jpg")) is None
    assert thumbnail_bytes(None) is None
