"""Runs handed off to Celery whose outcome is still to come: a sorted set every worker shares.

``<prefix>:celery-awaited``: run id -> when a worker should next look at its task (epoch ms).
A worker's results watcher (workers.celery_results) claims the due ones for a lease (one Lua
step, so two workers never look at the same run at once), looks at their tasks' states in one
batch, and puts each back for a later look or removes it once its outcome is recorded. A worker
that dies holding some leaves them to the others when the lease runs out. The run records in
MongoDB are the truth: a run id whose record is gone or no longer running is simply dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobscheduler.keyspace import Keyspace, default_keyspace
from jobscheduler.scripts import LuaScripts


class AwaitedRuns:
    def __init__(self, keyspace: Keyspace | None = None):
        self.keyspace = keyspace or default_keyspace()
        self.key = self.keyspace.global_key("celery-awaited")
        self._scripts = LuaScripts(self.keyspace.client, "workers", ("claim_awaited",))

    def add(self, run_ids: Sequence[str], look_at_ms: int) -> None:
        """Await these runs; a run awaited already keeps its place."""
        if run_ids:
            self.keyspace.client.zadd(self.key, dict.fromkeys(run_ids, look_at_ms), nx=True)

    def claim(self, now_ms: int, lease_ms: int, limit: int) -> list[str]:
        """Up to ``limit`` runs due for a look, each held by the caller until ``now_ms + lease_ms``."""
        (due,) = self._scripts.run([("claim_awaited", [self.key], [now_ms, now_ms + lease_ms, limit])])
        return [member.decode() for member in due]

    def later(self, run_ids: Sequence[str], look_at_ms: int) -> None:
        """Look at these again at ``look_at_ms`` (unless their outcome was recorded meanwhile)."""
        if run_ids:
            self.keyspace.client.zadd(self.key, dict.fromkeys(run_ids, look_at_ms), xx=True)

    def forget(self, run_ids: Sequence[str]) -> None:
        if run_ids:
            self.keyspace.client.zrem(self.key, *run_ids)

    def count(self) -> int:
        return int(self.keyspace.client.zcard(self.key))
