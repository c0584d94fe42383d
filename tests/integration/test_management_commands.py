"""``create_api_key`` / ``revoke_api_key`` (CONTRACT §8.1) against the real API-key authentication (§6.1)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from system.models import ApiKey, AuditLog

pytestmark = pytest.mark.django_db

KEY_PATTERN = re.compile(r"^hsi_[A-Za-z0-9_-]{32}$")
PROTECTED_PATH = "/api/nothing"  # no such route: 404 once authenticated, 401 before


def create_key(*args: str) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("create_api_key", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def revoke_key(name: str) -> str:
    stdout = io.StringIO()
    call_command("revoke_api_key", name, stdout=stdout)
    return stdout.getvalue()


@pytest.fixture
def auth_enabled(settings):
    settings.API_KEY_ENABLED = True
    settings.API_KEYS = ""


def test_create_api_key_prints_a_key_that_authenticates(api_client, auth_enabled):
    # When an operator creates a key
    stdout, stderr = create_key("ci-bot")

    # Then the key alone is printed, and the message says it is shown only once
    key = stdout.strip()
    assert KEY_PATTERN.match(key), stdout
    assert "ci-bot" in stderr and "only this once" in stderr
    # And only its hash is stored
    row = ApiKey.objects.get(name="ci-bot")
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest() and row.prefix == key[:12]
    assert row.expires_at is None and row.revoked_at is None
    assert AuditLog.objects.filter(action="api_key_created", resource_type="api_key", resource_id="ci-bot").exists()

    # And the key passes authentication on a protected path, while no key is refused
    with_key = api_client.get(PROTECTED_PATH, HTTP_X_API_KEY=key)
    assert with_key.status_code == 404
    without_key = api_client.get(PROTECTED_PATH)
    assert without_key.status_code == 401 and without_key.json()["code"] == "authentication_required"


def test_expires_days_sets_the_expiry(auth_enabled):
    before = timezone.now()
    _, stderr = create_key("temporary", "--expires-days", "7")

    expires_at = ApiKey.objects.get(name="temporary").expires_at
    assert before + dt.timedelta(days=7) <= expires_at <= timezone.now() + dt.timedelta(days=7)
    assert "expires " in stderr


@pytest.mark.parametrize("days", ["0", "-3", "soon"])
def test_expires_days_must_be_a_positive_whole_number(days):
    with pytest.raises(CommandError, match="expires-days"):
        create_key("bad-expiry", "--expires-days", days)
    assert not ApiKey.objects.filter(name="bad-expiry").exists()


def test_a_duplicate_name_is_refused_and_keeps_the_first_key(api_client, auth_enabled):
    first_key = create_key("shared")[0].strip()

    with pytest.raises(CommandError, match="already exists"):
        create_key("shared")

    assert ApiKey.objects.filter(name="shared").count() == 1
    assert api_client.get(PROTECTED_PATH, HTTP_X_API_KEY=first_key).status_code == 404


def test_a_blank_name_is_refused():
    with pytest.raises(CommandError, match="blank"):
        create_key("   ")
    assert not ApiKey.objects.exists()


def test_revoke_api_key_makes_the_key_invalid(api_client, auth_enabled):
    # Given a working key
    key = create_key("laptop")[0].strip()
    assert api_client.get(PROTECTED_PATH, HTTP_X_API_KEY=key).status_code == 404

    # When it is revoked
    output = revoke_key("laptop")

    # Then requests with it are refused as an invalid key, and the revocation is audited
    assert "Revoked API key 'laptop'" in output
    refused = api_client.get(PROTECTED_PATH, HTTP_X_API_KEY=key)
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_api_key" and refused["WWW-Authenticate"] == "ApiKey"
    assert ApiKey.objects.get(name="laptop").revoked_at is not None
    assert AuditLog.objects.filter(action="api_key_revoked", resource_id="laptop").count() == 1


def test_revoking_twice_says_so_and_audits_once(auth_enabled):
    create_key("old-phone")
    revoke_key("old-phone")
    first_revoked_at = ApiKey.objects.get(name="old-phone").revoked_at

    output = revoke_key("old-phone")

    assert "already revoked" in output
    assert ApiKey.objects.get(name="old-phone").revoked_at == first_revoked_at
    assert AuditLog.objects.filter(action="api_key_revoked", resource_id="old-phone").count() == 1


def test_revoking_an_unknown_name_is_an_error():
    with pytest.raises(CommandError, match="No API key named 'ghost'"):
        revoke_key("ghost")
    assert not AuditLog.objects.filter(action="api_key_revoked").exists()
