"""What processes of the service tell each other through Redis: heartbeats and named locks."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from jobscheduler import __version__
from jobscheduler.keyspace import Keyspace, default_keyspace
from jobscheduler.scripts import LuaScripts

SCHEDULERS = "schedulers"
WORKERS = "workers"
_HOST = socket.gethostname()


class Coordination:
    """Heartbeats of schedulers and workers, and locks such as "one reconcile at a time"."""

    def __init__(self, keyspace: Keyspace | None = None):
        self.keyspace = keyspace or default_keyspace()
        self.client = self.keyspace.client
        self._scripts = LuaScripts(self.client, "jobscheduler", ("unlock",))

    # --- heartbeats -----------------------------------------------------------------------
    def beats_key(self, kind: str) -> str:
        return self.keyspace.global_key(kind)

    def beat(self, kind: str, name: str, info: dict[str, Any], ttl_seconds: float = 10) -> None:
        """A heartbeat of a process of ``kind`` (SCHEDULERS, WORKERS), live for ``ttl_seconds``.

        Every beat carries the process's host and the service's version (the dashboard shows
        them), and the time it was sent.
        """
        now = time.time()
        info = {"host": _HOST, "version": __version__, **info, "beat": now}
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.beats_key(kind), name, json.dumps(info))
        pipe.zadd(f"{self.beats_key(kind)}:expiry", {name: now + ttl_seconds})
        pipe.execute()

    def forget_beat(self, kind: str, name: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hdel(self.beats_key(kind), name)
        pipe.zrem(f"{self.beats_key(kind)}:expiry", name)
        pipe.execute()

    def beats(self, kind: str) -> dict[str, dict[str, Any]]:
        """Live processes of ``kind`` by name; expired heartbeats are dropped."""
        key = self.beats_key(kind)
        expired = self.client.zrange(f"{key}:expiry", "-inf", time.time(), byscore=True)
        if expired:
            self.client.hdel(key, *expired)
            self.client.zrem(f"{key}:expiry", *expired)
        beats: dict[Any, Any] = self.client.hgetall(key)
        return {name.decode(): json.loads(info) for name, info in beats.items()}

    # --- locks ----------------------------------------------------------------------------
    def lock_key(self, name: str) -> str:
        return self.keyspace.global_key(f"lock:{name}")

    def try_lock(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Take a named lock for ``ttl_ms`` unless someone holds it."""
        return bool(self.client.set(self.lock_key(name), owner, nx=True, px=ttl_ms))

    def unlock(self, name: str, owner: str) -> None:
        """Free a lock this owner holds (a lock that expired and was retaken stays)."""
        self._scripts.run([("unlock", [self.lock_key(name)], [owner])])
