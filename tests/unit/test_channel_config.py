"""Per-kind channel config validation, defaults and redaction (CONTRACT §2.8, §6.7)."""

from __future__ import annotations

import pytest

from alerts.channel_config import redact_config, redact_url, restore_redacted, validate_channel_config
from hsi.api.errors import FieldValidationError


def errors_of(kind: str, config, *, creating: bool = True) -> dict[str, str]:
    with pytest.raises(FieldValidationError) as raised:
        validate_channel_config(kind, config, creating=creating)
    return {error["field"]: error["message"] for error in raised.value.errors}


# --- webhook -----------------------------------------------------------------------------------------------------


def test_webhook_defaults_fill_headers_and_the_configured_timeout(settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 7

    config = validate_channel_config("webhook", {"url": "http://127.0.0.1:8080/hook", "extra": "dropped"})

    assert config == {"url": "http://127.0.0.1:8080/hook", "headers": {}, "timeout_seconds": 7}


def test_webhook_keeps_valid_headers_and_timeout():
    config = validate_channel_config(
        "webhook",
        {"url": "https://127.0.0.1/h", "headers": {"Authorization": "Bearer x", "X-Team": "a"}, "timeout_seconds": 60},
    )

    assert config["headers"] == {"Authorization": "Bearer x", "X-Team": "a"}
    assert config["timeout_seconds"] == 60


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "config.url"),
        ({"url": 5}, "config.url"),
        ({"url": ""}, "config.url"),
        ({"url": "ftp://127.0.0.1/x"}, "config.url"),
        ({"url": "http://127.0.0.1/" + "a" * 2000}, "config.url"),
        ({"url": "http://user:pw@127.0.0.1/x"}, "config.url"),
        ({"url": "http://169.254.169.254/latest"}, "config.url"),
        ({"url": "http://224.0.0.1/x"}, "config.url"),
        ({"url": "http://0.0.0.0/x"}, "config.url"),
        ({"url": "http://8.8.8.8/x"}, "config.url"),
        ({"url": "http://127.0.0.1/x", "headers": []}, "config.headers"),
        ({"url": "http://127.0.0.1/x", "headers": {f"X-{i}": "v" for i in range(21)}}, "config.headers"),
        ({"url": "http://127.0.0.1/x", "headers": {"Host": "evil"}}, "config.headers.Host"),
        ({"url": "http://127.0.0.1/x", "headers": {"content-length": "1"}}, "config.headers.content-length"),
        ({"url": "http://127.0.0.1/x", "headers": {"Content-Type": "text/plain"}}, "config.headers.Content-Type"),
        ({"url": "http://127.0.0.1/x", "headers": {"X-HSI-Event": "forged"}}, "config.headers.X-HSI-Event"),
        ({"url": "http://127.0.0.1/x", "headers": {"X-Num": 5}}, "config.headers.X-Num"),
        ({"url": "http://127.0.0.1/x", "headers": {"Bad Name": "v"}}, "config.headers.Bad Name"),
        ({"url": "http://127.0.0.1/x", "headers": {"X-A": "a\r\nInjected: 1"}}, "config.headers.X-A"),
        ({"url": "http://127.0.0.1/x", "timeout_seconds": 0}, "config.timeout_seconds"),
        ({"url": "http://127.0.0.1/x", "timeout_seconds": 61}, "config.timeout_seconds"),
        ({"url": "http://127.0.0.1/x", "timeout_seconds": "10"}, "config.timeout_seconds"),
        ({"url": "http://127.0.0.1/x", "timeout_seconds": True}, "config.timeout_seconds"),
    ],
)
def test_webhook_violations_name_the_config_key(config, field):
    assert field in errors_of("webhook", config)


def test_webhook_to_a_public_host_needs_https():
    assert "https" in errors_of("webhook", {"url": "http://8.8.8.8/x"})["config.url"]


