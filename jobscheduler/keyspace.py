"""Where the service's keys live in Redis: one prefix, split into shards that share a hash tag.

Keys of one shard share the tag ``{<prefix>:<shard>}``, so every Lua step that touches one
shard stays in one slot and the shards spread over a Redis Cluster. The due index
(schedules.due_index) and the run queue (jobs.runqueue) hang their keys off the same shards.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import redis
from django.conf import settings


@dataclass(frozen=True, eq=False)
class Keyspace:
    """A Redis connection, a key prefix and a shard count: what every Redis-side part shares."""

    client: redis.Redis
    prefix: str
    shards: int

    def shard_of(self, ident: str) -> int:
        return zlib.crc32(ident.encode()) % self.shards

    def tag(self, shard: int) -> str:
        return f"{{{self.prefix}:{shard}}}"

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


def redis_client() -> redis.Redis:
    """The shared connection pool from django-redis (``REDIS_URL``)."""
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
