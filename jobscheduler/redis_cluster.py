"""Redis Cluster mode (``JOBSCHEDULER_REDIS_CLUSTER=1``): the client, the shards' hash tags, routing by node.

Every part of the service reaches Redis through one client (jobscheduler.keyspace): with
cluster mode on it is redis-py's :class:`redis.RedisCluster`, built from ``REDIS_URL`` (any
node; the others are discovered), through django-redis so the cache (API throttles) shares it.
What differs on a cluster, and is handled where it happens:

- each shard's keys share a hash tag chosen here so that the shards' slots are evenly spaced
  over the 16384 slots, hence spread evenly over masters that hold equal ranges (as
  ``redis-cli --cluster create`` makes them);
- the scheduler's packed dispatch steps go to each master on a connection of their own
  (jobscheduler.scripts), and a worker reads every shard's stream in one round trip per node
  (jobs.runqueue): one XREADGROUP cannot span slots;
- change notices are classic pub/sub, which a cluster forwards to every node: a listener
  subscribes on any one node and moves to another when it goes (jobscheduler.notices);
- a slot moving (resharding) or a master failing over answers TRYAGAIN, MOVED, ASK or
  CLUSTERDOWN for a moment: redis-py follows redirections, and what stays an error counts as
  a Redis outage (jobscheduler.outages), retried.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import redis
from django_redis.client import DefaultClient
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

# How far from its ideal slot a shard's tag may land (in slots): close enough that masters
# holding equal ranges hold equal numbers of shards, loose enough to find a tag in a few
# hundred tries.
_SLOT_TOLERANCE = 32


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def connect(url: str, **options: Any) -> RedisCluster:
    """A cluster client from any node's URL. Failovers and slot moves are followed within
    redis-py's retries; what outlasts them surfaces as a Redis error (jobscheduler.outages)."""
    options.setdefault("socket_connect_timeout", 2.0)
    options.setdefault("socket_timeout", 10.0)
    return RedisCluster.from_url(url, **options)


def slot_of(key: str) -> int:
    """The hash slot of ``key`` (its hash tag's, when it has one)."""
    return int(key_slot(key.encode()))


def spread_tag(prefix: str, shard: int, shards: int) -> str:
    """The hash tag of ``shard``: ``{<prefix>:<shard>}`` with a suffix that puts its slot
    near ``(shard + 0.5) * 16384 / shards``, so consecutive shards sit on consecutive masters.

    Deterministic in (prefix, shard, shards): every process of a deployment finds the same tags.
    """
    ideal = int((shard + 0.5) * REDIS_CLUSTER_HASH_SLOTS / shards)
    tolerance = max(1, min(_SLOT_TOLERANCE, REDIS_CLUSTER_HASH_SLOTS // (4 * shards)))
    suffix = 0
    while True:
        body = f"{prefix}:{shard}.{suffix}"
        if abs(key_slot(body.encode()) - ideal) <= tolerance:
            return f"{{{body}}}"
        suffix += 1


def nodes(client: Any) -> list[ClusterNode]:
    """Every node the cluster client knows, masters and replicas."""
    known: list[ClusterNode] = client.get_nodes()
    return known


def node_of(client: Any, key: str) -> ClusterNode:
    """The master that serves ``key``'s slot now (as the client last learnt the slot map)."""
    node: ClusterNode = client.get_node_from_key(key)
    return node


def group_by_node(client: Any, keys: list[str]) -> dict[str, tuple[ClusterNode, list[int]]]:
    """Positions of ``keys`` by the name of the master that serves each: (node, positions)."""
    groups: dict[str, tuple[ClusterNode, list[int]]] = {}
    for position, key in enumerate(keys):
        node = node_of(client, key)
        groups.setdefault(node.name, (node, []))[1].append(position)
    return groups


def node_pool(client: Any, node: ClusterNode) -> redis.ConnectionPool:
    """The cluster client's connection pool to ``node``."""
    pool: redis.ConnectionPool = client.get_redis_connection(node).connection_pool
    return pool


def node_connection(client: Any, node: ClusterNode) -> redis.Connection:
    """A new connection to ``node``, configured as the cluster client's own (not from its pool)."""
    pool = node_pool(client, node)
    connection: redis.Connection = pool.connection_class(**pool.connection_kwargs)
    return connection


class NodeLanes:
    """A thread's own connection to each master, for commands sent already packed: the hot
    paths (the scheduler's dispatch steps, a worker's look at every stream) skip the cluster
    client's pipelines, whose bookkeeping in Python costs more than the commands."""

    def __init__(self, client: Any):
        self.client = client
        self._local = threading.local()

    def send(self, commands: Sequence[bytes], slot_keys: Sequence[str]) -> list[Any]:
        """Send each command to the master serving its slot (``slot_keys``: a key of each),
        every node's at once, then read the replies in order. An error reply comes back as
        its exception (a redirection: the slot map was out of date), and so does a command
        whose node could not be reached or did not answer (ConnectionError)."""
        lanes: dict[str, redis.Connection] = self._local.__dict__.setdefault("by_node", {})
        replies: list[Any] = [None] * len(commands)
        try:
            groups = group_by_node(self.client, list(slot_keys))
        except (redis.RedisError, redis.exceptions.RedisClusterException) as error:
            return [error] * len(commands)
        sent: list[tuple[redis.Connection, list[int]]] = []
        for name, (node, positions) in groups.items():
            lane = lanes.get(name)
            if lane is None:
                lane = lanes[name] = node_connection(self.client, node)
            try:
                lane.send_packed_command([b"".join(commands[position] for position in positions)])
                sent.append((lane, positions))
            except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
                lane.disconnect()
                for position in positions:
                    replies[position] = redis.ConnectionError(str(error))
        for lane, positions in sent:
            for done, position in enumerate(positions):
                try:
                    replies[position] = lane.read_response()
                except redis.ResponseError as error:
                    replies[position] = error
                except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
                    lane.disconnect()
                    for unread in positions[done:]:
                        replies[unread] = redis.ConnectionError(str(error))
                    break
        return replies

    def connections(self) -> list[redis.Connection]:
        """This thread's connections (tests kill them)."""
        return list(self._local.__dict__.get("by_node", {}).values())


def ping_every_master(client: Any) -> None:
    """Raise unless every master answers (readiness)."""
    client.ping(target_nodes=RedisCluster.PRIMARIES)


class ClusterCacheClient(DefaultClient):
    """django-redis's client on a Redis Cluster: the cache and the engine share one cluster client.

    Only single-key cache calls are used (DRF's throttles: get and set), which a cluster serves.
    """

    def connect(self, index: int = 0) -> Any:
        return connect(self._server[index])
