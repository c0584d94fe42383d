"""``hsi.cache.RedisCache`` on the real Redis: ``clear`` empties the cache and nothing else in the database."""

from __future__ import annotations

import redis
from django.conf import settings
from django.core.cache import cache


def test_clear_deletes_the_cache_keys_and_leaves_the_broker_and_channel_layer_alone():
    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    foreign = [f"{prefix}:celery:detection", f"{prefix}:asgi:group:hsi.events", "someone-else:1:key"]
    try:
        for key in foreign:
            client.set(key, "queued work")
        cache.set_many({f"k{n}": n for n in range(1500)})  # more than one SCAN/UNLINK round
        cache.set("other-version", 1, version=2)

        cache.clear()

        assert cache.get_many([f"k{n}" for n in range(1500)]) == {}
        assert [client.get(key) for key in foreign] == [b"queued work"] * 3
        assert cache.get("other-version", version=2) is None  # every version, as Django's clear
    finally:
        client.delete(*foreign)
        cache.delete("other-version", version=2)
        client.close()