def test_private_webhook_targets_are_refused_when_private_networks_are_not_allowed(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False

    assert "config.url" in errors_of("webhook", {"url": "http://127.0.0.1/x"})
    assert "config.url" in errors_of("webhook", {"url": "http://192.168.1.10/x"})


def test_config_must_be_an_object():
    assert errors_of("webhook", ["http://127.0.0.1"]) == {"config": "Must be a JSON object"}


# --- email -------------------------------------------------------------------------------------------------------


def test_email_defaults(settings):
    settings.EMAIL_HOST = "smtp.example.test"

    config = validate_channel_config("email", {"to": ["a@example.com", " b@example.com ", "a@example.com"]})

    assert config == {"to": ["a@example.com", "b@example.com"], "subject_prefix": "[HSI]", "attach_thumbnail": True}


def test_email_without_email_host_is_not_configured_on_create_only(settings):
    settings.EMAIL_HOST = None

    with pytest.raises(FieldValidationError) as raised:
        validate_channel_config("email", {"to": ["a@example.com"]})
    assert raised.value.detail == "Email is not configured"
    assert validate_channel_config("email", {"to": ["a@example.com"]}, creating=False)["to"] == ["a@example.com"]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "config.to"),
        ({"to": []}, "config.to"),
        ({"to": "a@example.com"}, "config.to"),
        ({"to": [f"u{i}@example.com" for i in range(21)]}, "config.to"),
        ({"to": ["a@example.com", "not-an-address"]}, "config.to.1"),
        ({"to": [7]}, "config.to.0"),
        ({"to": ["a@example.com"], "subject_prefix": "x" * 51}, "config.subject_prefix"),
        ({"to": ["a@example.com"], "subject_prefix": 3}, "config.subject_prefix"),
        ({"to": ["a@example.com"], "attach_thumbnail": "yes"}, "config.attach_thumbnail"),
    ],
)
def test_email_violations(settings, config, field):
    settings.EMAIL_HOST = "smtp.example.test"

    assert field in errors_of("email", config)


# --- mqtt --------------------------------------------------------------------------------------------------------


def test_mqtt_defaults_come_from_settings_and_the_broker_url_stays_with_the_setting(settings):
    settings.MQTT_URL = "mqtt://user:pw@127.0.0.1:1883"
    settings.MQTT_TOPIC_PREFIX = "house"
    settings.MQTT_DISCOVERY_PREFIX = "ha"

    config = validate_channel_config("mqtt", {})

    assert config == {"topic_prefix": "house", "qos": 1, "discovery": True, "discovery_prefix": "ha"}


def test_mqtt_without_any_broker_is_not_configured(settings):
    settings.MQTT_URL = None

    with pytest.raises(FieldValidationError) as raised:
        validate_channel_config("mqtt", {})
    assert raised.value.detail == "MQTT broker not configured"
    assert validate_channel_config("mqtt", {"broker_url": "mqtts://broker.test:8883"})["broker_url"] == (
        "mqtts://broker.test:8883"
    )


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"broker_url": "http://broker"}, "config.broker_url"),
        ({"broker_url": "mqtt://"}, "config.broker_url"),
        ({"broker_url": 1883}, "config.broker_url"),
        ({"topic_prefix": "a//b"}, "config.topic_prefix"),
        ({"topic_prefix": "home/#"}, "config.topic_prefix"),
        ({"topic_prefix": "/hsi"}, "config.topic_prefix"),
        ({"topic_prefix": "a" * 101}, "config.topic_prefix"),
        ({"qos": 3}, "config.qos"),
        ({"qos": -1}, "config.qos"),
        ({"qos": True}, "config.qos"),
        ({"qos": 1.0}, "config.qos"),
        ({"discovery": 1}, "config.discovery"),
        ({"discovery_prefix": "bad prefix"}, "config.discovery_prefix"),
    ],
)
def test_mqtt_violations(settings, config, field):
    settings.MQTT_URL = "mqtt://127.0.0.1:1883"

    assert field in errors_of("mqtt", config)


def test_mqtt_accepts_nested_topic_prefixes_and_every_qos(settings):
    settings.MQTT_URL = "mqtt://127.0.0.1:1883"

    for qos in (0, 1, 2):
        config = validate_channel_config("mqtt", {"topic_prefix": "home/hsi-1", "qos": qos, "discovery": False})
        assert (config["topic_prefix"], config["qos"], config["discovery"]) == ("home/hsi-1", qos, False)


# --- redaction ---------------------------------------------------------------------------------------------------


def test_url_passwords_are_redacted_and_users_kept():
    assert redact_url("mqtt://user:hunter2@broker:1883/x") == "mqtt://user:***@broker:1883/x"
    assert redact_url("mqtt://broker:1883") == "mqtt://broker:1883"
    assert redact_url(None) is None


@pytest.mark.parametrize(
    "name", ["Authorization", "X-Api-Key", "x-auth-token", "X-SECRET-Value", "Proxy-Authorization"]
)
def test_secret_looking_headers_are_redacted(name):
    redacted = redact_config({"url": "http://h/x", "headers": {name: "s3cr3t", "X-Team": "blue"}})

    assert redacted["headers"] == {name: "***", "X-Team": "blue"}


def test_redaction_never_changes_the_stored_config():
    stored = {"broker_url": "mqtt://u:p@b", "headers": {"Authorization": "t"}}

    redact_config(stored)

    assert stored == {"broker_url": "mqtt://u:p@b", "headers": {"Authorization": "t"}}


