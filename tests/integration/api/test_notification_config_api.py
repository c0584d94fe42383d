"""``GET /api/notifications/config`` (CONTRACT §2.8): what is configured, never a secret."""

from __future__ import annotations

import pytest

from tests.factories import NotificationChannelFactory

pytestmark = pytest.mark.django_db

URL = "/api/notifications/config"


def test_config_reports_the_notification_settings(api_client, settings):
    settings.NOTIFICATIONS_ENABLED = True
    settings.EMAIL_HOST = "smtp.example.test"
    settings.MQTT_URL = "mqtt://127.0.0.1:1883"
    settings.PUBLIC_BASE_URL = "https://hsi.example.test"
    settings.WEBHOOK_TIMEOUT_SECONDS = 12

    response = api_client.get(URL)

    assert response.status_code == 200
    assert response.json() == {
        "notifications_enabled": True,
        "email_configured": True,
        "mqtt_configured": True,
        "public_base_url": "https://hsi.example.test",
        "webhook_timeout_seconds": 12,
    }


def test_config_when_nothing_is_configured(api_client, settings):
    settings.NOTIFICATIONS_ENABLED = False
    settings.EMAIL_HOST = None
    settings.MQTT_URL = None

    body = api_client.get(f"{URL}/").json()

    assert (body["notifications_enabled"], body["email_configured"], body["mqtt_configured"]) == (False, False, False)


def test_config_never_shows_credentials(api_client, settings):
    """Every secret HSI holds is set (mail and broker settings, channel secrets, header tokens, broker URL
    passwords): the configuration shows none of them, only whether each transport is configured."""
    settings.NOTIFICATIONS_ENABLED = True
    settings.EMAIL_HOST = "smtp.example.test"
    settings.EMAIL_HOST_USER = "mailer"
    settings.EMAIL_HOST_PASSWORD = "mail-Pass-31"
    settings.MQTT_URL = "mqtt://hsi:mqtt-Pass-32@127.0.0.1:1883"
    NotificationChannelFactory(
        name="Phone",
        config={"url": "https://hooks.example.test/h", "headers": {"Authorization": "Bearer hdr-Token-33"}},
        secret="hmac-Secret-34",
    )
    NotificationChannelFactory(
        name="Broker", kind="mqtt", config={"broker_url": "mqtt://ha:chan-Pass-35@broker.test:1883"}, secret="s-36"
    )

    response = api_client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert (body["email_configured"], body["mqtt_configured"]) == (True, True)
    text = response.content.decode()
    for secret in (
        "mail-Pass-31",
        "mqtt-Pass-32",
        "hdr-Token-33",
        "hmac-Secret-34",
        "chan-Pass-35",
        "s-36",
        "mailer",
        "smtp.example.test",
        "127.0.0.1:1883",
        "broker.test",
        "hooks.example.test",
    ):
        assert secret not in text


def test_config_is_read_only(api_client):
    assert api_client.post(URL, {}, format="json").status_code == 405
