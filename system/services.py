"""System writes: the audit trail (CONTRACT §6.8) and API keys (§6.1)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from hsi.net import client_ip
from system.auth import generate_key, hash_key
from system.models import ApiKey, AuditLog, AuditStatus

SECRET_MASK = "***"


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
        action=action,
        resource_type=resource_type,
        resource_id=None if resource_id is None else str(resource_id),
        actor=actor.name[:150],
        ip_address=actor.ip_address,
        user_agent=actor.user_agent,
        request_id=actor.request_id,
        details=details or {},
        status=status,
    )


def audit_record_throttled(actor: Actor, action: str, resource_type: str, *, key: str, **kwargs) -> AuditLog | None:
    """At most one row per ``key`` (e.g. action + client IP) per minute (§6.1, §6.2, §6.8)."""
    if not cache.add(f"hsi:audit-throttle:{action}:{key}", 1, 60):
        return None
    return audit_record(actor, action, resource_type, **kwargs)


def changes_between(before: dict, after: dict, secret_fields: frozenset[str] = frozenset()) -> dict:
    """``{field: {old, new}}`` for the fields whose value differs; secrets masked."""
    changes = {}
    for field, new in after.items():
        old = before.get(field)
        if old != new:
            if field in secret_fields:
                old, new = SECRET_MASK, SECRET_MASK
            changes[field] = {"old": _jsonable(old), "new": _jsonable(new)}
    return changes


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, list | dict | str | int | float | bool) or value is None:
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
