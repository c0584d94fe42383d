"""Every audit action of CONTRACT §6.8, table-driven: the real API call (or the command / ingest path where there
is no API) writes exactly one row of that action, with the actor, client address, user agent and request id of
the call, the right resource and status, and for updates ``details.changes = {field: {old, new}}`` with secrets
shown as ``***``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from system.models import AuditLog
from tests.factories import (
    AlertFactory,
    AlertRuleFactory,
    CameraFactory,
    DeliveryFactory,
    EntityFactory,
    EventFactory,
    EventFeedbackFactory,
    FailedJobFactory,
    NotificationChannelFactory,
    QuietHoursFactory,
    ZoneFactory,
)
from tests.fakes.webhook_sink import WebhookSink
from tests.images import jpeg_bytes
from tests.integration.ingest_support import ensure_process_file_task, write

pytestmark = pytest.mark.django_db

KEY = "coverage-key-0123456789"
IP = "203.0.113.7"
AGENT = "coverage-agent/1.0"
SQUARE = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]]


@dataclass
class Call:
    """What one case did: the HTTP status it got (None for non-HTTP paths) and the resource id it expects."""

    status_code: int | None
    resource_id: str | None


@dataclass
class Case:
    action: str
    resource_type: str
    run: Callable[[APIClient, dict], Call]
    status: str = "success"
    changes: dict = field(default_factory=dict)  # field -> {"old", "new"} that details.changes must hold
    actor: str = "api_key:ops"  # via HTTP: the key's name, with the request's address, agent and id
    secrets: tuple[str, ...] = ()  # plaintext values that must appear nowhere in the row


def http(response, resource_id) -> Call:
    return Call(response.status_code, None if resource_id is None else str(resource_id))


def post(api, path, body=None):
    return api.post(path, body if body is not None else {}, format="json")


def patch(api, path, body):
    return api.patch(path, body, format="json")


# --- cameras ------------------------------------------------------------------------------------------------------


def camera_created(api, ctx):
    return http(post(api, "/api/cameras", {"name": "Front Door", "folder_path": "front_door"}), "front_door")


def camera_updated(api, ctx):
    CameraFactory(id="garage", name="Garage")
    return http(patch(api, "/api/cameras/garage", {"name": "Garage East"}), "garage")


def camera_deleted(api, ctx):
    CameraFactory(id="garage", name="Garage")
    return http(api.delete("/api/cameras/garage"), "garage")


def camera_auto_created(api, ctx):
    from pipeline.ingest.service import file_ingest

    ensure_process_file_task()
    path = write(ctx["foscam_root"] / "Back Yard" / "snap.jpg", jpeg_bytes(seed=3))
    file_ingest(path, source="watcher")
    return Call(None, "back_yard")


def baseline_rebuilt(api, ctx):
    CameraFactory(id="garage", name="Garage")
    return http(post(api, "/api/cameras/garage/baseline/rebuild"), "garage")


def baseline_rebuilt_by_command(api, ctx):
    CameraFactory(id="garage", name="Garage")
    call_command("rebuild_baselines", "--camera", "garage", stdout=open("/dev/null", "w"))  # noqa: SIM115
    return Call(None, "garage")


def file_uploaded(api, ctx):
    ensure_process_file_task()
    CameraFactory(id="porch", name="Porch", folder_path="porch")
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api.post(
        "/api/cameras/porch/uploads", {"file": SimpleUploadedFile("snap.jpg", jpeg_bytes(seed=1))}, format="multipart"
    )
    return http(response, "porch")


def zone_created(api, ctx):
    CameraFactory(id="front_door", name="Front Door")
    response = post(api, "/api/cameras/front_door/zones", {"name": "Porch", "coordinates": SQUARE})
    return http(response, response.json().get("id"))


def zone_updated(api, ctx):
    zone = ZoneFactory(name="Porch")
    return http(patch(api, f"/api/cameras/{zone.camera_id}/zones/{zone.id}", {"name": "Steps"}), zone.id)


def zone_deleted(api, ctx):
    zone = ZoneFactory()
    return http(api.delete(f"/api/cameras/{zone.camera_id}/zones/{zone.id}"), zone.id)


# --- events -------------------------------------------------------------------------------------------------------


def event_reviewed(api, ctx):
    event = EventFactory(reviewed=False)
    return http(patch(api, f"/api/events/{event.id}", {"reviewed": True}), event.id)


def event_unreviewed(api, ctx):
    event = EventFactory(reviewed=True, reviewed_at=timezone.now())
    return http(patch(api, f"/api/events/{event.id}", {"reviewed": False}), event.id)


def event_updated(api, ctx):
    event = EventFactory(notes="first look")
    return http(patch(api, f"/api/events/{event.id}", {"notes": "checked"}), event.id)


def event_deleted(api, ctx):
    event = EventFactory()
    return http(api.delete(f"/api/events/{event.id}"), event.id)


def event_delete_refused(api, ctx):
    event = EventFactory(deleted_at=timezone.now())
    return http(api.delete(f"/api/events/{event.id}"), event.id)


def event_restored(api, ctx):
    event = EventFactory(deleted_at=timezone.now())
    return http(post(api, f"/api/events/{event.id}/restore"), event.id)


def event_reanalyzed(api, ctx):
    event = EventFactory()
    return http(post(api, f"/api/events/{event.id}/reanalyze"), event.id)


def event_feedback_set(api, ctx):
    event = EventFactory()
    return http(post(api, f"/api/events/{event.id}/feedback", {"feedback_type": "false_positive"}), event.id)


def event_feedback_deleted(api, ctx):
    feedback = EventFeedbackFactory()
    return http(api.delete(f"/api/events/{feedback.event_id}/feedback"), feedback.event_id)


# --- alerts -------------------------------------------------------------------------------------------------------


def rule_created(api, ctx):
    response = post(api, "/api/alerts/rules", {"name": "Night person"})
    return http(response, response.json().get("id"))


def rule_updated(api, ctx):
    rule = AlertRuleFactory(name="Night person")
    return http(patch(api, f"/api/alerts/rules/{rule.id}", {"name": "Any person"}), rule.id)


def rule_deleted(api, ctx):
    rule = AlertRuleFactory()
    return http(api.delete(f"/api/alerts/rules/{rule.id}"), rule.id)


def rule_tested(api, ctx):
    rule = AlertRuleFactory()
    return http(post(api, f"/api/alerts/rules/{rule.id}/test"), rule.id)


def rule_backtested(api, ctx):
    rule = AlertRuleFactory()
    return http(post(api, "/api/alerts/rules/backtest", {"rule_id": str(rule.id)}), rule.id)


def alert_acknowledged(api, ctx):
    alert = AlertFactory()
    return http(post(api, f"/api/alerts/{alert.id}/acknowledge"), alert.id)


def alert_acknowledge_refused(api, ctx):
    alert = AlertFactory(status="dismissed")
    return http(post(api, f"/api/alerts/{alert.id}/acknowledge"), alert.id)


def alert_dismissed(api, ctx):
    alert = AlertFactory()
    return http(post(api, f"/api/alerts/{alert.id}/dismiss"), alert.id)


# --- notifications ------------------------------------------------------------------------------------------------


def channel_created(api, ctx):
    body = {"name": "Phone", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/hook"}, "secret": "s3cret-A-1"}
    response = post(api, "/api/notifications/channels", body)
    return http(response, response.json().get("id"))


def channel_updated(api, ctx):
    channel = NotificationChannelFactory(name="Phone", secret="s3cret-A-1")
    response = patch(api, f"/api/notifications/channels/{channel.id}", {"name": "Pager", "secret": "s3cret-B-2"})
    return http(response, channel.id)


def channel_deleted(api, ctx):
    channel = NotificationChannelFactory()
    return http(api.delete(f"/api/notifications/channels/{channel.id}"), channel.id)


def notification_test(api, ctx):
    sink = WebhookSink().start()
    try:
        channel = NotificationChannelFactory(config={"url": f"{sink.url}/hook"})
        return http(post(api, f"/api/notifications/channels/{channel.id}/test"), channel.id)
    finally:
        sink.stop()


def preferences_updated(api, ctx):
    return http(patch(api, "/api/notifications/preferences", {"enabled": False}), "global")


def quiet_hours_created(api, ctx):
    response = post(api, "/api/notifications/quiet-hours", {"start_time": "22:00", "end_time": "06:30"})
    return http(response, response.json().get("id"))


def quiet_hours_updated(api, ctx):
    period = QuietHoursFactory()
    return http(patch(api, f"/api/notifications/quiet-hours/{period.id}", {"enabled": False}), period.id)


def quiet_hours_deleted(api, ctx):
    period = QuietHoursFactory()
    return http(api.delete(f"/api/notifications/quiet-hours/{period.id}"), period.id)


def delivery_retried(api, ctx):
    delivery = DeliveryFactory(status="failed")
    return http(post(api, f"/api/notifications/deliveries/{delivery.id}/retry"), delivery.id)


def delivery_retry_refused(api, ctx):
    delivery = DeliveryFactory(status="pending")
    return http(post(api, f"/api/notifications/deliveries/{delivery.id}/retry"), delivery.id)


# --- operations ---------------------------------------------------------------------------------------------------


def dlq_requeued(api, ctx):
    ensure_process_file_task()
    job = FailedJobFactory()
    return http(post(api, f"/api/dlq/{job.id}/requeue"), job.id)


def dlq_discarded(api, ctx):
    job = FailedJobFactory()
    return http(api.delete(f"/api/dlq/{job.id}"), job.id)


def dlq_cleared(api, ctx):
    FailedJobFactory()
    return http(api.delete("/api/dlq?all=true"), "all")


def data_seeded(api, ctx):
    return http(post(api, "/api/admin/seed", {"cameras": 1, "events": 0}), None)


def data_cleared(api, ctx):
    return http(post(api, "/api/admin/clear", {"confirm": "DELETE_ALL_DATA"}), None)


def api_key_created(api, ctx):
    call_command("create_api_key", "bot", stdout=open("/dev/null", "w"), stderr=open("/dev/null", "w"))  # noqa: SIM115
    return Call(None, "bot")


def api_key_revoked(api, ctx):
    from system.services import api_key_create

    api_key_create("bot")
    call_command("revoke_api_key", "bot", stdout=open("/dev/null", "w"), stderr=open("/dev/null", "w"))  # noqa: SIM115
    return Call(None, "bot")


# --- security -----------------------------------------------------------------------------------------------------


def auth_failed(api, ctx):
    return http(api.get("/api/cameras", HTTP_X_API_KEY="wrong-key"), None)


CASES = [
    Case("camera_created", "camera", camera_created),
    Case("camera_auto_created", "camera", camera_auto_created, actor="watcher"),
    Case("camera_updated", "camera", camera_updated, changes={"name": {"old": "Garage", "new": "Garage East"}}),
    Case("camera_deleted", "camera", camera_deleted),
    Case("baseline_rebuilt", "camera", baseline_rebuilt),
    Case("baseline_rebuilt", "camera", baseline_rebuilt_by_command, actor="manage.py rebuild_baselines"),
    Case("file_uploaded", "camera", file_uploaded),
    Case("zone_created", "zone", zone_created),
    Case("zone_updated", "zone", zone_updated, changes={"name": {"old": "Porch", "new": "Steps"}}),
    Case("zone_deleted", "zone", zone_deleted),
    Case("event_reviewed", "event", event_reviewed, changes={"reviewed": {"old": False, "new": True}}),
    Case("event_unreviewed", "event", event_unreviewed, changes={"reviewed": {"old": True, "new": False}}),
    Case("event_updated", "event", event_updated, changes={"notes": {"old": "first look", "new": "checked"}}),
    Case("event_deleted", "event", event_deleted),
    Case("event_deleted", "event", event_delete_refused, status="failure"),
    Case("event_restored", "event", event_restored),
    Case("event_reanalyzed", "event", event_reanalyzed),
    Case("event_feedback_set", "event", event_feedback_set),
    Case("event_feedback_deleted", "event", event_feedback_deleted),
    Case("rule_created", "alert_rule", rule_created),
    Case("rule_updated", "alert_rule", rule_updated, changes={"name": {"old": "Night person", "new": "Any person"}}),
    Case("rule_deleted", "alert_rule", rule_deleted),
    Case("rule_tested", "alert_rule", rule_tested),
    Case("rule_backtested", "alert_rule", rule_backtested),
    Case("alert_acknowledged", "alert", alert_acknowledged),
    Case("alert_acknowledged", "alert", alert_acknowledge_refused, status="failure"),
    Case("alert_dismissed", "alert", alert_dismissed),
    Case("channel_created", "notification_channel", channel_created, secrets=("s3cret-A-1",)),
    Case(
        "channel_updated",
        "notification_channel",
        channel_updated,
        changes={"name": {"old": "Phone", "new": "Pager"}, "secret": {"old": "***", "new": "***"}},
        secrets=("s3cret-A-1", "s3cret-B-2"),
    ),
    Case("channel_deleted", "notification_channel", channel_deleted),
    Case("notification_test", "notification_channel", notification_test),
    Case(
        "preferences_updated",
        "notification_preference",
        preferences_updated,
        changes={"enabled": {"old": True, "new": False}},
    ),
    Case("quiet_hours_created", "quiet_hours", quiet_hours_created),
    Case("quiet_hours_updated", "quiet_hours", quiet_hours_updated, changes={"enabled": {"old": True, "new": False}}),
    Case("quiet_hours_deleted", "quiet_hours", quiet_hours_deleted),
    Case("delivery_retried", "delivery", delivery_retried),
    Case("delivery_retried", "delivery", delivery_retry_refused, status="failure"),
    Case("dlq_requeued", "failed_job", dlq_requeued),
    Case("dlq_discarded", "failed_job", dlq_discarded),
    Case("dlq_cleared", "failed_job", dlq_cleared),
    Case("data_seeded", "system", data_seeded),
    Case("data_cleared", "system", data_cleared),
    Case("api_key_created", "api_key", api_key_created, actor="cli"),
    Case("api_key_revoked", "api_key", api_key_revoked, actor="cli"),
    Case("auth_failed", "request", auth_failed, status="failure", actor="anonymous"),
]

# --- built by other helpers this session: the calls are written, the cases wait for their code ----------------


def events_exported(api, ctx):
    EventFactory()
    return http(api.get("/api/events/export"), None)


def circuit_breaker_reset(api, ctx):
    return http(post(api, "/api/system/circuit-breakers/detector/reset"), "detector")


def cleanup_executed(api, ctx):
    return http(post(api, "/api/system/cleanup", {"dry_run": False}), None)


def entity_updated(api, ctx):
    entity = EntityFactory(label="")
    return http(patch(api, f"/api/entities/{entity.id}", {"label": "Mail carrier"}), entity.id)


def entity_deleted(api, ctx):
    entity = EntityFactory()
    return http(api.delete(f"/api/entities/{entity.id}"), entity.id)


def media_access_denied(api, ctx):
    CameraFactory(id="front_door", name="Front Door")
    return http(api.get("/api/media/cameras/front_door/.secret/snap.jpg"), None)


def rate_limit_exceeded(api, ctx):
    from django.conf import settings

    settings.THROTTLE_ENABLED = True
    settings.THROTTLE_DEFAULT_RATE = "1/min"
    api.get("/api/cameras")
    return http(api.get("/api/cameras"), None)


CASES += [
    Case("events_exported", "event", events_exported),
    Case("circuit_breaker_reset", "circuit_breaker", circuit_breaker_reset),
    Case("cleanup_executed", "system", cleanup_executed),
    Case("entity_updated", "entity", entity_updated, changes={"label": {"old": "", "new": "Mail carrier"}}),
    Case("entity_deleted", "entity", entity_deleted),
    Case("media_access_denied", "media", media_access_denied, status="failure", actor="api_key:ops"),
    Case("rate_limit_exceeded", "request", rate_limit_exceeded, status="failure"),
]


@pytest.fixture(autouse=True)
def _configured(settings):
    settings.API_KEY_ENABLED = True
    settings.API_KEYS = f"ops={KEY}"
    settings.THROTTLE_ENABLED = False
    settings.ADMIN_API_ENABLED = True


def _case_id(case: Case) -> str:
    return f"{case.action}-{case.run.__name__}" if case.run.__name__ != case.action else case.action


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_action_writes_one_complete_audit_row(case: Case, foscam_root):
    request_id = f"cov-{case.run.__name__}"[:64]
    api = APIClient(HTTP_X_API_KEY=KEY, HTTP_USER_AGENT=AGENT, HTTP_X_REQUEST_ID=request_id, REMOTE_ADDR=IP)

    call = case.run(api, {"foscam_root": foscam_root})

    if call.status_code is not None:
        expected_http = {"failure": (401, 403, 409, 429)}.get(case.status, (200, 201, 202, 204))
        assert call.status_code in expected_http, call
    rows = list(AuditLog.objects.filter(action=case.action))
    assert len(rows) == 1, [(r.action, r.resource_id, r.status) for r in rows]
    row = rows[0]
    assert (row.resource_type, row.status, row.actor) == (case.resource_type, case.status, case.actor)
    if call.resource_id is not None:
        assert row.resource_id == call.resource_id
    if call.status_code is not None:  # an HTTP call: where it came from travels into the row
        assert (row.ip_address, row.user_agent, row.request_id) == (IP, AGENT, request_id)
    else:
        assert (row.ip_address, row.user_agent, row.request_id) == (None, None, None)
    for name, change in case.changes.items():
        assert row.details["changes"][name] == change, row.details
    stored = json.dumps(row.details)
    for secret in case.secrets:
        assert secret not in stored


def test_every_contract_action_is_covered():
    contract = {
        "camera_created", "camera_auto_created", "camera_updated", "camera_deleted", "baseline_rebuilt",
        "file_uploaded", "zone_created", "zone_updated", "zone_deleted", "event_reviewed", "event_unreviewed",
        "event_updated", "event_deleted", "event_restored", "event_reanalyzed", "event_feedback_set",
        "event_feedback_deleted", "events_exported", "rule_created", "rule_updated", "rule_deleted", "rule_tested",
        "rule_backtested", "alert_acknowledged", "alert_dismissed", "channel_created", "channel_updated",
        "channel_deleted", "notification_test", "preferences_updated", "quiet_hours_created", "quiet_hours_updated",
        "quiet_hours_deleted", "delivery_retried", "entity_updated", "entity_deleted", "dlq_requeued",
        "dlq_discarded", "dlq_cleared", "circuit_breaker_reset", "cleanup_executed", "data_seeded", "data_cleared",
        "api_key_created", "api_key_revoked", "auth_failed", "rate_limit_exceeded", "media_access_denied",
    }  # fmt: skip
    assert {case.action for case in CASES} == contract
