"""Operator forms of the alerts admin (CONTRACT §8.2, §5.1, §2.8): what an operator may save, and what is refused."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from alerts.admin import AlertRuleForm, NotificationChannelForm, NotificationPreferenceForm, QuietHoursForm
from tests.factories import CameraFactory, NotificationChannelFactory

pytestmark = pytest.mark.django_db


def rule_form(**overrides) -> AlertRuleForm:
    data = {
        "name": "  Night person  ",
        "description": "",
        "enabled": "on",
        "trigger": "event",
        "severity": "high",
        "risk_threshold": "",
        "object_types": "null",
        "camera_ids": "null",
        "zone_ids": "null",
        "min_confidence": "",
        "schedule": "null",
        "dedup_key_template": "{camera_id}:{rule_id}",
        "cooldown_seconds": "300",
        "channels": "null",
    }
    data.update({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in overrides.items()})
    return AlertRuleForm(data=data)


def test_a_valid_rule_is_stored_trimmed_lowercased_and_normalised():
    channel = NotificationChannelFactory()
    form = rule_form(
        object_types=["Person", "person", "CAR"],
        zone_ids=["6F9619FF-8B86-D011-B42D-00C04FC964FF"],
        schedule={"days": ["Friday", "friday"], "start_time": "22:00", "end_time": "06:00"},
        channels=[str(channel.id), str(channel.id)],
        dedup_key_template="{camera_id}:{object_type}.night-1",
    )

    assert form.is_valid(), form.errors
    cleaned = form.cleaned_data
    assert cleaned["name"] == "Night person"
    assert cleaned["object_types"] == ["person", "car"]
    assert cleaned["zone_ids"] == ["6f9619ff-8b86-d011-b42d-00c04fc964ff"]
    assert cleaned["schedule"] == {"days": ["friday"], "timezone": "UTC", "start_time": "22:00", "end_time": "06:00"}
    assert cleaned["channels"] == [str(channel.id)]


def test_an_empty_schedule_is_stored_as_no_schedule():
    form = rule_form(schedule={})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["schedule"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "   "),
        ("description", "x" * 5001),
        ("object_types", ["x" * 65]),
        ("object_types", "not-a-list"),
        ("camera_ids", [f"c{i}" for i in range(101)]),
        ("zone_ids", ["not-a-uuid"]),
        ("min_confidence", "1.5"),
        ("schedule", {"days": ["someday"]}),
        ("schedule", {"start_time": "22:00"}),
        ("schedule", {"start_time": "24:00", "end_time": "06:00"}),
        ("schedule", {"timezone": "Mars/Olympus"}),
        ("schedule", ["not", "an", "object"]),
        ("dedup_key_template", "{camera_id}:{password}"),
        ("dedup_key_template", "{camera_id} has spaces"),
        ("channels", ["00000000-0000-0000-0000-000000000000"]),
        ("channels", ["not-a-uuid"]),
        ("channels", {"a": 1}),
    ],
)
def test_each_rule_violation_is_reported_on_its_field(field, value):
    form = rule_form(**{field: value})

    assert not form.is_valid()
    assert field in form.errors


def test_a_camera_offline_rule_cannot_use_event_conditions():
    form = rule_form(trigger="camera_offline", risk_threshold="70", object_types=["person"])

    assert not form.is_valid()
    assert {"risk_threshold", "object_types"} <= set(form.errors)


def channel_form(instance=None, **overrides) -> NotificationChannelForm:
    data = {
        "name": "Phone",
        "kind": "webhook",
        "enabled": "on",
        "config": json.dumps({"url": "http://127.0.0.1:9/x"}),
        "secret": "",
        "min_severity": "low",
    }
    data.update(overrides)
    return NotificationChannelForm(data=data, instance=instance)


def test_the_channel_secret_is_write_only_and_blank_keeps_it():
    channel = NotificationChannelFactory(secret="s3cret")

    form = channel_form(instance=channel)
    rendered = str(form["secret"])
    assert "s3cret" not in rendered and "A secret is set." in form.fields["secret"].help_text
    assert form.is_valid(), form.errors
    assert form.save().secret == "s3cret"

    cleared = channel_form(instance=channel, clear_secret="on")
    assert cleared.is_valid(), cleared.errors
    assert cleared.save().secret == ""


def test_the_channel_form_applies_the_api_config_rules_and_never_shows_secret_header_values():
    # Given a webhook channel with a bearer token header
    config = {"url": "http://127.0.0.1:9/x", "headers": {"Authorization": "Bearer tok-123", "X-Team": "ops"}}
    channel = NotificationChannelFactory(config=config)

    # When an operator opens it, the token is masked; saving the masked form keeps the stored token
    form = NotificationChannelForm(instance=channel)
    assert "tok-123" not in str(form["config"]) and "***" in str(form["config"])
    saved = channel_form(instance=channel, config=json.dumps(form.initial["config"]))
    assert saved.is_valid(), saved.errors
    assert saved.save().config["headers"] == {"Authorization": "Bearer tok-123", "X-Team": "ops"}

    # And the rules of the API hold: reserved headers and link-local hosts are refused, defaults filled in
    reserved = channel_form(config=json.dumps({"url": "http://127.0.0.1:9/x", "headers": {"X-HSI-Event": "x"}}))
    link_local = channel_form(config=json.dumps({"url": "http://169.254.169.254/latest"}))
    assert not reserved.is_valid() and "config.headers" in reserved.errors["config"][0]
    assert not link_local.is_valid() and "config.url" in link_local.errors["config"][0]
    fresh = channel_form(name="Fresh")
    assert fresh.is_valid(), fresh.errors
    assert fresh.save().config["timeout_seconds"] > 0


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("webhook", {"url": "ftp://example.test"}),
        ("webhook", []),
        ("email", {"to": []}),
        ("email", {"to": ["not-an-address"]}),
        ("mqtt", {"broker_url": "http://broker"}),
    ],
)
def test_channel_config_is_checked_per_kind(kind, config):
    form = channel_form(kind=kind, config=json.dumps(config))

    assert not form.is_valid()
    assert "config" in form.errors


def test_a_blank_channel_name_is_refused():
    form = channel_form(name="   ")
    assert not form.is_valid() and "name" in form.errors


def test_camera_preferences_inherit_severities_but_the_global_row_needs_them():
    camera = CameraFactory()
    inherit = NotificationPreferenceForm(
        data={"camera": camera.pk, "enabled": "on", "severities": "null", "min_risk_score": "", "sound": "default"}
    )
    assert inherit.is_valid(), inherit.errors
    assert inherit.cleaned_data["severities"] is None

    global_row = NotificationPreferenceForm(
        data={"enabled": "on", "severities": json.dumps(["medium", "bogus"]), "min_risk_score": "0", "sound": "none"}
    )
    assert not global_row.is_valid() and "severities" in global_row.errors


def test_quiet_hours_need_different_times_and_known_weekdays():
    same = QuietHoursForm(data={"label": "n", "start_time": "22:00", "end_time": "22:00", "days": '["monday"]'})
    assert not same.is_valid() and "start_time" in same.errors  # where the API reports it

    unknown_day = QuietHoursForm(data={"label": "n", "start_time": "22:00", "end_time": "06:00", "days": '["funday"]'})
    assert not unknown_day.is_valid() and "days" in unknown_day.errors

    good = QuietHoursForm(
        data={"label": "n", "start_time": "22:00", "end_time": "06:00", "days": '["Monday", "monday"]'}
    )
    assert good.is_valid(), good.errors
    assert good.cleaned_data["days"] == ["monday"] and good.cleaned_data["start_time"] == dt.time(22, 0)


def test_moving_a_channel_to_another_host_needs_its_secret_headers_again():
    # Given a webhook channel with a token header, opened in the admin (the token shows as ***)
    config = {"url": "http://127.0.0.1:9/x", "headers": {"Authorization": "Bearer tok-123"}}
    channel = NotificationChannelFactory(config=config)
    masked = NotificationChannelForm(instance=channel).initial["config"]

    # When the operator points it at another host and saves the masked header
    moved = channel_form(instance=channel, config=json.dumps({**masked, "url": "http://127.0.0.2:9/x"}))

    # Then the form refuses it on config (no 500), and the stored token stays where it was
    assert not moved.is_valid()
    assert "config.headers.Authorization" in moved.errors["config"][0]
    channel.refresh_from_db()
    assert channel.config["url"] == "http://127.0.0.1:9/x"
