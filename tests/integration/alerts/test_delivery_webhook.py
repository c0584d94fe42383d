"""The outbox delivers an alert to a webhook: signed, retried with backoff, never sent twice (CONTRACT §5.8, §5.9)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import pytest
import time_machine
from django.utils import timezone

from alerts.models import Alert, Delivery
from alerts.services.deliveries import deliveries_create_for_alert, deliveries_sweep, delivery_send
from pipeline.models import FailedJob
from tests.factories import CameraFactory, NotificationChannelFactory
from tests.fakes.webhook_sink import WebhookSink, header
from tests.integration.alerts.delivery_support import PUBLIC, T0, make_alert, outbox_env  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("outbox_env")]


@pytest.fixture
def sink():
    server = WebhookSink().start()
    yield server
    server.stop()


def expected_signature(secret: str, request) -> str:
    timestamp = header(request, "X-HSI-Timestamp")
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def test_a_webhook_gets_a_correctly_signed_body_exactly_once_even_when_the_first_attempt_fails(
    sink, django_capture_on_commit_callbacks
):
    # given a receiver that answers 500 once, then 200
    sink.answer(500)
    channel = NotificationChannelFactory(config={"url": sink.hook_url()}, secret="s3cret")
    alert = make_alert([channel])

    # when the alert's deliveries are created (the first attempt is dispatched after commit)
    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True):
        [delivery_id] = deliveries_create_for_alert(alert.id)

    # then the first attempt failed and is scheduled about 10 s later
    delivery = Delivery.objects.get(pk=delivery_id)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("pending", 1, 500)
    assert T0 + dt.timedelta(seconds=10) <= delivery.next_attempt_at <= T0 + dt.timedelta(seconds=12.5)
    assert delivery.last_error.startswith("HTTP 500")

    # and it is not sent again before it is due
    with time_machine.travel(T0 + dt.timedelta(seconds=5), tick=False):
        assert delivery_send(delivery_id) is None

    # when the sweep runs after next_attempt_at
    with (
        time_machine.travel(delivery.next_attempt_at + dt.timedelta(seconds=1), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert deliveries_sweep(timezone.now()) == 1

    # then the second attempt succeeded
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status, delivery.last_error) == ("sent", 2, 200, "")
    alert = Alert.objects.get(pk=alert.pk)
    assert (alert.status, alert.version) == ("delivered", 2)
    assert alert.delivered_at is not None
    channel.refresh_from_db()
    assert channel.last_success_at is not None

    # and both requests were signed over their exact bytes, with the same delivery id
    first, second = sink.received()
    for request in (first, second):
        assert header(request, "X-HSI-Signature") == expected_signature("s3cret", request)
        assert header(request, "X-HSI-Delivery") == str(delivery_id)
        assert header(request, "X-HSI-Event") == "alert.created"
        assert header(request, "Content-Type") == "application/json"
        assert header(request, "User-Agent").startswith("HSI/")

    body = json.loads(second.body)
    assert body["type"] == "alert.created"
    assert body["alert"]["id"] == str(alert.id)
    assert body["alert"]["rule_name"] == "Night person"
    assert body["event"]["url"] == f"{PUBLIC}/api/events/{alert.event_id}"
    assert body["camera"] == {"id": "front_door", "name": "Front Door", "status": "online"}

    # and a sent delivery is never sent again
    assert delivery_send(delivery_id) is None
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_sweep(timezone.now() + dt.timedelta(hours=1)) == 0
    assert len(sink.received()) == 2


def test_creating_the_deliveries_twice_creates_nothing_new(sink):
    channel = NotificationChannelFactory(config={"url": sink.hook_url()})
    alert = make_alert([channel])

    first = deliveries_create_for_alert(alert.id)
    second = deliveries_create_for_alert(alert.id)

    assert first == second
    assert Delivery.objects.filter(alert=alert).count() == 1


def test_channel_ids_that_no_longer_exist_are_skipped(sink):
    channel = NotificationChannelFactory(config={"url": sink.hook_url()})
    gone = NotificationChannelFactory(config={"url": sink.hook_url()})
    alert = make_alert([channel, gone])
    gone.delete()

    ids = deliveries_create_for_alert(alert.id)

    assert list(Delivery.objects.filter(pk__in=ids).values_list("channel_id", flat=True)) == [channel.id]


def test_redirects_are_not_followed(sink):
    sink.redirect(sink.hook_url("/elsewhere"))
    channel = NotificationChannelFactory(config={"url": sink.hook_url()})
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)

    status = delivery_send(delivery_id)

    assert status == "failed"
    assert sink.received("/elsewhere") == []
    delivery = Delivery.objects.get(pk=delivery_id)
    assert delivery.response_status == 307
    assert "redirect" in delivery.last_error


def test_a_4xx_answer_fails_permanently_with_a_dead_letter(sink):
    sink.answer(404)
    channel = NotificationChannelFactory(config={"url": sink.hook_url()})
    alert = make_alert([channel])
    [delivery_id] = deliveries_create_for_alert(alert.id)

    assert delivery_send(delivery_id) == "failed"

    delivery = Delivery.objects.get(pk=delivery_id)
    assert (delivery.attempts, delivery.response_status) == (1, 404)
    channel.refresh_from_db()
    assert channel.last_failure_at is not None
    assert channel.last_error.startswith("HTTP 404")
    job = FailedJob.objects.get()
    assert (job.queue, job.task_name, job.payload, job.camera_id) == (
        "notification",
        "alerts.deliver",
        {"delivery_id": delivery_id},
        "front_door",
    )
    assert job.error_type == "http_4xx"
    assert Alert.objects.get(pk=alert.pk).status == "pending"  # still actionable


@pytest.mark.parametrize("status", [429, 408, 503])
def test_429_408_and_5xx_are_retried(sink, status):
    sink.answer(status)
    channel = NotificationChannelFactory(config={"url": sink.hook_url()})
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)

    assert delivery_send(delivery_id) == "pending"
    assert FailedJob.objects.count() == 0


def test_the_last_allowed_attempt_fails_the_delivery(sink, settings):
    settings.NOTIFY_MAX_ATTEMPTS = 3
    sink.answer(500, 500, 500)
    channel = NotificationChannelFactory(config={"url": sink.hook_url()})
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)

    statuses = []
    moment = T0
    for _ in range(3):
        with time_machine.travel(moment, tick=False):
            statuses.append(delivery_send(delivery_id))
        moment = Delivery.objects.get(pk=delivery_id).next_attempt_at or moment
        moment += dt.timedelta(seconds=1)

    assert statuses == ["pending", "pending", "failed"]
    delivery = Delivery.objects.get(pk=delivery_id)
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert FailedJob.objects.get().attempt_count == 3
    assert len(sink.received()) == 3


def test_backoff_grows_fourfold(sink):
    sink.answer(500, 500, 500)
    channel = NotificationChannelFactory(config={"url": sink.hook_url()})
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)

    delays = []
    moment = T0
    for _ in range(3):
        with time_machine.travel(moment, tick=False):
            delivery_send(delivery_id)
        next_at = Delivery.objects.get(pk=delivery_id).next_attempt_at
        delays.append((next_at - moment).total_seconds())
        moment = next_at

    for delay, base in zip(delays, (10, 40, 160), strict=True):
        assert base <= delay <= base * 1.25


def test_a_connection_error_is_retryable(sink):
    channel = NotificationChannelFactory(config={"url": sink.hook_url()})
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)
    sink.stop()

    assert delivery_send(delivery_id) == "pending"
    assert "Connection error" in Delivery.objects.get(pk=delivery_id).last_error


def test_a_url_refused_by_the_outbound_rules_fails_permanently_without_a_request(sink, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    channel = NotificationChannelFactory(config={"url": sink.hook_url()})
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)

    assert delivery_send(delivery_id) == "failed"
    assert sink.received() == []
    assert "private" in Delivery.objects.get(pk=delivery_id).last_error


def test_channel_headers_are_sent_and_no_signature_without_a_secret(sink):
    channel = NotificationChannelFactory(config={"url": sink.hook_url(), "headers": {"Authorization": "Bearer t"}})
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)

    assert delivery_send(delivery_id) == "sent"

    [request] = sink.received()
    assert header(request, "Authorization") == "Bearer t"
    assert header(request, "X-HSI-Signature") is None


def test_an_open_breaker_is_a_retryable_failure_without_a_request_or_an_attempt(sink, settings):
    settings.CIRCUIT_FAILURE_THRESHOLD = 2
    sink.answer(500, 500)
    channel = NotificationChannelFactory(config={"url": sink.hook_url()})
    ids = [
        deliveries_create_for_alert(make_alert([channel], camera=CameraFactory(id=f"cam_{n}", name=f"Cam {n}")).id)[0]
        for n in range(3)
    ]

    assert [delivery_send(delivery_id) for delivery_id in ids] == ["pending", "pending", "pending"]

    assert len(sink.received()) == 2  # the third never left: the webhook breaker opened after two failures
    third = Delivery.objects.get(pk=ids[2])
    assert (third.attempts, third.response_status) == (0, None)  # an open breaker costs no attempt
    assert "open" in third.last_error


def test_the_first_success_broadcasts_alert_delivered_once(sink, events_stream, django_capture_on_commit_callbacks):
    channels = [NotificationChannelFactory(config={"url": sink.hook_url()}) for _ in range(2)]
    alert = make_alert(channels)
    first, second = deliveries_create_for_alert(alert.id)

    with django_capture_on_commit_callbacks(execute=True):
        assert delivery_send(first) == "sent"
        assert delivery_send(second) == "sent"

    delivered = [m for m in events_stream.drain() if m["type"] == "alert.delivered"]
    assert len(delivered) == 1
    assert delivered[0]["data"]["id"] == str(alert.id)
    assert (delivered[0]["data"]["status"], delivered[0]["data"]["version"]) == ("delivered", 2)
    assert Alert.objects.get(pk=alert.pk).version == 2


def test_an_acknowledged_alert_keeps_its_status_when_a_delivery_succeeds(sink):
    channel = NotificationChannelFactory(config={"url": sink.hook_url()})
    alert = make_alert([channel])
    [delivery_id] = deliveries_create_for_alert(alert.id)
    Alert.objects.filter(pk=alert.pk).update(status="acknowledged")

    assert delivery_send(delivery_id) == "sent"
    assert Alert.objects.get(pk=alert.pk).status == "acknowledged"
