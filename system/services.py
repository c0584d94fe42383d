"""System writes: the audit trail (CONTRACT §6.8) and API keys (§6.1)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from hsi.net import client_ip
from system.auth import generate_key, hash_key
from system.models import ApiKey, AuditLog, AuditStatus

SECRET_MASK = "***"
# Field and nested-key names whose values never appear in an audit row, whatever the caller passes (§6.8, §7).
SECRET_NAMES = frozenset({"secret", "password", "api_key", "key_hash", "token"})
AUDIT_THROTTLE_SECONDS = 60


@dataclass(frozen=True)
class Actor:
    """Who did something, and from where; travels from the request (or a command) into services."""

    name: str = "anonymous"
    ip_address: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(name=name)


def actor_from_request(request) -> Actor:
    django_request = getattr(request, "_request", request)
    user = getattr(django_request, "user", None)
    if getattr(django_request, "hsi_actor", None):
        name = django_request.hsi_actor
    elif user is not None and user.is_authenticated:
        name = f"user:{user.get_username()}"
    else:
        name = "anonymous"
    agent = django_request.META.get("HTTP_USER_AGENT")
    return Actor(
        name=name,
        ip_address=client_ip(django_request),
        user_agent=agent[:500] if agent else None,
        request_id=getattr(django_request, "request_id", None),
    )


def audit_record(
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: Any = None,
    *,
    details: dict | None = None,
    status: str = AuditStatus.SUCCESS,
) -> AuditLog:
    return AuditLog.objects.create(
        action=action[:50],
        resource_type=resource_type[:50],
        resource_id=None if resource_id is None else _storable(str(resource_id))[:255],
        actor=_storable(actor.name)[:150],
        ip_address=actor.ip_address,
        user_agent=_storable(actor.user_agent)[:500] if actor.user_agent else None,
        request_id=actor.request_id[:64] if actor.request_id else None,
        details=_storable(details or {}),
        status=status,
    )


def _storable(value: Any) -> Any:
    """``value`` with NUL characters written as ``%00``: PostgreSQL refuses them in text and JSON, and an attacker
    chooses the paths and headers an audit row records."""
    if isinstance(value, str):
        return value.replace("\x00", "%00")
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(item) for item in value]
    return value


def audit_record_throttled(
    actor: Actor | Callable[[], Actor], action: str, resource_type: str, *, key: str, **kwargs
) -> AuditLog | None:
    """At most one row per ``action`` and ``key`` (e.g. the client IP) per minute (§6.1, §6.2, §6.8).

    ``actor`` may be a callable, called only when a row is written (naming the actor can cost a key lookup).

    The cache entry holds the time of the recorded row, so the minute follows the application clock (and a
    test's time-machine), not only the cache's own expiry.
    """
    cache_key = f"hsi:audit-throttle:{action}:{key}"
    now = timezone.now().timestamp()
    if not cache.add(cache_key, now, AUDIT_THROTTLE_SECONDS):
        recorded = cache.get(cache_key)
        if recorded is not None and now - float(recorded) < AUDIT_THROTTLE_SECONDS:
            return None
        cache.set(cache_key, now, AUDIT_THROTTLE_SECONDS)
    return audit_record(actor() if callable(actor) else actor, action, resource_type, **kwargs)


def changes_between(before: dict, after: dict, secret_fields: frozenset[str] = frozenset()) -> dict:
    """``{field: {old, new}}`` for the fields whose value differs.

    Secrets are shown as ``***``: the fields named in ``secret_fields`` or in ``SECRET_NAMES``, and keys of those
    names nested in JSON values (e.g. a channel ``config`` carrying a ``password``).
    """
    secrets = SECRET_NAMES | secret_fields
    changes = {}
    for field, new in after.items():
        old = before.get(field)
        if old != new:
            if field in secrets:
                old, new = SECRET_MASK, SECRET_MASK
            changes[field] = {"old": _masked(_jsonable(old), secrets), "new": _masked(_jsonable(new), secrets)}
    return changes


def _masked(value: Any, secrets: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: SECRET_MASK if k in secrets else _masked(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(item, secrets) for item in value]
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    plaintext: str


@transaction.atomic
def api_key_create(name: str, *, expires_days: int | None = None, actor: Actor | None = None) -> CreatedApiKey:
    plaintext = generate_key()
    expires_at = timezone.now() + dt.timedelta(days=expires_days) if expires_days else None
    api_key = ApiKey.objects.create(
        name=name, prefix=plaintext[:12], key_hash=hash_key(plaintext), expires_at=expires_at
    )
    audit_record(actor or Actor.system("cli"), "api_key_created", "api_key", api_key.name)
    return CreatedApiKey(api_key=api_key, plaintext=plaintext)


@transaction.atomic
def api_key_revoke(name: str, *, actor: Actor | None = None) -> ApiKey | None:
    api_key = ApiKey.objects.select_for_update().filter(name=name).first()
    if api_key is None:
        return None
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(actor or Actor.system("cli"), "api_key_revoked", "api_key", api_key.name)
    return api_key


def circuit_breaker_reset(name: str, *, actor: Actor) -> dict | None:
    """Close breaker ``name`` (CONTRACT §2.11) and write ``circuit_breaker_reset``; None for an unknown name."""
    from hsi.resilience import BREAKER_NAMES, CLOSED, breaker

    if name not in BREAKER_NAMES:
        return None
    circuit = breaker(name)
    previous = circuit.snapshot().state
    circuit.reset()
    audit_record(actor, "circuit_breaker_reset", "circuit_breaker", name, details={"previous_state": previous})
    return {"name": name, "previous_state": previous, "state": CLOSED}
