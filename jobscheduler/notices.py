"""Change notices over Redis pub/sub: which schedules (or jobs) were edited, heard by a thread of their own."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from jobscheduler import redis_cluster
from jobscheduler.keyspace import Keyspace

# On a Redis Cluster, which node the next subscription goes to (ChangeListener._subscribe).
_turns = itertools.count()


class ChangeListener:
    """Change notices from a thread blocked on pub/sub, so a sleeping process costs no CPU.

    Each notice is a string (a schedule's or job's id; ``*`` for "many, look at everything").
    With ``on_notice`` the listening thread hands each one to it, with its channel; without,
    ``wait`` sleeps on a lock (a precise, cheap timed wait) until notices come. A lost
    connection is noticed as ``*`` (notices may have been missed meanwhile).
    """

    def __init__(
        self,
        keyspace: Keyspace,
        channels: Sequence[str],
        on_notice: Callable[[str, str], None] | None = None,
    ):
        self._keyspace = keyspace
        self._channels = list(channels)
        self._client, self._pubsub = self._subscribe()
        self._on_notice = on_notice
        # A doorbell: held while nobody rang, released by a ring. Waiting on it is one timed
        # acquire, a fraction of what an Event's wait costs (a Condition in Python), and the
        # scheduler waits on it at every wake.
        self._bell = threading.Lock()
        self._bell.acquire()
        self._lock = threading.Lock()
        self._changed: list[str] = []
        self._closed = False
        self._thread = threading.Thread(target=self._listen, name="changes", daemon=True)
        self._thread.start()

    def _subscribe(self) -> tuple[redis.Redis, Any]:
        """A client of its own, subscribed: closing the subscription must not hand a connection
        the listening thread still reads from back to the pool the process uses. The pool is
        built like the original, connection class included (a unix socket, TLS).

        On a Redis Cluster, classic pub/sub reaches every node, so any node will do: each
        call takes the next one (listeners of a process spread over the nodes), so a listener
        whose node went down moves on to a live one.
        """
        if not self._keyspace.cluster:
            return self._subscribe_with(self._keyspace.client.connection_pool)
        nodes = redis_cluster.nodes(self._keyspace.client)
        for attempt in range(len(nodes)):
            node = nodes[next(_turns) % len(nodes)]
            try:
                return self._subscribe_with(redis_cluster.node_pool(self._keyspace.client, node))
            except (redis.ConnectionError, redis.TimeoutError):
                if attempt == len(nodes) - 1:
                    raise
        raise redis.ConnectionError("no node of the Redis Cluster is known")

    def _subscribe_with(self, pool: redis.ConnectionPool) -> tuple[redis.Redis, Any]:
        client = redis.Redis(
            connection_pool=pool.__class__(connection_class=pool.connection_class, **pool.connection_kwargs)
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(*self._channels)
        except (redis.RedisError, OSError):
            client.connection_pool.disconnect()
            raise
        return client, pubsub

    def _resubscribe(self) -> None:
        if not self._keyspace.cluster:
            self._pubsub.subscribe(*self._channels)
            return
        with contextlib.suppress(redis.RedisError, OSError):
            self._pubsub.close()
        self._client.connection_pool.disconnect()
        self._client, self._pubsub = self._subscribe()

    def _listen(self) -> None:
        while not self._closed:
            try:
                for message in self._pubsub.listen():
                    if message.get("type") == "message":
                        channel, data = message["channel"], message["data"]
                        self._note(
                            channel.decode() if isinstance(channel, bytes) else str(channel),
                            data.decode() if isinstance(data, bytes) else str(data),
                        )
            except (redis.ConnectionError, ValueError, AttributeError):
                if self._closed:
                    return
                for channel in self._channels:
                    self._note(channel, "*")  # notices may have been lost while disconnected
                time.sleep(0.5)
                try:
                    self._resubscribe()
                except (redis.ConnectionError, redis.TimeoutError):
                    continue

    def _note(self, channel: str, ident: str) -> None:
        if self._on_notice is not None:
            self._on_notice(channel, ident)
            return
        with self._lock:
            self._changed.append(ident)
        self._ring()

    def _ring(self) -> None:
        with contextlib.suppress(RuntimeError):  # rung already, not answered yet
            self._bell.release()

    def wait(self, timeout: float) -> list[str] | None:
        """Sleep up to ``timeout`` seconds or until notices come; return them.

        Returns None when the whole timeout passed without a notice ('*' in the list means
        look everywhere).
        """
        rung = self._bell.acquire(timeout=timeout) if timeout > 0 else self._bell.acquire(blocking=False)
        if not rung and timeout > 0:
            return None
        with self._lock:
            changed, self._changed = self._changed, []
        return changed

    def wake(self) -> None:
        """End a ``wait`` now, with no notice (a stop was asked for)."""
        self._ring()

    def close(self) -> None:
        """Unsubscribe and end the listening thread (a dropped connection alone is reconnected
        and resubscribed by redis-py, and would keep both alive)."""
        self._closed = True
        with contextlib.suppress(redis.RedisError, OSError):
            self._pubsub.unsubscribe()  # the listening thread's listen() ends with its last channel
        self._thread.join(timeout=2)
        with contextlib.suppress(redis.RedisError, OSError):
            self._pubsub.close()
        self._client.connection_pool.disconnect()  # wakes the thread if it still waits, which then ends
