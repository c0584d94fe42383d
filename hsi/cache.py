"""Django's Redis cache, reusing one client per connection pool.

Django builds a new ``redis.Redis`` object for every cache operation; building its response-callback table costs
about as much as the round trip itself, on every list request (``hsi.api.counts``). ``redis.Redis`` is safe to
share between threads (connections come from the pool), so one per pool is kept.

``clear`` deletes the cache's own keys, never the whole Redis database (which the broker and channel layer share).
"""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class PooledRedisCacheClient(RedisCacheClient):
    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        clients = self.__dict__.setdefault("_clients_by_pool", {})
        client = clients.get(id(pool))
        if client is None:
            client = clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = PooledRedisCacheClient

    def clear(self) -> None:
        """Delete this cache's keys only. The Redis database is shared with the Celery broker and the channel
        layer (and, in development, other instances by key prefix): Django's ``clear`` is a FLUSHDB, which would
        drop queued tasks and messages too."""
        client = self._cache.get_client(write=True)
        # "hsi:<version>:*" for every version, as Django's own keys are built; never "hsi:celery:…" or "hsi:asgi…".
        pattern = self.key_func("*", _glob_escape(self.key_prefix), "[0-9]*")
        batch = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.unlink(*batch)
                batch = []
        if batch:
            client.unlink(*batch)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)
