"""The run queue: dispatch streams that workers read, the delayed set, overlap bookkeeping.

One stream per shard (``{p:n}:stream``, see jobscheduler.keyspace) holds the occurrences
and manual runs waiting for a worker, read through the consumer group ``WORKER_GROUP``.
Django Tasks enqueued on another queue than ``default`` (jobs.tasks_backend) have streams and
delayed sets of their own per shard (``{p:n}:stream:<queue>``, ``{p:n}:delayed:<queue>``): a
worker reads only the queues it serves (``run_worker --queue``). A :class:`RunQueue` numbers the
(queue, shard) pairs it serves as *lanes*, the default queue's first (lane = shard), and an
entry's ``shard`` is its lane in the RunQueue that read or wrote it.
:class:`Entry` is the one codec of a stream entry; every Python writer and reader uses it,
and the Lua scripts that write entries (schedules/lua/dispatch.lua, schedules/lua/resolve.lua,
jobs/lua/release_delayed.lua) point here. An entry's fields:

- ``fk`` fire key (``<schedule id>:<nominal epoch ms>``, or ``manual:<job id>:<uuid hex>``,
  ``Run.MANUAL_PREFIX``)
- ``s`` schedule id ('' for a manual run of a job), ``j`` job id, ``n`` nominal time (epoch ms)
- ``t`` trigger (a ``Run.Trigger`` value); optional ``a`` attempt (default 1), ``k`` takeovers
  so far (default 0), ``h`` "1" when buffer_one held it back and released it again, ``x`` the
  python target to run in place of the job's (JSON: a Task enqueued with its arguments), ``o``
  an overlap policy in place of the schedule's (a backfill's: schedules/backfills.py).

Other keys of each shard:

- ``{p:n}:delayed``        sorted set, encoded entry -> when to put it on the stream (epoch ms):
                           retries waiting out their backoff, runs held back by buffer_one
- ``{p:n}:running:<sid>``  sorted set, fire key#attempt -> lease expiry ms: runs of schedule
                           <sid> in progress (n = shard_of(sid)); a dead worker's lease runs out
- ``{p:n}:waiting:<sid>``  hash (fk, member): the one run buffer_one holds back; expires
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import hiredis
import redis

from jobs.models import Run
from jobscheduler import redis_cluster
from jobscheduler.keyspace import Keyspace, default_keyspace
from jobscheduler.scripts import LuaScripts

WORKER_GROUP = "workers"
# On a Redis Cluster, how often a blocking read over several shards' streams looks again.
CLUSTER_POLL_MS = 20
DEFAULT_QUEUE = "default"
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def check_queue_name(name: str) -> str:
    if not isinstance(name, str) or not _QUEUE_NAME.fullmatch(name):
        raise ValueError(f"Queue names are 1-64 letters, digits, '_', '.' or '-', not {name!r}.")
    return name


@dataclass(frozen=True)
class Entry:
    """One stream entry: an attempt of an occurrence (or of a manual run) to execute."""

    shard: int
    entry_id: str
    fire_key: str
    schedule_id: str  # '' for a manual run of a job
    job_id: str
    nominal_ms: int
    trigger: str
    attempt: int = 1
    takeovers: int = 0
    held: bool = False  # held back by buffer_one and released again
    claimed: bool = False  # taken over from another consumer's pending list
    target: dict[str, Any] | None = None  # a python target run in place of the job's
    overlap: str = ""  # an overlap policy in place of the schedule's (a backfill's own)

    @classmethod
    def from_stream(cls, shard: int, entry_id: str, fields: dict[str, str], *, claimed: bool = False) -> Entry:
        """Decode an entry as read; raises KeyError or ValueError for a malformed one."""
        return cls(
            shard=shard,
            entry_id=entry_id,
            fire_key=fields["fk"],
            schedule_id=fields.get("s", ""),
            job_id=fields["j"],
            nominal_ms=int(fields["n"]),
            trigger=fields.get("t", Run.Trigger.SCHEDULE),
            attempt=int(fields.get("a", 1)),
            takeovers=int(fields.get("k", 0)),
            held=fields.get("h") == "1",
            claimed=claimed,
            target=_decoded_target(fields["x"]) if "x" in fields else None,
            overlap=fields.get("o", ""),
        )

    @classmethod
    def manual(
        cls, *, job_id: str, schedule_id: str, nominal_ms: int, shard: int, target: dict[str, Any] | None = None
    ) -> Entry:
        """A new manual run (run now, or an enqueued Task): its fire key is new, so it never
        collides with an occurrence."""
        return cls(
            target=target,
            shard=shard,
            entry_id="",
            fire_key=f"{Run.MANUAL_PREFIX}{job_id}:{uuid.uuid4().hex}",
            schedule_id=schedule_id,
            job_id=job_id,
            nominal_ms=nominal_ms,
            trigger=Run.Trigger.MANUAL,
        )

    @property
    def key(self) -> tuple[int, str]:
        return (self.shard, self.entry_id)

    @property
    def run_key(self) -> str:
        """This attempt among a schedule's running runs (overlap)."""
        return f"{self.fire_key}#{self.attempt}"

    @property
    def is_manual(self) -> bool:
        """A run started by hand (run now), or a retry of one."""
        return self.fire_key.startswith(Run.MANUAL_PREFIX)

    @property
    def dispatched_ms(self) -> int:
        return int(self.entry_id.split("-", 1)[0])

    def fields(self) -> dict[str, str]:
        """The stream fields, as written (``held`` excluded: that is the overlap step's to add)."""
        fields = {"fk": self.fire_key, "s": self.schedule_id, "j": self.job_id, "n": str(self.nominal_ms)}
        fields["t"] = self.trigger
        if self.attempt != 1:
            fields["a"] = str(self.attempt)
        if self.takeovers:
            fields["k"] = str(self.takeovers)
        if self.target is not None:
            fields["x"] = json.dumps(self.target, separators=(",", ":"))
        if self.overlap:
            fields["o"] = self.overlap
        return fields

    def next_attempt(self, *, takeover: bool = False) -> dict[str, str]:
        """The fields of attempt + 1 of the same occurrence (the same fire key)."""
        following = replace(
            self, attempt=self.attempt + 1, trigger=Run.Trigger.RETRY, takeovers=self.takeovers + int(takeover)
        )
        return following.fields()


