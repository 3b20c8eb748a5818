"""Where the service's keys live in Redis: one prefix, split into shards that share a hash tag.

Keys of one shard share the tag ``{<prefix>:<shard>}``, so every Lua step that touches one
shard stays in one slot. On a Redis Cluster the tag carries a suffix that spaces the shards'
slots evenly, so they spread evenly over the masters (jobscheduler.redis_cluster). The due index
(schedules.due_index) and the run queue (jobs.runqueue) hang their keys off the same shards.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import redis
from django.conf import settings

from jobscheduler import redis_cluster


@dataclass(frozen=True, eq=False)
class Keyspace:
    """A Redis connection, a key prefix and a shard count: what every Redis-side part shares."""

    client: redis.Redis  # or a redis.RedisCluster (JOBSCHEDULER_REDIS_CLUSTER)
    prefix: str
    shards: int

    @cached_property
    def cluster(self) -> bool:
        """Whether the client is a Redis Cluster's (keys of different shards live on different nodes)."""
        return redis_cluster.is_cluster(self.client)

    @cached_property
    def _tags(self) -> list[str]:
        if self.cluster:
            return [redis_cluster.spread_tag(self.prefix, shard, self.shards) for shard in range(self.shards)]
        return [f"{{{self.prefix}:{shard}}}" for shard in range(self.shards)]

    def shard_of(self, ident: str) -> int:
        return zlib.crc32(ident.encode()) % self.shards

    def tag(self, shard: int) -> str:
        return self._tags[shard]

    def key(self, shard: int, name: str) -> str:
        """A key of one shard, in its hash slot."""
        return f"{self.tag(shard)}:{name}"

    def global_key(self, name: str) -> str:
        """A key outside the shards (heartbeats, locks, markers)."""
        return f"{self.prefix}:{name}"

    @property
    def changes_channel(self) -> str:
        """The pub/sub channel on which schedule edits wake sleeping schedulers."""
        return self.global_key("changes")

    @property
    def job_changes_channel(self) -> str:
        """The pub/sub channel on which job edits reach workers (their cached jobs)."""
        return self.global_key("job-changes")


def redis_client() -> Any:
    """The shared client from django-redis (``REDIS_URL``): a ``redis.Redis``, or a
    ``redis.RedisCluster`` with ``JOBSCHEDULER_REDIS_CLUSTER`` (django-redis's client class is
    then jobscheduler.redis_cluster's)."""
    from django_redis import get_redis_connection

    return get_redis_connection("default")


_default: Keyspace | None = None


def default_keyspace() -> Keyspace:
    """The configured keyspace (``REDIS_URL``, ``JOBSCHEDULER_REDIS_PREFIX``, ``JOBSCHEDULER_SHARDS``), built once."""
    global _default
    if _default is None:
        _default = Keyspace(redis_client(), settings.JOBSCHEDULER_REDIS_PREFIX, int(settings.JOBSCHEDULER_SHARDS))
    return _default


def use_keyspace(keyspace: Keyspace | None) -> Keyspace | None:
    """Make ``keyspace`` the default (tests and benchmarks use private keys); returns the previous one."""
    global _default
    previous, _default = _default, keyspace
    return previous