def test_echoed_redactions_are_restored_from_the_stored_config():
    stored = {"url": "https://hooks.example.test/a", "headers": {"Authorization": "Bearer real"}}

    restored = restore_redacted(
        {"url": "https://hooks.example.test/b", "headers": {"Authorization": "***", "X-New": "***"}}, stored
    )

    assert restored == {
        "url": "https://hooks.example.test/b",
        "headers": {"Authorization": "Bearer real", "X-New": "***"},
    }


def test_an_echoed_url_password_is_restored_into_the_same_url_only():
    stored = {"broker_url": "mqtt://u:p@b:1883"}

    assert restore_redacted({"broker_url": "mqtt://u:***@b:1883"}, stored) == stored
    assert restore_redacted({"broker_url": "mqtt://u:***@evil:1883"}, stored) == {
        "broker_url": "mqtt://u:***@evil:1883"
    }


@pytest.mark.parametrize(
    "url", ["HTTPS://Hooks.Example.Test/other", "https://hooks.example.test:443/x?y=1", "https://hooks.example.test"]
)
def test_a_stored_header_value_is_restored_while_scheme_host_and_port_stay_the_same(url):
    stored = {"url": "https://hooks.example.test/a", "headers": {"X-Api-Key": "k-real"}}

    restored = restore_redacted({"url": url, "headers": {"X-Api-Key": "***"}}, stored)

    assert restored["headers"] == {"X-Api-Key": "k-real"}


@pytest.mark.parametrize(
    "url",
    [
        "https://attacker.example.test/a",  # another host
        "http://hooks.example.test/a",  # another scheme
        "https://hooks.example.test:8443/a",  # another port
        "https://hooks.example.test.attacker.test/a",  # a longer host with the stored one as a prefix
    ],
)
def test_a_stored_header_value_never_follows_the_url_to_another_origin(url):
    stored = {"url": "https://hooks.example.test/a", "headers": {"Authorization": "Bearer real", "X-Team": "blue"}}

    with pytest.raises(FieldValidationError) as raised:
        restore_redacted({"url": url, "headers": {"Authorization": "***", "X-Team": "***"}}, stored)

    errors = {error["field"]: error["message"] for error in raised.value.errors}
    assert errors == {
        "config.headers.Authorization": "Re-enter the value: the webhook URL's host changed",
        "config.headers.X-Team": "Re-enter the value: the webhook URL's host changed",
    }
    assert "Bearer real" not in str(raised.value.errors)


def test_re_entered_header_values_may_go_to_a_new_host():
    stored = {"url": "https://hooks.example.test/a", "headers": {"Authorization": "Bearer real"}}

    restored = restore_redacted(
        {"url": "https://new.example.test/a", "headers": {"Authorization": "Bearer new"}}, stored
    )

    assert restored["headers"] == {"Authorization": "Bearer new"}


@pytest.mark.parametrize("url", [None, 5, "not a url", "ftp://hooks.example.test/a"])
def test_without_a_usable_url_nothing_is_restored_and_the_url_check_refuses_the_config(url):
    stored = {"url": "https://hooks.example.test/a", "headers": {"Authorization": "Bearer real"}}
    incoming = (
        {"headers": {"Authorization": "***"}} if url is None else {"url": url, "headers": {"Authorization": "***"}}
    )

    restored = restore_redacted(incoming, stored)

    assert restored["headers"] == {"Authorization": "***"}
    assert "config.url" in errors_of("webhook", restored)


# --- header values -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["café", "cafe\u0301", "tok\x7fen", "a\x01b", "snow\u2603", "a\rb", "a\nb", "a\x00b", "\u00a0"]
)
def test_header_values_outside_visible_ascii_space_and_tab_are_refused(value):
    errors = errors_of("webhook", {"url": "http://127.0.0.1/x", "headers": {"X-Token": value}})

    assert errors == {
        "config.headers.X-Token": "Must contain only visible ASCII characters, spaces and tabs (no line breaks)"
    }


def test_header_values_may_hold_every_visible_ascii_character_spaces_and_tabs():
    value = "".join(chr(code) for code in range(0x20, 0x7F)) + "\tend"

    config = validate_channel_config("webhook", {"url": "http://127.0.0.1/x", "headers": {"X-Token": value, "X-E": ""}})

    assert config["headers"] == {"X-Token": value, "X-E": ""}


def test_header_values_are_at_most_1000_characters():
    ok = validate_channel_config("webhook", {"url": "http://127.0.0.1/x", "headers": {"X-A": "a" * 1000}})

    assert ok["headers"] == {"X-A": "a" * 1000}
    assert errors_of("webhook", {"url": "http://127.0.0.1/x", "headers": {"X-A": "a" * 1001}}) == {
        "config.headers.X-A": "Must be at most 1000 characters"
    }