def _decoded_target(text: str) -> dict[str, Any]:
    target = json.loads(text)
    if not isinstance(target, dict):
        raise ValueError("an entry's target is a JSON object")
    return target


def encode_member(fields: dict[str, str]) -> str:
    """A delayed entry's member: its fields, flat, in a fixed order (equal entries, equal members)."""
    flat = [item for name in sorted(fields) for item in (name, str(fields[name]))]
    return json.dumps(flat, separators=(",", ":"))


def decode_member(member: str | bytes) -> dict[str, str]:
    flat = json.loads(member)
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def _decoded(fields: dict[bytes, bytes]) -> dict[str, str]:
    return {name.decode(): value.decode() for name, value in fields.items()}


def _decoded_flat(fields: list[bytes] | dict[bytes, bytes]) -> dict[str, str]:
    """An entry's fields as Redis sends them (name, value, name, value...; or a map)."""
    if isinstance(fields, dict):
        return _decoded(fields)
    return {fields[at].decode(): fields[at + 1].decode() for at in range(0, len(fields), 2)}


def _execute_ignoring_nogroup(pipe: Any) -> None:
    """Run a transaction; a group Redis lost is no error here (there is nothing to acknowledge)."""
    try:
        pipe.execute()
    except redis.ResponseError as error:
        if "NOGROUP" not in str(error):
            raise


