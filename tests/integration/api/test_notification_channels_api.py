"""Notification channels over HTTP (CONTRACT §2.8 channels and test send, §6.7 at save time, §6.8 audit)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import pytest

from alerts.models import Delivery, NotificationChannel
from system.models import AuditLog
from tests.factories import AlertRuleFactory, CameraFactory, DeliveryFactory, NotificationChannelFactory
from tests.fakes.http_fake import FakeHttpServer, Reply
from tests.fakes.mqtt_broker import FakeMqttBroker
from tests.fakes.smtp_sink import SmtpSink
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

URL = "/api/notifications/channels"
SECRET = "hmac-Secret-Value-42"
TOKEN = "Bearer tok-Very-Private-99"
BROKER_PASSWORD = "broker-Pass-77"
CHANNEL_KEYS = {
    "id",
    "name",
    "kind",
    "enabled",
    "config",
    "has_secret",
    "min_severity",
    "publish_events",
    "last_success_at",
    "last_failure_at",
    "last_error",
    "created_at",
    "updated_at",
}


class WebhookReceiver(FakeHttpServer):
    """A loopback HTTP server that answers 200 to every request unless scripted otherwise."""

    def default_reply(self, request):
        return Reply(status=200, json={"ok": True})


@pytest.fixture
def receiver():
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def mail_and_mqtt(settings):
    settings.EMAIL_HOST = "127.0.0.1"
    settings.MQTT_URL = "mqtt://127.0.0.1:1"


def create(api_client, **body):
    body.setdefault("name", "Phone")
    body.setdefault("kind", "webhook")
    body.setdefault("config", {"url": "http://127.0.0.1:9/hook"})
    return api_client.post(URL, body, format="json")


def assert_no_secrets(*texts: str | bytes) -> None:
    for text in texts:
        text = text.decode() if isinstance(text, bytes) else text
        for secret in (SECRET, TOKEN, BROKER_PASSWORD):
            assert secret not in text


def audit_rows(action: str):
    return list(AuditLog.objects.filter(action=action).order_by("id"))


# --- create --------------------------------------------------------------------------------------------------------


def test_create_webhook_returns_the_channel_with_defaults_and_never_the_secret(api_client, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 10

    response = create(
        api_client,
        name="  Phone  ",
        config={"url": "http://127.0.0.1:9/hook", "headers": {"Authorization": TOKEN, "X-Team": "blue"}},
        secret=SECRET,
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == CHANNEL_KEYS
    assert uuid.UUID(body["id"]).version == 4
    assert response["Location"] == f"{URL}/{body['id']}"
    assert body["name"] == "Phone" and body["kind"] == "webhook" and body["enabled"] is True
    assert body["config"] == {
        "url": "http://127.0.0.1:9/hook",
        "headers": {"Authorization": "***", "X-Team": "blue"},
        "timeout_seconds": 10,
    }
    assert body["has_secret"] is True
    assert (body["min_severity"], body["publish_events"], body["last_error"]) == ("low", False, "")
    assert body["last_success_at"] is None and body["last_failure_at"] is None
    assert body["created_at"].endswith("Z")
    assert_no_secrets(response.content)
    stored = NotificationChannel.objects.get(pk=body["id"])
    assert stored.secret == SECRET and stored.config["headers"]["Authorization"] == TOKEN


def test_create_writes_channel_created_without_secrets(api_client):
    response = create(
        api_client, config={"url": "http://127.0.0.1:9/h", "headers": {"X-Api-Key": TOKEN}}, secret=SECRET
    )

    (row,) = audit_rows("channel_created")
    assert (row.resource_type, row.resource_id, row.status) == (
        "notification_channel",
        response.json()["id"],
        "success",
    )
    assert row.details["channel"]["name"] == "Phone"
    assert_no_secrets(json.dumps(row.details))


@pytest.mark.parametrize("missing", ["name", "kind", "config"])
def test_create_requires_name_kind_and_config(api_client, missing):
    body = {"name": "Phone", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/hook"}}
    del body[missing]

    assert missing in error_fields(api_client.post(URL, body, format="json"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 5}, "name"),
        ({"kind": "sms"}, "kind"),
        ({"config": "http://127.0.0.1"}, "config"),
        ({"enabled": "yes"}, "enabled"),
        ({"min_severity": "urgent"}, "min_severity"),
        ({"publish_events": 1}, "publish_events"),
        ({"secret": 42}, "secret"),
        ({"secret": "s" * 256}, "secret"),
        ({"config": {"url": "ftp://127.0.0.1/x"}}, "config.url"),
        ({"config": {"url": "http://169.254.169.254/"}}, "config.url"),
        ({"config": {"url": "http://8.8.8.8/hook"}}, "config.url"),
        ({"config": {"url": "http://u:p@127.0.0.1/hook"}}, "config.url"),
        (
            {"config": {"url": "http://127.0.0.1/h", "headers": {"X-HSI-Signature": "x"}}},
            "config.headers.X-HSI-Signature",
        ),
        ({"config": {"url": "http://127.0.0.1/h", "timeout_seconds": 120}}, "config.timeout_seconds"),
    ],
)
def test_create_rejects_invalid_fields(api_client, body, field):
    response = create(api_client, **body)

    assert field in error_fields(response)
    assert not NotificationChannel.objects.exists()
    assert not AuditLog.objects.exists()


def test_duplicate_name_is_409_with_the_existing_id_and_a_failure_audit_row(api_client):
    first = create(api_client, name="Phone").json()

    response = create(api_client, name="Phone")

    body = problem(response, 409, "conflict")
    assert body["existing_id"] == first["id"]
    assert NotificationChannel.objects.count() == 1
    assert [row.status for row in audit_rows("channel_created")] == ["success", "failure"]


def test_email_channel_needs_email_host(api_client, settings):
    settings.EMAIL_HOST = None

    response = create(api_client, kind="email", config={"to": ["me@example.com"]})

    body = problem(response, 422, "validation_error")
    assert body["detail"] == "Email is not configured"
    assert "Email is not configured" in [error["message"] for error in body["errors"]]


def test_email_channel_defaults(api_client, mail_and_mqtt):
    response = create(api_client, kind="email", config={"to": ["me@example.com"]})

    assert response.status_code == 201, response.content
    assert response.json()["config"] == {"to": ["me@example.com"], "subject_prefix": "[HSI]", "attach_thumbnail": True}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "config.to"),
        ({"to": []}, "config.to"),
        ({"to": ["nobody"]}, "config.to.0"),
        ({"to": ["a@example.com"], "subject_prefix": "x" * 51}, "config.subject_prefix"),
        ({"to": ["a@example.com"], "attach_thumbnail": "no"}, "config.attach_thumbnail"),
    ],
)
def test_email_config_violations(api_client, mail_and_mqtt, config, field):
    assert field in error_fields(create(api_client, kind="email", config=config))


def test_mqtt_channel_needs_a_broker(api_client, settings):
    settings.MQTT_URL = None

    body = problem(create(api_client, kind="mqtt", config={}), 422, "validation_error")

    assert body["detail"] == "MQTT broker not configured"


def test_mqtt_channel_defaults_and_redacted_broker_password(api_client, settings):
    settings.MQTT_URL = None
    settings.MQTT_TOPIC_PREFIX = "hsi"
    settings.MQTT_DISCOVERY_PREFIX = "homeassistant"

    response = create(
        api_client,
        kind="mqtt",
        config={"broker_url": f"mqtt://hsi:{BROKER_PASSWORD}@127.0.0.1:1883"},
        publish_events=True,
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["config"] == {
        "broker_url": "mqtt://hsi:***@127.0.0.1:1883",
        "topic_prefix": "hsi",
        "qos": 1,
        "discovery": True,
        "discovery_prefix": "homeassistant",
    }
    assert body["publish_events"] is True
    assert_no_secrets(response.content, json.dumps(audit_rows("channel_created")[0].details))


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"broker_url": "tcp://127.0.0.1"}, "config.broker_url"),
        ({"topic_prefix": "a/+/b"}, "config.topic_prefix"),
        ({"qos": 5}, "config.qos"),
        ({"discovery": "true"}, "config.discovery"),
        ({"discovery_prefix": ""}, "config.discovery_prefix"),
    ],
)
def test_mqtt_config_violations(api_client, mail_and_mqtt, config, field):
    assert field in error_fields(create(api_client, kind="mqtt", config=config))


# --- list and detail -----------------------------------------------------------------------------------------------


def test_list_is_ordered_by_name_and_filtered_by_kind_and_enabled(api_client):
    NotificationChannelFactory(name="b-hook")
    NotificationChannelFactory(name="a-hook", enabled=False)
    NotificationChannelFactory(name="c-mail", kind="email", config={"to": ["a@example.com"]})

    everything = api_client.get(URL).json()
    webhooks_enabled = api_client.get(URL, {"kind": "webhook", "enabled": "true"}).json()
    several_kinds = api_client.get(URL, {"kind": "email,webhook", "enabled": "no"}).json()

    assert [c["name"] for c in everything["items"]] == ["a-hook", "b-hook", "c-mail"]
    assert everything["pagination"] == {"total": 3, "limit": 100, "offset": 0, "next_cursor": None, "has_more": False}
    assert [c["name"] for c in webhooks_enabled["items"]] == ["b-hook"]
    assert [c["name"] for c in several_kinds["items"]] == ["a-hook"]


@pytest.mark.parametrize(
    "query", [{"kind": "sms"}, {"enabled": "maybe"}, {"limit": "0"}, {"limit": "1001"}, {"offset": "-1"}]
)
def test_list_rejects_bad_parameters(api_client, query):
    assert set(query) <= error_fields(api_client.get(URL, query))


def test_list_pages_with_limit_and_offset(api_client):
    for index in range(5):
        NotificationChannelFactory(name=f"ch-{index}")

    page = api_client.get(URL, {"limit": 2, "offset": 2}).json()
    past_end = api_client.get(URL, {"offset": 10}).json()

    assert [c["name"] for c in page["items"]] == ["ch-2", "ch-3"]
    assert page["pagination"]["total"] == 5 and page["pagination"]["has_more"] is True
    assert past_end["items"] == [] and past_end["pagination"]["total"] == 5


def test_list_query_count_does_not_grow_with_rows(api_client, django_assert_max_num_queries):
    for index in range(30):
        NotificationChannelFactory(name=f"ch-{index:02}", secret=SECRET, config={"url": "http://127.0.0.1/x"})

    with django_assert_max_num_queries(3):
        response = api_client.get(URL, {"limit": 10})

    assert len(response.json()["items"]) == 10
    assert_no_secrets(response.content)


def test_detail_and_404s(api_client):
    channel = NotificationChannelFactory(secret=SECRET)

    body = api_client.get(f"{URL}/{channel.id}/").json()

    assert body["id"] == str(channel.id) and body["has_secret"] is True
    assert_no_secrets(json.dumps(body))
    problem(api_client.get(f"{URL}/{uuid.uuid4()}"), 404, "not_found")
    problem(api_client.get(f"{URL}/not-a-uuid"), 404, "not_found")
    problem(api_client.patch(f"{URL}/{uuid.uuid4()}", {"enabled": False}, format="json"), 404, "not_found")
    problem(api_client.delete(f"{URL}/{uuid.uuid4()}"), 404, "not_found")
    problem(api_client.post(f"{URL}/{uuid.uuid4()}/test"), 404, "not_found")


# --- update --------------------------------------------------------------------------------------------------------


def test_patch_changes_only_the_fields_sent_and_audits_the_changes(api_client):
    channel_id = create(api_client, secret=SECRET).json()["id"]

    response = api_client.patch(f"{URL}/{channel_id}", {"enabled": False, "min_severity": "high"}, format="json")

    body = response.json()
    assert response.status_code == 200
    assert (body["enabled"], body["min_severity"], body["name"], body["has_secret"]) == (False, "high", "Phone", True)
    assert body["updated_at"] > body["created_at"]
    (row,) = audit_rows("channel_updated")
    assert row.details["changes"] == {
        "enabled": {"old": True, "new": False},
        "min_severity": {"old": "low", "new": "high"},
    }


def test_put_is_partial_like_patch(api_client):
    channel_id = create(api_client).json()["id"]

    body = api_client.put(f"{URL}/{channel_id}", {"name": "Renamed"}, format="json").json()

    assert body["name"] == "Renamed" and body["config"]["url"] == "http://127.0.0.1:9/hook"


def test_empty_patch_is_a_no_op(api_client):
    created = create(api_client).json()

    body = api_client.patch(f"{URL}/{created['id']}", {}, format="json").json()

    assert body == created
    assert not audit_rows("channel_updated")


def test_kind_is_immutable(api_client):
    channel_id = create(api_client).json()["id"]

    assert "kind" in error_fields(api_client.patch(f"{URL}/{channel_id}", {"kind": "email"}, format="json"))
    same = api_client.patch(f"{URL}/{channel_id}", {"kind": "webhook", "enabled": False}, format="json")
    assert same.status_code == 200 and same.json()["kind"] == "webhook"


def test_rename_onto_another_channel_is_409(api_client):
    other = create(api_client, name="Other").json()
    channel_id = create(api_client, name="Mine").json()["id"]

    body = problem(api_client.patch(f"{URL}/{channel_id}", {"name": "Other"}, format="json"), 409, "conflict")

    assert body["existing_id"] == other["id"]
    assert NotificationChannel.objects.get(pk=channel_id).name == "Mine"
    assert [row.status for row in audit_rows("channel_updated")] == ["failure"]


def test_config_update_is_validated_for_the_channel_kind(api_client):
    channel_id = create(api_client).json()["id"]

    assert "config.url" in error_fields(
        api_client.patch(f"{URL}/{channel_id}", {"config": {"to": ["a@example.com"]}}, format="json")
    )
    body = api_client.patch(
        f"{URL}/{channel_id}", {"config": {"url": "https://127.0.0.1/new", "timeout_seconds": 3}}, format="json"
    ).json()
    assert body["config"]["url"] == "https://127.0.0.1/new" and body["config"]["timeout_seconds"] == 3


def test_sending_back_a_redacted_config_keeps_the_stored_header_value(api_client):
    created = create(api_client, config={"url": "http://127.0.0.1:9/h", "headers": {"Authorization": TOKEN}}).json()
    config = created["config"]
    config["timeout_seconds"] = 5

    response = api_client.patch(f"{URL}/{created['id']}", {"config": config}, format="json")

    assert response.json()["config"]["headers"] == {"Authorization": "***"}
    stored = NotificationChannel.objects.get(pk=created["id"]).config
    assert stored["headers"] == {"Authorization": TOKEN} and stored["timeout_seconds"] == 5
    assert_no_secrets(response.content, json.dumps(audit_rows("channel_updated")[0].details))


def test_a_stored_header_value_is_not_restored_for_another_host_and_never_reaches_it(api_client, receiver):
    """The exfiltration of review finding 1: read the config (``***``), point ``url`` elsewhere, send it back, then
    test-send. The stored value must not follow the config to the new host."""
    other = WebhookReceiver().start()
    try:
        created = create(api_client, config={"url": f"{receiver.url}/h", "headers": {"Authorization": TOKEN}}).json()
        config = {**created["config"], "url": f"{other.url}/steal"}  # same 127.0.0.1, another port

        response = api_client.patch(f"{URL}/{created['id']}", {"config": config}, format="json")
        api_client.post(f"{URL}/{created['id']}/test")

        body = problem(response, 422, "validation_error")
        assert {error["field"]: error["message"] for error in body["errors"]} == {
            "config.headers.Authorization": "Re-enter the value: the webhook URL's host changed"
        }
        stored = NotificationChannel.objects.get(pk=created["id"]).config
        assert stored["url"] == f"{receiver.url}/h" and stored["headers"] == {"Authorization": TOKEN}
        assert other.requests == []
        (sent,) = receiver.requests_to("/h")
        assert sent.headers["Authorization"] == TOKEN
        assert not audit_rows("channel_updated")
    finally:
        other.stop()


def test_a_re_entered_header_value_may_go_with_the_url_to_a_new_host(api_client, receiver):
    created = create(api_client, config={"url": "http://127.0.0.1:9/h", "headers": {"Authorization": TOKEN}}).json()
    config = {**created["config"], "url": f"{receiver.url}/new", "headers": {"Authorization": "Bearer new-one"}}

    response = api_client.patch(f"{URL}/{created['id']}", {"config": config}, format="json")
    api_client.post(f"{URL}/{created['id']}/test")

    assert response.status_code == 200, response.content
    (sent,) = receiver.requests_to("/new")
    assert sent.headers["Authorization"] == "Bearer new-one"


@pytest.mark.parametrize("value", ["café", "tab\there ok?"])
def test_header_values_must_be_visible_ascii_at_save_time(api_client, value):
    response = create(api_client, config={"url": "http://127.0.0.1:9/h", "headers": {"X-Token": value}})

    if value == "café":
        assert "config.headers.X-Token" in error_fields(response)
        assert not NotificationChannel.objects.exists()
    else:
        assert response.status_code == 201
        assert NotificationChannel.objects.get().config["headers"] == {"X-Token": value}


def test_a_non_ascii_header_value_cannot_be_patched_in_either(api_client):
    channel_id = create(api_client).json()["id"]

    response = api_client.patch(
        f"{URL}/{channel_id}",
        {"config": {"url": "http://127.0.0.1:9/h", "headers": {"X-Token": "café"}}},
        format="json",
    )

    assert "config.headers.X-Token" in error_fields(response)
    assert NotificationChannel.objects.get(pk=channel_id).config["headers"] == {}


def test_secret_is_write_only_and_empty_string_removes_it(api_client):
    channel_id = create(api_client).json()["id"]

    set_response = api_client.patch(f"{URL}/{channel_id}", {"secret": SECRET}, format="json")
    assert set_response.json()["has_secret"] is True
    assert NotificationChannel.objects.get(pk=channel_id).secret == SECRET
    removed = api_client.patch(f"{URL}/{channel_id}", {"secret": ""}, format="json")

    assert removed.json()["has_secret"] is False
    assert NotificationChannel.objects.get(pk=channel_id).secret == ""
    rows = audit_rows("channel_updated")
    assert [row.details["changes"]["secret"] for row in rows] == [{"old": "***", "new": "***"}] * 2
    assert_no_secrets(set_response.content, removed.content, *(json.dumps(row.details) for row in rows))


# --- delete --------------------------------------------------------------------------------------------------------


def test_delete_removes_the_channel_and_its_deliveries(api_client):
    delivery = DeliveryFactory()
    channel_id = delivery.channel_id

    response = api_client.delete(f"{URL}/{channel_id}")

    assert response.status_code == 204
    assert not NotificationChannel.objects.filter(pk=channel_id).exists()
    assert not Delivery.objects.filter(pk=delivery.pk).exists()
    problem(api_client.get(f"{URL}/{channel_id}"), 404, "not_found")
    (row,) = audit_rows("channel_deleted")
    assert row.resource_id == str(channel_id)


def test_delete_drops_the_channel_from_rules_that_name_it(api_client):
    kept, deleted = NotificationChannelFactory(), NotificationChannelFactory()
    both = AlertRuleFactory(channels=[str(kept.id), str(deleted.id)])
    only_deleted = AlertRuleFactory(channels=[str(deleted.id)])
    every_channel = AlertRuleFactory(channels=None)

    assert api_client.delete(f"{URL}/{deleted.id}").status_code == 204

    for rule in (both, only_deleted, every_channel):
        rule.refresh_from_db()
    assert (both.channels, only_deleted.channels, every_channel.channels) == ([str(kept.id)], [], None)


def test_null_secret_removes_it_too(api_client):
    channel_id = create(api_client, secret=SECRET).json()["id"]

    body = api_client.patch(f"{URL}/{channel_id}", {"secret": None}, format="json").json()

    assert body["has_secret"] is False
    assert NotificationChannel.objects.get(pk=channel_id).secret == ""


# --- test send -----------------------------------------------------------------------------------------------------


def test_test_send_posts_a_signed_test_payload_and_reports_success(api_client, receiver):
    channel = NotificationChannelFactory(
        config={"url": f"{receiver.url}/hook", "headers": {"X-Team": "blue"}, "timeout_seconds": 5}, secret=SECRET
    )

    response = api_client.post(f"{URL}/{channel.id}/test")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"channel_id", "kind", "success", "status_code", "latency_ms", "message", "error"}
    assert (body["channel_id"], body["kind"], body["success"], body["status_code"]) == (
        str(channel.id),
        "webhook",
        True,
        200,
    )
    assert body["latency_ms"] >= 0 and body["error"] is None
    (request,) = receiver.requests_to("/hook")
    assert request.json()["type"] == "test"
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert headers["x-hsi-event"] == "test" and headers["x-hsi-delivery"] == "test" and headers["x-team"] == "blue"
    expected = hmac.new(SECRET.encode(), f"{headers['x-hsi-timestamp']}.".encode() + request.body, hashlib.sha256)
    assert headers["x-hsi-signature"] == f"sha256={expected.hexdigest()}"
    assert not Delivery.objects.exists()
    (row,) = audit_rows("notification_test")
    assert (row.resource_id, row.status) == (str(channel.id), "success")
    assert_no_secrets(response.content, json.dumps(row.details))


def test_test_send_without_secret_has_no_signature(api_client, receiver):
    channel = NotificationChannelFactory(config={"url": f"{receiver.url}/hook"})

    assert api_client.post(f"{URL}/{channel.id}/test").json()["success"] is True

    (request,) = receiver.requests_to("/hook")
    assert "x-hsi-signature" not in {name.lower() for name in request.headers}


def test_test_send_failure_is_reported_in_a_200_body(api_client, receiver):
    channel = NotificationChannelFactory(config={"url": f"{receiver.url}/hook"})
    receiver.fail("POST", "/hook", status=500)

    response = api_client.post(f"{URL}/{channel.id}/test")

    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["status_code"]) == (False, 500)
    assert body["error"]
    (row,) = audit_rows("notification_test")
    assert row.status == "failure" and row.details["status_code"] == 500
    channel.refresh_from_db()
    assert channel.last_failure_at is None and channel.last_error == ""


def test_test_send_to_a_closed_port_reports_the_connection_error(api_client, receiver):
    receiver.stop()
    channel = NotificationChannelFactory(config={"url": f"{receiver.url}/hook", "timeout_seconds": 2})

    body = api_client.post(f"{URL}/{channel.id}/test").json()

    assert body["success"] is False and body["status_code"] is None and body["error"]


def test_test_send_uses_the_channel_timeout(api_client, receiver):
    receiver.script("POST", "/slow", Reply(status=200, delay=2.5))
    channel = NotificationChannelFactory(config={"url": f"{receiver.url}/slow", "timeout_seconds": 1})

    body = api_client.post(f"{URL}/{channel.id}/test").json()

    assert body["success"] is False
    assert 900 <= body["latency_ms"] < 2400


def test_test_send_works_on_a_disabled_channel(api_client, receiver):
    channel = NotificationChannelFactory(config={"url": f"{receiver.url}/hook"}, enabled=False)

    body = api_client.post(f"{URL}/{channel.id}/test").json()

    assert body["success"] is True
    assert len(receiver.requests_to("/hook")) == 1


@pytest.fixture
def smtp_sink(settings):
    sink = SmtpSink().start()
    settings.EMAIL_HOST = sink.host
    settings.EMAIL_PORT = sink.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    yield sink
    sink.stop()


@pytest.fixture
def mqtt_broker(settings):
    from alerts.transports.mqtt import connections_close

    broker = FakeMqttBroker().start()
    settings.MQTT_URL = None
    yield broker
    connections_close()
    broker.stop()


def test_test_send_over_email_reaches_the_smtp_server(api_client, smtp_sink):
    channel_id = create(api_client, kind="email", config={"to": ["owner@example.com"]}).json()["id"]

    body = api_client.post(f"{URL}/{channel_id}/test").json()

    assert body["success"] is True and body["kind"] == "email", body
    (message,) = smtp_sink.messages
    assert message["To"] == "owner@example.com"
    assert message["Subject"].startswith("[HSI]")
    assert AuditLog.objects.get(action="notification_test").status == "success"


def test_test_send_over_email_reports_a_rejection(api_client, smtp_sink):
    channel_id = create(api_client, kind="email", config={"to": ["owner@example.com"]}).json()["id"]
    smtp_sink.fail_permanently()

    body = api_client.post(f"{URL}/{channel_id}/test").json()

    assert body["success"] is False and body["error"]
    assert smtp_sink.messages == []


def test_test_send_over_mqtt_publishes_to_the_alerts_topic(api_client, mqtt_broker):
    created = create(api_client, kind="mqtt", config={"broker_url": mqtt_broker.url, "topic_prefix": "house"})
    channel_id = created.json()["id"]
    NotificationChannel.objects.filter(pk=channel_id).update(enabled=False)

    body = api_client.post(f"{URL}/{channel_id}/test").json()

    assert body["success"] is True and body["kind"] == "mqtt", body
    message = mqtt_broker.wait_for_message("house/alerts")
    assert json.loads(message.payload)["type"] == "test"
    assert not Delivery.objects.exists()


def test_test_send_over_mqtt_without_a_broker_reports_failure(api_client, mqtt_broker):
    port = mqtt_broker.port
    mqtt_broker.stop()
    channel = NotificationChannelFactory(kind="mqtt", config={"broker_url": f"mqtt://127.0.0.1:{port}"})

    body = api_client.post(f"{URL}/{channel.id}/test").json()

    assert body["success"] is False and body["error"]
    assert AuditLog.objects.get(action="notification_test").status == "failure"


def _published_after(broker, mark: int, predicate) -> bool:
    return any(predicate(message) for message in broker.published[mark:])


def _reconnect_and_flush(broker) -> int:
    """Cut the shared connection, wait for it to come back, and publish a marker over it; returns the index of the
    first message after the cut. MQTT keeps order on a connection, so everything the client sent on connect (its
    status, its registered announcements) has arrived once the marker has."""
    from alerts.services.mqtt_publishing import mqtt_publish_camera_status

    mark = len(broker.published)
    broker.kick(fire_wills=False)
    broker.wait_for(lambda b: _published_after(b, mark, lambda m: (m.topic, m.payload) == ("house/status", b"online")))
    assert mqtt_publish_camera_status("porch", "online") >= 1
    broker.wait_for(lambda b: _published_after(b, mark, lambda m: m.topic == "house/cameras/porch/status"))
    return mark


@pytest.mark.parametrize(
    "change",
    [
        ("patch", {"enabled": False}),
        ("patch", {"config": {"topic_prefix": "house", "discovery_prefix": "ha", "discovery": False}}),
        ("delete", None),
    ],
)
def test_a_disabled_reconfigured_or_deleted_channel_stops_announcing_discovery_on_reconnect(
    api_client, mqtt_broker, django_capture_on_commit_callbacks, change
):
    from alerts.services.mqtt_publishing import mqtt_publish_discovery

    CameraFactory(id="porch", name="Porch")
    config = {"broker_url": mqtt_broker.url, "topic_prefix": "house", "discovery_prefix": "ha"}
    channel_id = create(api_client, kind="mqtt", config=config).json()["id"]
    create(api_client, name="Marker", kind="mqtt", config={**config, "discovery": False})  # same connection
    assert mqtt_publish_discovery() == 1
    mqtt_broker.wait_for(lambda b: _published_after(b, 0, lambda m: m.topic.startswith("ha/")))
    mark = _reconnect_and_flush(mqtt_broker)
    assert _published_after(mqtt_broker, mark, lambda m: m.topic.startswith("ha/"))  # republished on reconnect

    method, body = change
    with django_capture_on_commit_callbacks(execute=True):
        if method == "patch":
            body = {"config": {**config, **body["config"]}} if "config" in body else body
            response = api_client.patch(f"{URL}/{channel_id}", body, format="json")
        else:
            response = api_client.delete(f"{URL}/{channel_id}")
    assert response.status_code in (200, 204), response.content
    mark = _reconnect_and_flush(mqtt_broker)

    assert not _published_after(mqtt_broker, mark, lambda m: m.topic.startswith("ha/"))
