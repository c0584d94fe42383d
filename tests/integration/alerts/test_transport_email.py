"""E-mail deliveries reach a real SMTP server with subject, text, HTML and the thumbnail (CONTRACT §5.9)."""

from __future__ import annotations

import pytest

from alerts.models import Delivery
from alerts.payloads import test_payload
from alerts.services.deliveries import deliveries_create_for_alert, delivery_send
from alerts.transports.base import transport_for
from events.models import EventDetection
from pipeline.models import FailedJob
from tests.factories import DetectionFactory, NotificationChannelFactory
from tests.fakes.smtp_sink import SmtpSink
from tests.images import jpeg_bytes
from tests.integration.alerts.delivery_support import PUBLIC, T0, make_alert, outbox_env  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("outbox_env")]


@pytest.fixture
def smtp(settings):
    sink = SmtpSink().start()
    settings.EMAIL_HOST = sink.host
    settings.EMAIL_PORT = sink.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "hsi@example.test"
    yield sink
    sink.stop()


def email_channel(**config):
    return NotificationChannelFactory(kind="email", config={"to": ["owner@example.test"], **config})


def alert_with_thumbnail(channel, data_dir):
    alert = make_alert([channel], created_at=T0)
    thumbnail = data_dir / "thumbnails" / "thumb.jpg"
    thumbnail.parent.mkdir(parents=True, exist_ok=True)
    thumbnail.write_bytes(jpeg_bytes(320, 240, seed=7))
    detection = DetectionFactory(camera=alert.camera, thumbnail_path=str(thumbnail), confidence=0.95)
    EventDetection.objects.create(event_id=alert.event_id, detection=detection)
    return alert, thumbnail.read_bytes()


def test_an_email_arrives_with_subject_text_html_and_the_thumbnail(smtp, data_dir):
    channel = email_channel(subject_prefix="[Home]")
    alert, jpeg = alert_with_thumbnail(channel, data_dir)
    [delivery_id] = deliveries_create_for_alert(alert.id)

    assert delivery_send(delivery_id) == "sent"

    [received] = smtp.received
    message = received.message
    assert received.rcpt_tos == ["owner@example.test"]
    assert message["From"] == "hsi@example.test"
    assert message["Subject"] == "[Home] HIGH alert: Night person on Front Door"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "A person at the door" in text
    assert "Front Door" in text
    assert "2024-05-01 12:00:00 UTC" in text
    assert f"{PUBLIC}/api/events/{alert.event_id}" in text
    html = message.get_body(preferencelist=("html",)).get_content()
    assert f'href="{PUBLIC}/api/events/{alert.event_id}"' in html
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "image/jpeg"
    assert attachment.get_content() == jpeg
    assert Delivery.objects.get(pk=delivery_id).alert.status == "delivered"


def test_no_attachment_when_attach_thumbnail_is_off(smtp, data_dir):
    channel = email_channel(attach_thumbnail=False)
    alert, _ = alert_with_thumbnail(channel, data_dir)
    [delivery_id] = deliveries_create_for_alert(alert.id)

    assert delivery_send(delivery_id) == "sent"

    assert list(smtp.messages[0].iter_attachments()) == []
    assert smtp.messages[0]["Subject"] == "[HSI] HIGH alert: Night person on Front Door"


def test_a_temporary_smtp_error_is_retried(smtp):
    smtp.fail_temporarily()
    channel = email_channel()
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)

    assert delivery_send(delivery_id) == "pending"
    assert "451" in Delivery.objects.get(pk=delivery_id).last_error


def test_a_permanent_smtp_error_fails_with_a_dead_letter(smtp):
    smtp.fail_permanently()
    channel = email_channel()
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)

    assert delivery_send(delivery_id) == "failed"
    assert "554" in Delivery.objects.get(pk=delivery_id).last_error
    assert FailedJob.objects.get().error_type == "smtp_permanent"


def test_a_refused_connection_is_retryable(smtp):
    channel = email_channel()
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)
    smtp.stop()

    assert delivery_send(delivery_id) == "pending"


def test_an_invalid_address_fails_permanently(smtp):
    channel = email_channel(to=["not an address\n"])
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)

    assert delivery_send(delivery_id) == "failed"
    assert smtp.received == []


def test_the_test_payload_is_sent_as_a_test_email(smtp):
    result = transport_for("email").send(email_channel(), test_payload(), event_type="test", delivery_id="test")

    assert result.success
    assert smtp.messages[0]["Subject"] == "[HSI] TEST alert: Test notification on Test camera"
