"""API keys (CONTRACT §6.1): only SHA-256 hashes are held; comparison is constant-time."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from system.models import ApiKey

KEY_PREFIX = "hsi_"
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)[:32]


@dataclass(frozen=True)
class EnvKey:
    name: str
    key_hash: str


@lru_cache(maxsize=4)
def _env_keys(raw: str) -> tuple[EnvKey, ...]:
    """``API_KEYS`` entries: ``name=key`` names a key; a bare key is ``env-<position>``.

    A bare key may itself end in ``=`` padding (base64): an entry whose part after the first ``=`` is empty or
    only ``=`` is a bare key, never a name with an empty key.
    """
    keys = []
    for index, entry in enumerate((e.strip() for e in raw.split(",") if e.strip()), start=1):
        name, _, key = (part.strip() for part in entry.partition("="))
        if not key.strip("="):
            name, key = "", entry
        if not key:
            continue
        keys.append(EnvKey(name=name or f"env-{index}", key_hash=hash_key(key)))
    return tuple(keys)


def env_keys() -> tuple[EnvKey, ...]:
    return _env_keys(settings.API_KEYS or "")


def authenticate_key(key: str) -> str | None:
    """The name of the key, or None when it is unknown, revoked or expired."""
    if not key:
        return None
    digest = hash_key(key)
    for env_key in env_keys():
        if hmac.compare_digest(env_key.key_hash, digest):
            return env_key.name
    row = ApiKey.objects.filter(key_hash=digest).first()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    now = timezone.now()
    if not row.is_active(now):
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        # Conditional, so concurrent requests of the same minute write the row once.
        ApiKey.objects.filter(pk=row.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
    return row.name