class RunQueue:
    """The Redis side of execution: streams, consumer group, delayed set, overlap leases."""

    def __init__(self, keyspace: Keyspace | None = None, queues: Sequence[str] = (DEFAULT_QUEUE,)):
        self.keyspace = keyspace or default_keyspace()
        self.client = self.keyspace.client
        self.shards = self.keyspace.shards
        named = list(dict.fromkeys(check_queue_name(queue) for queue in queues))
        if not named:
            raise ValueError("A run queue serves at least one queue.")
        # The default queue's lanes first, so that lane = shard for it: the dispatch scripts and
        # the overlap steps address the default queue's stream and delayed set by shard.
        self.queues = tuple(sorted(named, key=lambda queue: queue != DEFAULT_QUEUE))
        self.lanes = self.shards * len(self.queues)
        self._scripts = LuaScripts(
            self.client, "jobs", ("release_delayed", "overlap_enter", "overlap_leave", "keep_claimed")
        )
        self._nodes = redis_cluster.NodeLanes(self.client)

    # --- keys -----------------------------------------------------------------------------
    def lane_of(self, shard: int, queue: str = DEFAULT_QUEUE) -> int:
        """The lane of ``queue`` on ``shard`` (ValueError: a queue this RunQueue does not serve)."""
        return self.queues.index(queue) * self.shards + shard

    def queue_of(self, lane: int) -> str:
        """The queue whose stream and delayed set ``lane`` is."""
        return self.queues[lane // self.shards]

    def _lane_key(self, lane: int, name: str) -> str:
        queue = self.queue_of(lane)
        return self.keyspace.key(lane % self.shards, name if queue == DEFAULT_QUEUE else f"{name}:{queue}")

    def stream_key(self, lane: int) -> str:
        return self._lane_key(lane, "stream")

    def delayed_key(self, lane: int) -> str:
        return self._lane_key(lane, "delayed")

    def running_key(self, schedule_id: str) -> str:
        return self.keyspace.key(self.keyspace.shard_of(schedule_id), f"running:{schedule_id}")

    def waiting_key(self, schedule_id: str) -> str:
        return self.keyspace.key(self.keyspace.shard_of(schedule_id), f"waiting:{schedule_id}")

    # --- the streams ----------------------------------------------------------------------
    def ensure_groups(self) -> None:
        """Create each dispatch stream's worker group (idempotent)."""
        for shard in range(self.lanes):
            try:
                self.client.xgroup_create(self.stream_key(shard), WORKER_GROUP, id="0", mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    def add(self, entry: Entry) -> str:
        """Append an entry to its shard's stream (a manual run); returns its id."""
        entry_id: Any = self.client.xadd(self.stream_key(entry.shard), entry.fields())  # type: ignore[arg-type]
        return str(entry_id.decode())

    def read(
        self, consumer: str, count: int, shards: Sequence[int], block_ms: int | None = None
    ) -> list[tuple[int, str, dict[str, str]]]:
        """New entries for ``consumer`` of the worker group: (shard, entry id, fields).

        Without ``block_ms`` this returns at once. Redis applies ``count`` per stream, so more
        than ``count`` may come back when several shards are read at once. A missing group
        (Redis lost its data, before or during a blocking read) is recreated and nothing is
        returned this time.
        """
        by_key = {self.stream_key(shard): shard for shard in shards}
        if self.keyspace.cluster and len(by_key) > 1:
            return self._read_by_node(consumer, count, by_key, block_ms)
        try:
            reply: Any = self.client.xreadgroup(
                WORKER_GROUP, consumer, dict.fromkeys(by_key, ">"), count=count, block=block_ms
            )
        except redis.ResponseError as error:
            # NOGROUP: Redis lost the stream before the read; UNBLOCKED: during a blocking one.
            if "NOGROUP" not in str(error) and "UNBLOCKED" not in str(error):
                raise
            self.ensure_groups()
            return []
        return [
            (by_key[stream.decode()], entry_id.decode(), _decoded(fields))
            for stream, entries in reply or []
            for entry_id, fields in entries
        ]

    def _read_by_node(
        self, consumer: str, count: int, by_key: dict[str, int], block_ms: int | None
    ) -> list[tuple[int, str, dict[str, str]]]:
        """``read`` on a Redis Cluster: one XREADGROUP cannot span slots, so each stream is read
        on its own, all in one round trip per node, on this thread's own connections to the
        masters (redis_cluster.NodeLanes: the cluster client's pipeline would cost a worker
        over 10% of a core while idle). A blocking read looks again every CLUSTER_POLL_MS
        until ``block_ms`` has passed: Redis has no blocking read over several slots. A look
        that meets a redirection or an unreachable node goes through the cluster client once."""
        keys = list(by_key)
        head: tuple[Any, ...] = ("XREADGROUP", "GROUP", WORKER_GROUP, consumer, "COUNT", count, "STREAMS")
        commands = [hiredis.pack_command((*head, key, ">")) for key in keys]
        deadline = time.monotonic() + (block_ms or 0) / 1000
        while True:
            replies: list[Any] | None = self._nodes.send(commands, keys)
            if any(isinstance(reply, Exception) for reply in replies or ()):
                replies = self._read_through_client(consumer, count, keys)
                if replies is None:
                    return []
            read = [
                (by_key[stream.decode()], entry_id.decode(), _decoded_flat(fields))
                for reply in replies or ()
                # A map from RESP3 connections, pairs from RESP2 ones.
                for stream, entries in (reply.items() if isinstance(reply, dict) else reply or [])
                for entry_id, fields in entries
                if fields  # an entry deleted while pending reads as nil
            ]
            left = deadline - time.monotonic()
            if read or left <= 0:
                return read
            time.sleep(min(left, CLUSTER_POLL_MS / 1000))

    def _read_through_client(self, consumer: str, count: int, keys: list[str]) -> list[Any] | None:
        """The same look through the cluster client's pipeline, which follows the slot map; None
        when a stream's group is gone (recreated: Redis lost the stream)."""
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("XREADGROUP", "GROUP", WORKER_GROUP, consumer, "COUNT", count, "STREAMS", key, ">")
        replies = pipe.execute(raise_on_error=False)
        failures = [reply for reply in replies if isinstance(reply, Exception)]
        for failure in failures:
            if not isinstance(failure, redis.ResponseError) or "NOGROUP" not in str(failure):
                raise failure
        if failures:
            self.ensure_groups()
            return None
        return list(replies)

    def claim_idle(
        self, shard: int, consumer: str, min_idle_ms: int, count: int, start: str = "0-0"
    ) -> tuple[str, list[tuple[str, dict[str, str]]]]:
        """Take over entries another consumer has held ``min_idle_ms`` without a sign of life.

        Scans the pending list from ``start``; returns where to go on next time ("0-0": from
        the beginning again) and the entries taken.
        """
        try:
            reply: Any = self.client.xautoclaim(
                self.stream_key(shard), WORKER_GROUP, consumer, min_idle_ms, start_id=start, count=count
            )
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self.ensure_groups()
            return "0-0", []
        taken = [(entry_id.decode(), _decoded(fields)) for entry_id, fields in reply[1] if fields]
        return reply[0].decode(), taken

    def keep_claimed(self, consumer: str, entries: Iterable[tuple[int, str]]) -> list[tuple[int, str]]:
        """Reset the idle time of ``consumer``'s entries (shard, id); returns those it no longer holds."""
        by_shard: dict[int, list[str]] = {}
        for shard, entry_id in entries:
            by_shard.setdefault(shard, []).append(entry_id)
        if not by_shard:
            return []
        order = list(by_shard)
        calls = [
            ("keep_claimed", [self.stream_key(shard)], [WORKER_GROUP, consumer, *by_shard[shard]]) for shard in order
        ]
        try:
            replies = self._scripts.run(calls)
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self.ensure_groups()
            return []  # Redis lost the stream: nobody else holds these entries either
        return [(shard, lost.decode()) for shard, ids in zip(order, replies, strict=True) for lost in ids]

    def holds(self, consumer: str, shard: int, entry_id: str) -> bool:
        """Whether ``consumer`` holds the entry (it is pending in the group, delivered to it)."""
        try:
            pending: Any = self.client.xpending_range(
                self.stream_key(shard), WORKER_GROUP, min=entry_id, max=entry_id, count=1
            )
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            return False
        return bool(pending) and pending[0]["consumer"].decode() == consumer

    def ack(self, shard: int, entry_id: str) -> None:
        """Done with an entry: acknowledge and delete it (the stream keeps only open work)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.stream_key(shard), WORKER_GROUP, entry_id)
        pipe.xdel(self.stream_key(shard), entry_id)
        _execute_ignoring_nogroup(pipe)

    def replace(self, shard: int, entry_id: str, fields: dict[str, str]) -> None:
        """Swap an entry for a new one at the stream's end, in one transaction (a takeover's next attempt)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.stream_key(shard), fields)  # type: ignore[arg-type]
        pipe.xack(self.stream_key(shard), WORKER_GROUP, entry_id)
        pipe.xdel(self.stream_key(shard), entry_id)
        _execute_ignoring_nogroup(pipe)

    # --- the delayed set ------------------------------------------------------------------
    def defer(self, shard: int, fields: dict[str, str], due_ms: int, done_entry_id: str | None = None) -> None:
        """Put an entry in the shard's delayed set (kept if already there) and, in the same
        transaction, acknowledge the entry it replaces."""
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(self.delayed_key(shard), {encode_member(fields): due_ms}, nx=True)
        if done_entry_id is not None:
            pipe.xack(self.stream_key(shard), WORKER_GROUP, done_entry_id)
            pipe.xdel(self.stream_key(shard), done_entry_id)
        _execute_ignoring_nogroup(pipe)

    def release_delayed(self, now_ms: int, limit: int = 1000) -> int:
        """Move every delayed entry due by ``now_ms`` onto its stream; returns how many."""
        replies = self._scripts.run(
            [
                ("release_delayed", [self.delayed_key(shard), self.stream_key(shard)], [now_ms, limit])
                for shard in range(self.lanes)
            ]
        )
        return sum(int(moved) for moved, _ in replies)

    def delayed(self, shard: int) -> list[tuple[dict[str, str], int]]:
        """What waits in a shard's delayed set: (fields, due ms), earliest first."""
        members: Any = self.client.zrange(self.delayed_key(shard), 0, -1, withscores=True)
        return [(decode_member(member), int(score)) for member, score in members]

    # --- overlap --------------------------------------------------------------------------
    def overlap_enter(
        self,
        schedule_id: str,
        fire_key: str,
        policy: str,
        *,
        now_ms: int,
        lease_ms: int,
        hold: tuple[int, str, dict[str, str], int] | None = None,
    ) -> str:
        """Register a run of a schedule as running if its overlap policy lets it start: 'run',
        'skip' or 'hold'. ``hold`` is (shard, entry id, fields, release at ms) of the entry,
        needed for buffer_one: a held entry leaves the stream for the delayed set in the same step.
        """
        if policy == "buffer_one" and hold is None:
            raise ValueError("buffer_one needs the entry to hold back")
        shard, entry_id, fields, release_ms = hold or (self.keyspace.shard_of(schedule_id), "0-0", {}, now_ms)
        keys = [
            self.running_key(schedule_id),
            self.waiting_key(schedule_id),
            self.delayed_key(shard),
            self.stream_key(shard),
        ]
        args = [
            fire_key,
            policy,
            now_ms,
            now_ms + lease_ms,
            encode_member({**fields, "h": "1"}),
            release_ms,
            max(lease_ms, release_ms - now_ms) * 2,
            WORKER_GROUP,
            entry_id,
        ]
        (decision,) = self._scripts.run([("overlap_enter", keys, args)])
        return str(decision.decode())

    def overlap_keep(self, runs: Iterable[tuple[str, str]], lease_until_ms: int) -> None:
        """Extend the leases of runs (schedule id, fire key) still in progress."""
        pipe = self.client.pipeline(transaction=False)
        for schedule_id, fire_key in runs:
            pipe.zadd(self.running_key(schedule_id), {fire_key: lease_until_ms}, xx=True)
        pipe.execute()

    def overlap_leave(self, schedule_id: str, fire_key: str, now_ms: int) -> None:
        delayed = self.delayed_key(self.keyspace.shard_of(schedule_id))
        keys = [self.running_key(schedule_id), self.waiting_key(schedule_id), delayed]
        self._scripts.run([("overlap_leave", keys, [fire_key, now_ms])])

    def lengths(self) -> int:
        """Entries on every stream (waiting or held by a worker)."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.lanes):
            pipe.xlen(self.stream_key(shard))
        return sum(pipe.execute())
