"""Run the project's Lua scripts by SHA, loading them again when Redis has lost them.

Each app keeps its scripts in ``<package>/lua/<name>.lua``; a :class:`LuaScripts` runs the
scripts of one package. Every Lua step in the project goes through :meth:`LuaScripts.run`
(or, on the scheduler's hot path, :meth:`LuaScripts.run_packed`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources
from typing import Any

import hiredis
import redis

from jobscheduler import redis_cluster

# One script call: (script name, keys, arguments).
Call = tuple[str, list[str], list[Any]]


@cache
def source(package: str, name: str) -> str:
    return resources.files(package).joinpath(f"lua/{name}.lua").read_text()


@cache
def sha(package: str, name: str) -> str:
    return hashlib.sha1(source(package, name).encode()).hexdigest()  # noqa: S324 (Redis names scripts by SHA-1)


class LuaScripts:
    """The named scripts of one package, run over one client."""

    def __init__(self, client: redis.Redis, package: str, names: Sequence[str]):
        self.client = client
        self.package = package
        self.names = tuple(names)
        self._sha = {name: sha(package, name) for name in self.names}
        self._lanes = threading.local()
        self._cluster = redis_cluster.is_cluster(client)
        self._nodes = redis_cluster.NodeLanes(client) if self._cluster else None

    def load(self) -> None:
        for name in self.names:
            self.client.script_load(source(self.package, name))

    def run(self, calls: Sequence[Call]) -> list[Any]:
        """Run the calls in one pipeline, by SHA: no SCRIPT EXISTS round trip per pipeline.
        Scripts are loaded once if Redis lacks them (a restart, a flush). On a Redis Cluster,
        one pipeline per master (``_run_on_nodes``); each call's keys share one slot."""
        if self._cluster:
            packed = [self._packed(call) for call in calls]
            return self._run_on_nodes(packed, [keys[0] for _, keys, _ in calls], lambda: calls)
        for attempt in (1, 2):
            try:
                if len(calls) == 1:  # the common case; a pipeline costs more
                    name, keys, args = calls[0]
                    return [self.client.evalsha(self._sha[name], len(keys), *keys, *args)]
                pipe = self.client.pipeline(transaction=False)
                for name, keys, args in calls:
                    pipe.evalsha(self._sha[name], len(keys), *keys, *args)
                return pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                self.load()
        raise AssertionError("unreachable")

    def packed_head(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> bytes:
        """A call packed for ``run_packed`` but for its last argument: ``with_last`` completes
        it. For a step sent on every wake with the same keys and arguments but one."""
        packed: bytes = hiredis.pack_command(("EVALSHA", self._sha[name], len(keys), *keys, *args, ""))
        return packed[: -len(b"$0\r\n\r\n")]

    @staticmethod
    def with_last(head: bytes, last: int) -> bytes:
        value = b"%d" % last
        return b"%s$%d\r\n%s\r\n" % (head, len(value), value)

    def run_packed(
        self,
        commands: Sequence[bytes],
        calls: Callable[[], Sequence[Call]],
        slot_keys: Sequence[str] = (),
        keep_failures: bool = False,
    ) -> list[Any]:
        """Send packed EVALSHA commands on a connection of this thread's own and read the replies.

        A scheduler wakes up to 500 times a second (at 1k schedules spread over the second,
        with the loop's 2 ms grain); going through the client's pool, retry wrapper and
        per-command instrumentation, or packing the same keys again, cost more CPU than the
        step itself. On any error the connection is dropped and ``calls()`` (the same calls,
        unpacked) go the usual way, which loads missing scripts and retries; so a step sent
        here must be safe to run again: the dispatch step only takes what is due.

        On a Redis Cluster each command goes to the master serving its slot (``slot_keys``: a
        key of each command), on a connection of this thread's own to that master; all are
        sent before any reply is read. A redirection (a slot that moved, a failover) is an
        error here too: the usual way follows it. With ``keep_failures``, a command whose node
        stays away (a master failing over) has the error as its reply, and the others' replies
        come as usual: the masters still up go on firing.
        """
        if self._cluster:
            return self._run_on_nodes(commands, slot_keys, calls, keep_failures)
        lane = getattr(self._lanes, "connection", None)
        if lane is None:
            pool = self.client.connection_pool
            lane = self._lanes.connection = pool.connection_class(**pool.connection_kwargs)
        try:
            lane.send_packed_command([b"".join(commands)])
            return [lane.read_response() for _ in commands]
        except (redis.RedisError, OSError):
            lane.disconnect()
            return self.run(calls())

    # --- Redis Cluster ----------------------------------------------------------------------
    def _run_on_nodes(
        self,
        commands: Sequence[bytes],
        slot_keys: Sequence[str],
        calls: Callable[[], Sequence[Call]],
        keep_failures: bool = False,
    ) -> list[Any]:
        """Send each packed command to the master serving its slot (``slot_keys``: a key of
        each), every node's at once on a connection of this thread's own, then read the replies.

        redis-py's cluster pipelines refuse EVALSHA, and one command at a time through the
        cluster client would cost a round trip each. A command that got a redirection (a slot
        moved), TRYAGAIN (a slot moving), NOSCRIPT (a replica promoted without the scripts) or
        no reply (a node down) goes again through the cluster client, which follows the slot
        map and tries again; only those run twice, and every script here is safe to run again.
        """
        assert self._nodes is not None
        replies = self._nodes.send(commands, slot_keys)
        again = []
        for position, reply in enumerate(replies):
            if isinstance(reply, redis.ResponseError) and not isinstance(reply, _GO_AGAIN):
                raise reply  # the script's own error
            if isinstance(reply, Exception):
                again.append(position)
        if again:
            unpacked = calls()
            for position in sorted(again):
                try:
                    replies[position] = self._run_one(unpacked[position])
                except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError, *_GO_AGAIN) as error:
                    if not keep_failures:
                        raise
                    replies[position] = error
        return replies

    def _run_one(self, call: Call) -> Any:
        name, keys, args = call
        for attempt in (1, 2):
            try:
                return self.client.evalsha(self._sha[name], len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                self.load()
        raise AssertionError("unreachable")

    def _packed(self, call: Call) -> bytes:
        name, keys, args = call
        packed: bytes = hiredis.pack_command(("EVALSHA", self._sha[name], len(keys), *keys, *args))
        return packed


# Replies from a cluster node that the cluster client's own retries deal with.
_GO_AGAIN = (
    redis.exceptions.NoScriptError,
    redis.exceptions.AskError,  # MOVED too
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.ReadOnlyError,
)
