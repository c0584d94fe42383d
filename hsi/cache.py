"""Django's Redis cache, reusing one client per connection pool.

Django builds a new ``redis.Redis`` object for every cache operation; building its response-callback table costs
about as much as the round trip itself, on every list request (``hsi.api.counts``). ``redis.Redis`` is safe to
share between threads (connections come from the pool), so one per pool is kept.
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
