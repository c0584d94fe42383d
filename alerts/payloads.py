"""What notifications say (CONTRACT §5.9): the webhook body (also the MQTT alert payload), the synthetic ``test``
payload, and the e-mail subject, text and HTML built from that body."""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from alerts.filtering import local_zone
from hsi.timeutils import utc_iso

TEST_ALERT_ID = "00000000-0000-0000-0000-000000000000"


def absolute_url(path: str | None) -> str | None:
    """``PUBLIC_BASE_URL`` + ``path`` (None stays None)."""
    if path is None:
        return None
    return f"{str(settings.PUBLIC_BASE_URL).rstrip('/')}{path}"


def body_bytes(payload: dict) -> bytes:
    """The exact bytes sent for a payload (webhook body, MQTT message): compact UTF-8 JSON."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def event_payload(event_item: dict | None) -> dict | None:
    """The ``event`` object of the webhook body from an Event list item (§2.5)."""
    if event_item is None:
        return None
    return {
        "id": event_item["id"],
        "risk_score": event_item["risk_score"],
        "risk_level": event_item["risk_level"],
        "summary": event_item["summary"],
        "object_types": list(event_item["object_types"]),
        "started_at": event_item["started_at"],
        "ended_at": event_item["ended_at"],
        "url": absolute_url(f"/api/events/{event_item['id']}"),
        "thumbnail_url": absolute_url(event_item.get("thumbnail_url")),
    }


def alert_payload(alert, *, event_item: dict | None = None, sent_at: dt.datetime | None = None) -> dict:
    """The webhook body of §5.9 for ``alert`` (with ``camera`` loaded). ``event_item`` is the event's list item
    (``events.selectors.event_list_item``); None for camera_offline alerts."""
    metadata = alert.metadata or {}
    camera = alert.camera
    return {
        "type": "alert.created",
        "sent_at": utc_iso(sent_at or timezone.now()),
        "alert": {
            "id": str(alert.id),
            "kind": alert.kind,
            "severity": alert.severity,
            "status": alert.status,
            "rule_id": str(alert.rule_id) if alert.rule_id else None,
            "rule_name": metadata.get("rule_name"),
            "dedup_key": alert.dedup_key,
            "matched_conditions": list(metadata.get("matched_conditions") or []),
            "created_at": utc_iso(alert.created_at),
        },
        "event": event_payload(event_item),
        "camera": {"id": camera.id, "name": camera.name, "status": camera.status},
    }


def test_payload(*, sent_at: dt.datetime | None = None) -> dict:
    """The synthetic payload of a channel test send (§2.8): the shape of an alert body, ``"type": "test"``."""
    now = sent_at or timezone.now()
    return {
        "type": "test",
        "sent_at": utc_iso(now),
        "message": "This is a test notification from HSI.",
        "alert": {
            "id": TEST_ALERT_ID,
            "kind": "event",
            "severity": "low",
            "status": "pending",
            "rule_id": None,
            "rule_name": "Test notification",
            "dedup_key": "test",
            "matched_conditions": [],
            "created_at": utc_iso(now),
        },
        "event": None,
        "camera": {"id": "test", "name": "Test camera", "status": "online"},
    }


test_payload.__test__ = False  # not a pytest test when imported into a test module


# --- e-mail -----------------------------------------------------------------------------------------------------


def email_subject(payload: dict, *, subject_prefix: str = "[HSI]") -> str:
    """``<subject_prefix> <SEVERITY> alert: <rule name> on <camera name>`` (a test send says ``TEST``)."""
    alert = payload.get("alert") or {}
    severity = "TEST" if payload.get("type") == "test" else str(alert.get("severity") or "").upper()
    rule_name = alert.get("rule_name") or alert.get("kind") or "alert"
    camera_name = (payload.get("camera") or {}).get("name") or ""
    subject = f"{subject_prefix} {severity} alert: {rule_name} on {camera_name}".strip()
    return " ".join(subject.split())  # no header folding tricks: one line


def _local_time(iso_value: str | None) -> str:
    if not iso_value:
        return "unknown"
    moment = dt.datetime.fromisoformat(iso_value.replace("Z", "+00:00")).astimezone(local_zone())
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def _email_lines(payload: dict) -> list[tuple[str, str]]:
    alert = payload.get("alert") or {}
    event = payload.get("event")
    camera = payload.get("camera") or {}
    rows = [
        ("Alert", f"{alert.get('rule_name') or alert.get('kind')} ({str(alert.get('severity') or '').upper()})"),
        ("Camera", f"{camera.get('name')} ({camera.get('id')})"),
        ("Time", _local_time(alert.get("created_at"))),
    ]
    if payload.get("type") == "test":
        rows.insert(0, ("Message", payload.get("message") or "Test notification"))
    if event:
        rows += [
            ("Summary", event.get("summary") or ""),
            ("Risk", f"{event.get('risk_score')} ({event.get('risk_level')})"),
            ("Objects", ", ".join(event.get("object_types") or []) or "none"),
            ("Event", event.get("url") or ""),
        ]
        if event.get("thumbnail_url"):
            rows.append(("Thumbnail", event["thumbnail_url"]))
    if alert.get("matched_conditions"):
        rows.append(("Matched", "; ".join(alert["matched_conditions"])))
    return rows


def email_text(payload: dict) -> str:
    """The plain-text body: summary, risk, time in the local zone, camera and links."""
    return "\n".join(f"{label}: {value}" for label, value in _email_lines(payload)) + "\n"


def email_html(payload: dict) -> str:
    """The HTML alternative of ``email_text`` (every value escaped; links clickable)."""
    cells = []
    for label, value in _email_lines(payload):
        shown = html.escape(str(value))
        if str(value).startswith(("http://", "https://")):
            shown = f'<a href="{html.escape(str(value), quote=True)}">{shown}</a>'
        cells.append(f"<tr><th align='left'>{html.escape(label)}</th><td>{shown}</td></tr>")
    title = html.escape(email_subject(payload, subject_prefix="").strip())
    return (
        "<!DOCTYPE html><html><body>"
        f"<h2>{title}</h2><table cellpadding='4'>{''.join(cells)}</table>"
        "<p style='color:#888'>Sent by HSI</p></body></html>"
    )


def thumbnail_bytes(path: str | None) -> bytes | None:
    """The JPEG bytes of a detection thumbnail (absolute, or relative to ``HSI_DATA_DIR``); None when missing."""
    if not path:
        return None
    file = Path(path)
    if not file.is_absolute():
        file = Path(settings.HSI_DATA_DIR) / file
    try:
        return file.read_bytes() if file.is_file() else None
    except OSError:
        return None
