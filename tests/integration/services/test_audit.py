"""The audit trail service (CONTRACT §6.8) and the API-key services that write to it (§6.1)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.http import HttpResponse
from django.test import RequestFactory
from rest_framework.request import Request

from hsi.middleware import RequestIdMiddleware
from system.models import ApiKey, AuditLog
from system.services import (
    SECRET_MASK,
    Actor,
    actor_from_request,
    api_key_create,
    api_key_revoke,
    audit_record,
    audit_record_throttled,
    changes_between,
)

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


# --- audit_record ------------------------------------------------------------------------------------------


def test_audit_record_stores_every_field():
    actor = Actor(name="api_key:ops", ip_address="192.0.2.1", user_agent="hsi-cli/1", request_id="req-9")

    with time_machine.travel(T0, tick=False):
        row = audit_record(actor, "camera_updated", "camera", "front_door", details={"changes": {"a": 1}})

    row = AuditLog.objects.get(pk=row.pk)
    assert (row.action, row.resource_type, row.resource_id) == ("camera_updated", "camera", "front_door")
    assert (row.actor, row.ip_address, row.user_agent, row.request_id) == (
        "api_key:ops",
        "192.0.2.1",
        "hsi-cli/1",
        "req-9",
    )
    assert row.details == {"changes": {"a": 1}} and row.status == "success" and row.timestamp == T0


def test_audit_record_defaults_and_failure_status():
    row = audit_record(Actor(), "alert_dismissed", "alert", status="failure")

    assert row.actor == "anonymous" and row.resource_id is None and row.details == {} and row.status == "failure"


def test_resource_ids_of_any_type_are_stored_as_text():
    import uuid

    ident = uuid.uuid4()

    assert audit_record(Actor(), "rule_deleted", "alert_rule", ident).resource_id == str(ident)
    assert audit_record(Actor(), "event_deleted", "event", 42).resource_id == "42"


def test_overlong_values_are_truncated_not_rejected():
    actor = Actor(name="api_key:" + "n" * 300, user_agent="u" * 2000, request_id="r" * 64)

    row = audit_record(actor, "camera_created", "camera", "c" * 400)

    row.refresh_from_db()
    assert len(row.actor) == 150 and len(row.user_agent) == 500 and len(row.resource_id) == 255


def test_system_actor_has_a_name_and_no_request_context():
    assert Actor.system("cli") == Actor(name="cli")
    assert audit_record(Actor.system("retention"), "cleanup_executed", "system").actor == "retention"


def test_audit_row_is_part_of_the_callers_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(Actor(), "camera_deleted", "camera", "front_door")
        raise RuntimeError("the change failed")

    assert not AuditLog.objects.filter(action="camera_deleted").exists()


# --- audit_record_throttled --------------------------------------------------------------------------------


def test_throttled_audit_writes_once_per_key_per_minute():
    def record(key):
        return audit_record_throttled(Actor(), "rate_limit_exceeded", "request", key=key, status="failure")

    with time_machine.travel(T0, tick=False):
        first, duplicate, other_key = (
            record("default:192.0.2.1"),
            record("default:192.0.2.1"),
            record("media:192.0.2.1"),
        )
    with time_machine.travel(T0 + dt.timedelta(seconds=59), tick=False):
        still_quiet = record("default:192.0.2.1")
    with time_machine.travel(T0 + dt.timedelta(seconds=60), tick=False):
        next_minute = record("default:192.0.2.1")

    assert first is not None and other_key is not None and next_minute is not None
    assert duplicate is None and still_quiet is None
    assert AuditLog.objects.filter(action="rate_limit_exceeded").count() == 3


def test_throttle_keys_are_per_action():
    audit_record_throttled(Actor(), "auth_failed", "request", key="192.0.2.1")

    assert audit_record_throttled(Actor(), "media_access_denied", "media", key="192.0.2.1") is not None


# --- changes_between ---------------------------------------------------------------------------------------


def test_changes_lists_only_fields_that_differ():
    before = {"name": "Front", "enabled": True, "silence": None}
    after = {"name": "Front Door", "enabled": True, "silence": 30}

    assert changes_between(before, after) == {
        "name": {"old": "Front", "new": "Front Door"},
        "silence": {"old": None, "new": 30},
    }


def test_changes_of_a_field_new_to_the_object_has_old_none():
    assert changes_between({}, {"label": "x"}) == {"label": {"old": None, "new": "x"}}


def test_changes_serialise_times_and_other_values_as_json():
    import uuid

    ident = uuid.UUID("00000000-0000-4000-8000-000000000001")
    when = dt.datetime(2024, 1, 1, 8, 30, tzinfo=dt.UTC)

    changes = changes_between(
        {"at": None, "zone": None, "start": None}, {"at": when, "zone": ident, "start": dt.time(22)}
    )

    assert changes == {
        "at": {"old": None, "new": "2024-01-01T08:30:00Z"},
        "zone": {"old": None, "new": str(ident)},
        "start": {"old": None, "new": "22:00:00"},
    }


def test_named_secret_fields_are_masked():
    changes = changes_between({"webhook_key": "old-key"}, {"webhook_key": "new-key"}, frozenset({"webhook_key"}))

    assert changes == {"webhook_key": {"old": SECRET_MASK, "new": SECRET_MASK}}


def test_secret_fields_are_masked_even_if_the_caller_forgets_to_name_them():
    changes = changes_between({"secret": "s1", "password": ""}, {"secret": "s2", "password": "pw"})

    assert changes == {
        "secret": {"old": "***", "new": "***"},
        "password": {"old": "***", "new": "***"},
    }


def test_secrets_nested_in_json_values_are_masked():
    before = {"config": {"host": "smtp.local", "password": "hunter2"}}
    after = {"config": {"host": "smtp.example", "password": "hunter3", "nested": [{"token": "t"}]}}

    changes = changes_between(before, after)

    assert changes == {
        "config": {
            "old": {"host": "smtp.local", "password": "***"},
            "new": {"host": "smtp.example", "password": "***", "nested": [{"token": "***"}]},
        }
    }
    assert "hunter" not in str(changes)


def test_unchanged_secret_is_not_reported():
    assert changes_between({"secret": "same"}, {"secret": "same"}) == {}


# --- actor_from_request ------------------------------------------------------------------------------------


def _request(**meta):
    request = RequestFactory().get("/api/cameras", **meta)
    request.user = AnonymousUser()
    return request


def _through_request_id_middleware(request):
    RequestIdMiddleware(lambda r: HttpResponse())(request)
    return request


def test_actor_from_request_picks_ip_user_agent_and_request_id():
    request = _through_request_id_middleware(
        _request(REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="Mozilla/5.0", HTTP_X_REQUEST_ID="abc-1")
    )

    assert actor_from_request(request) == Actor(
        name="anonymous", ip_address="203.0.113.9", user_agent="Mozilla/5.0", request_id="abc-1"
    )


def test_actor_from_a_drf_request_is_the_same():
    django_request = _through_request_id_middleware(_request(REMOTE_ADDR="203.0.113.9", HTTP_X_REQUEST_ID="abc-2"))

    actor = actor_from_request(Request(django_request))

    assert actor.request_id == "abc-2" and actor.ip_address == "203.0.113.9"


def test_actor_ip_is_the_forwarded_client_behind_a_trusted_proxy(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]

    actor = actor_from_request(_request(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.20, 127.0.0.1"))

    assert actor.ip_address == "198.51.100.20"


def test_actor_user_agent_is_truncated_to_500_characters():
    assert len(actor_from_request(_request(HTTP_USER_AGENT="x" * 900)).user_agent) == 500


def test_actor_names_the_authenticated_api_key_or_user():
    by_key = _request()
    by_key.hsi_actor = "api_key:ops"
    by_user = _request()
    by_user.user = get_user_model()(username="alice")

    assert actor_from_request(by_key).name == "api_key:ops"
    assert actor_from_request(by_user).name == "user:alice"
    assert actor_from_request(_request()).name == "anonymous"


def test_actor_without_remote_addr_has_no_ip():
    request = _request()
    del request.META["REMOTE_ADDR"]

    assert actor_from_request(request).ip_address is None


# --- API keys ----------------------------------------------------------------------------------------------


def test_api_key_create_writes_an_audit_row_without_the_key():
    created = api_key_create("grafana", expires_days=30, actor=Actor(name="user:alice"))

    row = AuditLog.objects.get(action="api_key_created")
    assert (row.resource_type, row.resource_id, row.actor) == ("api_key", "grafana", "user:alice")
    assert created.plaintext not in str(row.details)
    assert created.api_key.expires_at is not None


def test_api_key_revoke_audits_once_and_keeps_the_first_revocation_time():
    api_key_create("grafana")

    with time_machine.travel(T0, tick=False):
        first = api_key_revoke("grafana")
    with time_machine.travel(T0 + dt.timedelta(hours=1), tick=False):
        again = api_key_revoke("grafana")

    assert first.revoked_at == T0 and again.revoked_at == T0
    assert ApiKey.objects.get(name="grafana").revoked_at == T0
    assert AuditLog.objects.filter(action="api_key_revoked").count() == 1
    assert AuditLog.objects.get(action="api_key_revoked").actor == "cli"


def test_revoking_an_unknown_key_returns_none_and_audits_nothing():
    assert api_key_revoke("nobody") is None
    assert not AuditLog.objects.filter(action="api_key_revoked").exists()
