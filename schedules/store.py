"""The one Redis seam: the schedule mirror, the sharded due index, dispatch streams, work leases.

Redis is an index rebuilt from MongoDB (``reconcile``), never the source of truth. Keys of
one shard share a hash tag, ``{<prefix>:<shard>}``, so every Lua step touches one slot and
the shards spread over a Redis Cluster:

- ``{p:n}:due``       sorted set, schedule id -> due time (next nominal + jitter), epoch ms
- ``{p:n}:s:<id>``    hash, the schedule's mirrored state (see ``mirror_fields``)
- ``{p:n}:work``      sorted set, schedule id -> lease expiry: schedules that need Python
                      (a cron time to compute, a misfire to resolve); leased while handled
- ``{p:n}:fired``     set of schedule ids whose run count / times MongoDB has not seen yet
- ``{p:n}:stream``    the dispatch stream workers read through a consumer group

and ``<p>:changes`` is the pub/sub channel that wakes sleeping schedulers on an edit.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol

import hiredis
import redis
from django.conf import settings
from django.utils.module_loading import import_string

from schedules.kinds import from_epoch_ms, to_epoch_ms

if TYPE_CHECKING:
    from schedules.models import Schedule

WORKER_GROUP = "workers"
NONE = -1  # "no value" in mirrored integer fields
# Non-fixed kinds carry this many upcoming times; Python adds more below REFILL_BELOW.
LOOK_AHEAD = 16
REFILL_BELOW = 6


@dataclass(frozen=True)
class Resolution:
    """Python's decision for one leased schedule: catch-up entries and its next times."""

    schedule_id: str
    expect_gen: str
    expect_next: str
    next_ms: int
    ahead: list[int]
    final: bool
    count: int
    entries: list[dict[str, Any]]


@dataclass(frozen=True)
class DispatchResult:
    """What one dispatch step did on one shard, and when the shard next needs attention."""

    shard: int
    dispatched: int
    lags_ms: list[int]
    to_work: int
    more: bool
    next_due_ms: int | None
    next_work_ms: int | None


class ScheduleStore(Protocol):
    def upsert(self, schedule: Schedule) -> None: ...

    def upsert_many(self, schedules: Iterable[Schedule]) -> None: ...

    def remove(self, schedule_id: str) -> None: ...


def look_ahead(schedule: Any, after: datetime, fired: int, known: list[int]) -> tuple[list[int], bool]:
    """Upcoming nominal times (epoch ms) after ``after``: ``known`` extended to LOOK_AHEAD.

    ``fired`` counts occurrences up to and including ``after``. Returns the list and whether
    it is final (no occurrence exists beyond it).
    """
    from schedules.timeline import occurrences

    ahead = list(known)
    start = from_epoch_ms(ahead[-1]) if ahead else after
    wanted = LOOK_AHEAD - len(ahead)
    ahead += [to_epoch_ms(o.at) for o in islice(occurrences(schedule, start, fired + len(ahead)), max(wanted, 0))]
    return ahead, len(ahead) < LOOK_AHEAD


def _ms(moment: datetime | None) -> int:
    return NONE if moment is None else to_epoch_ms(moment)


def mirror_fields(schedule: Schedule, next_ms: int, ahead: Sequence[int], final: bool) -> dict[str, int | str]:
    """A schedule's state flattened to a Redis hash: what the dispatch Lua needs, and what
    the scheduler needs to compute cron times and misfires without asking MongoDB."""
    kind_interval = schedule.interval_seconds if schedule.kind == "fixed" else None
    return {
        "expression": schedule.expression,
        "timezone": schedule.timezone,
        "anchor": _ms(schedule.anchor),
        "start": _ms(schedule.start_at),
        "window": schedule.catchup_window_seconds * 1000,
        "catchup_max": schedule.catchup_max_runs,
        "gen": schedule.generation,
        "job": str(schedule.job_id),
        "kind": schedule.kind,
        "next": next_ms,
        "ahead": ",".join(map(str, ahead)),
        "n_ahead": len(ahead),
        "final": int(final),
        "interval": (kind_interval or 0) * 1000 or NONE,
        "end": _ms(schedule.end_at),
        "max": schedule.max_runs if schedule.max_runs is not None else NONE,
        "count": schedule.run_count,
        "jitter": schedule.jitter_seconds * 1000,
        "grace": schedule.misfire_grace_seconds * 1000,
        "misfire": schedule.misfire_policy,
        "overlap": schedule.overlap_policy,
    }


class RedisStore:
    """The Redis implementation of the schedule store."""

    def __init__(self, client: redis.Redis | None = None, prefix: str | None = None, shards: int | None = None):
        self.client = client or redis_client()
        self.prefix = prefix or settings.JOBSCHEDULER_REDIS_PREFIX
        self.shards = shards or int(getattr(settings, "JOBSCHEDULER_SHARDS", 16))
        self._sha = {name: hashlib.sha1(_lua(name).encode()).hexdigest() for name in _SCRIPTS}  # noqa: S324
        self._lanes = threading.local()
        # Each shard's keys and state-key prefix, built once: every wake needs them.
        self._dispatch_keys = [(self._shard_keys(shard), f"{self.tag(shard)}:s:") for shard in range(self.shards)]

    # --- Lua --------------------------------------------------------------------------------
    def _run_scripts(self, calls: list[tuple[str, list[str], list[Any]]]) -> list[Any]:
        """Run (script, keys, args) calls in one pipeline, by SHA: no SCRIPT EXISTS round
        trip per pipeline. Scripts are loaded once if Redis lacks them (a restart, a flush)."""
        for attempt in (1, 2):
            try:
                if len(calls) == 1:  # the common wake: one shard due; a pipeline costs more
                    name, keys, args = calls[0]
                    return [self.client.evalsha(self._sha[name], len(keys), *keys, *args)]
                pipe = self.client.pipeline(transaction=False)
                for name, keys, args in calls:
                    pipe.evalsha(self._sha[name], len(keys), *keys, *args)
                return pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                for name in _SCRIPTS:
                    self.client.script_load(_lua(name))
        raise AssertionError("unreachable")

    def _run_on_lane(self, calls: list[tuple[str, list[str], list[Any]]]) -> list[Any]:
        """``_run_scripts`` on a connection of this thread's own, for the dispatch step.

        A scheduler wakes up to 500 times a second (at 1k schedules spread over the second,
        with the loop's 2 ms grain); going through the client's pool, retry wrapper and per-command
        instrumentation cost more CPU than the step itself. This sends the packed commands
        on one connection and reads the replies. On any error the connection is dropped and
        the calls go the usual way (which loads missing scripts and retries): a dispatch step
        is atomic and only takes what is due, so running it again never fires twice.
        """
        lane = getattr(self._lanes, "connection", None)
        if lane is None:
            pool = self.client.connection_pool
            lane = self._lanes.connection = pool.connection_class(**pool.connection_kwargs)
        try:
            lane.send_packed_command(
                [
                    b"".join(
                        hiredis.pack_command(("EVALSHA", self._sha[name], len(keys), *keys, *args))
                        for name, keys, args in calls
                    )
                ]
            )
            return [lane.read_response() for _ in calls]
        except (redis.RedisError, OSError):
            lane.disconnect()
            return self._run_scripts(calls)

    # --- keys -----------------------------------------------------------------------------
    def shard_of(self, schedule_id: str) -> int:
        return zlib.crc32(schedule_id.encode()) % self.shards

    def tag(self, shard: int) -> str:
        return f"{{{self.prefix}:{shard}}}"

    def due_key(self, shard: int) -> str:
        return f"{self.tag(shard)}:due"

    def state_key(self, schedule_id: str) -> str:
        return f"{self.tag(self.shard_of(schedule_id))}:s:{schedule_id}"

    def work_key(self, shard: int) -> str:
        return f"{self.tag(shard)}:work"

    def fired_key(self, shard: int) -> str:
        return f"{self.tag(shard)}:fired"

    def stream_key(self, shard: int) -> str:
        return f"{self.tag(shard)}:stream"

    @property
    def changes_channel(self) -> str:
        return f"{self.prefix}:changes"

    def _shard_keys(self, shard: int) -> list[str]:
        return [self.due_key(shard), self.work_key(shard), self.fired_key(shard), self.stream_key(shard)]

    # --- the mirror -------------------------------------------------------------------------
    def upsert(self, schedule: Schedule) -> None:
        """Mirror a saved schedule; an older generation never overwrites a newer one."""
        self.upsert_many([schedule])

    def upsert_many(self, schedules: Iterable[Schedule]) -> None:
        """Mirror saved schedules in one round trip."""
        calls: list[tuple[str, list[str], list[Any]]] = []
        for schedule in schedules:
            schedule_id = str(schedule.pk)
            next_ms, ahead, final = NONE, list[int](), True
            if schedule.next_run_at is not None:
                next_ms = to_epoch_ms(schedule.next_run_at)
                if schedule.kind != "fixed":
                    ahead, final = look_ahead(schedule, schedule.next_run_at, schedule.run_count + 1, [])
            # One JSON argument packs far faster than ~50 separate ones (bulk loads).
            fields = json.dumps(
                {name: str(value) for name, value in mirror_fields(schedule, next_ms, ahead, final).items()}
            )
            keys = [*self._shard_keys(self.shard_of(schedule_id)), self.state_key(schedule_id)]
            calls.append(("upsert", keys, [schedule_id, fields]))
        if len(calls) == 1:
            calls[0][2].insert(1, self.changes_channel)
            self._run_scripts(calls)
        elif calls:
            # A batch sends one notice ('*': look at every shard), not one per schedule.
            for _, _, args in calls:
                args.insert(1, "")
            self._run_scripts(calls)
            self.client.publish(self.changes_channel, "*")

    def remove(self, schedule_id: str) -> None:
        shard = self.shard_of(schedule_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(self.due_key(shard), schedule_id)
        pipe.zrem(self.work_key(shard), schedule_id)
        pipe.srem(self.fired_key(shard), schedule_id)
        pipe.delete(self.state_key(schedule_id))
        pipe.publish(self.changes_channel, schedule_id)
        pipe.execute()

    def state(self, schedule_id: str) -> dict[str, str]:
        return self.states([schedule_id])[0]

    def due_score(self, schedule_id: str) -> int | None:
        score = self.client.zscore(self.due_key(self.shard_of(schedule_id)), schedule_id)
        return None if score is None else int(score)

    # --- dispatch -------------------------------------------------------------------------
    def ensure_groups(self) -> None:
        """Create each dispatch stream's worker group (idempotent)."""
        for shard in range(self.shards):
            try:
                self.client.xgroup_create(self.stream_key(shard), WORKER_GROUP, id="0", mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    def dispatch_due(self, now_ms: int, shards: Iterable[int], limit: int = 1000) -> list[DispatchResult]:
        """Dispatch everything due by ``now_ms`` on the given shards, one Lua step per shard.

        Each step atomically takes due schedules, appends one stream entry per occurrence
        (its fire key included), and advances each schedule to its next occurrence; so an
        occurrence is dispatched once however many schedulers call this at the same time.
        """
        order = list(shards)
        keys = self._dispatch_keys
        replies = self._run_on_lane(
            [("dispatch", keys[shard][0], [now_ms, limit, keys[shard][1], REFILL_BELOW]) for shard in order]
        )
        results = []
        for shard, reply in zip(order, replies, strict=True):
            dispatched, to_work, more, next_due, next_work, *lags = reply
            results.append(
                DispatchResult(
                    shard=shard,
                    dispatched=int(dispatched),
                    lags_ms=[int(lag) for lag in lags],
                    to_work=int(to_work),
                    more=bool(more),
                    next_due_ms=None if int(next_due) < 0 else int(next_due),
                    next_work_ms=None if int(next_work) < 0 else int(next_work),
                )
            )
        return results

    def earliest_due_ms(self) -> int | None:
        """The earliest due time (or work lease) over all shards; None when nothing waits."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.zrange(self.due_key(shard), 0, 0, withscores=True)
            pipe.zrange(self.work_key(shard), 0, 0, withscores=True)
        scores = [int(entries[0][1]) for entries in pipe.execute() if entries]
        return min(scores) if scores else None

    # --- work that needs Python: cron times, misfires --------------------------------------
    def claim_work(
        self, now_ms: int, lease_ms: int, limit: int = 500, shards: Iterable[int] | None = None
    ) -> list[tuple[int, str]]:
        """Lease schedules waiting for Python; an expired lease makes them claimable again."""
        order = list(range(self.shards)) if shards is None else list(shards)
        replies = self._run_scripts(
            [("claim_work", [self.work_key(shard)], [now_ms, now_ms + lease_ms, limit]) for shard in order]
        )
        return [(shard, schedule_id.decode()) for shard, ids in zip(order, replies, strict=True) for schedule_id in ids]

    def states(self, schedule_ids: Sequence[str]) -> list[dict[str, str]]:
        pipe = self.client.pipeline(transaction=False)
        for schedule_id in schedule_ids:
            pipe.hgetall(self.state_key(schedule_id))
        return [{k.decode(): v.decode() for k, v in raw.items()} for raw in pipe.execute()]

    def resolve(self, decisions: Sequence[Resolution]) -> list[bool]:
        """Apply what Python decided for leased schedules, each only if its state has not
        moved since it was read (else it is left for another look). One round trip."""
        calls: list[tuple[str, list[str], list[Any]]] = []
        for decision in decisions:
            flat: list[Any] = []
            for entry in decision.entries:
                flat += [entry["fire_key"], entry["nominal"], entry["trigger"]]
            keys = [*self._shard_keys(self.shard_of(decision.schedule_id)), self.state_key(decision.schedule_id)]
            args = [
                decision.schedule_id,
                decision.expect_gen,
                decision.expect_next,
                decision.next_ms,
                ",".join(map(str, decision.ahead)),
                len(decision.ahead),
                int(decision.final),
                decision.count,
                len(decision.entries),
                *flat,
                self.changes_channel,
            ]
            calls.append(("resolve", keys, args))
        return [bool(applied) for applied in self._run_scripts(calls)] if calls else []

    # --- what MongoDB should learn -----------------------------------------------------------
    def pop_fired(self, limit: int = 1000) -> list[tuple[str, dict[str, str]]]:
        """Take up to ``limit`` schedule ids that fired since the last call (an equal share
        from each shard), with their current state."""
        share = -(-limit // self.shards)
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.spop(self.fired_key(shard), share)
        ids = [member.decode() for members in pipe.execute() for member in (members or [])]
        return list(zip(ids, self.states(ids), strict=True))

    def forget_work(self, schedule_id: str) -> None:
        self.client.zrem(self.work_key(self.shard_of(schedule_id)), schedule_id)

    def generations(self, schedule_ids: Sequence[str]) -> list[int | None]:
        """The mirrored generation of each schedule, None where Redis has no mirror."""
        pipe = self.client.pipeline(transaction=False)
        for schedule_id in schedule_ids:
            pipe.hget(self.state_key(schedule_id), "gen")
        return [None if gen is None else int(gen) for gen in pipe.execute()]

    # --- health ----------------------------------------------------------------------------
    @property
    def reconciled_key(self) -> str:
        return f"{self.prefix}:reconciled"

    def mark_reconciled(self) -> None:
        """Set a marker a reconcile leaves; if Redis loses data, the marker goes with it."""
        self.client.set(self.reconciled_key, "1")

    def is_reconciled(self) -> bool:
        return bool(self.client.exists(self.reconciled_key))

    def try_lock(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Take a named lock for ``ttl_ms`` unless someone holds it."""
        return bool(self.client.set(f"{self.prefix}:lock:{name}", owner, nx=True, px=ttl_ms))

    def unlock(self, name: str, owner: str) -> None:
        """Free a lock this owner holds (a lock that expired and was retaken stays)."""
        self._run_scripts([("unlock", [f"{self.prefix}:lock:{name}"], [owner])])

    def heartbeats(self) -> dict[str, dict[str, Any]]:
        """Live schedulers by name (their ``beat`` kind is "schedulers")."""
        return self.beats("schedulers")

    def index_sizes(self) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.zcard(self.due_key(shard))
            pipe.zcard(self.work_key(shard))
            pipe.xlen(self.stream_key(shard))
        counts = pipe.execute()
        return {"due": sum(counts[0::3]), "work": sum(counts[1::3]), "stream": sum(counts[2::3])}

    def all_mirrored_ids(self) -> set[str]:
        """Every schedule id with a mirror, in one SCAN of the keyspace."""
        tags = {self.tag(shard) for shard in range(self.shards)}
        ids: set[str] = set()
        for raw in self.client.scan_iter(match=f"{{{self.prefix}:*}}:s:*", count=1000):
            key = raw.decode()
            tag, _, schedule_id = key.partition(":s:")
            if tag in tags:  # not another deployment's whose prefix extends ours
                ids.add(schedule_id)
        return ids

    # --- runs: manual dispatch, retries, worker takeover (used by jobs.worker) ---------------
    # Keys of this section, each under its shard's hash tag:
    #   {p:n}:delayed          sorted set, encoded stream entry -> when to put it on the stream
    #                          (epoch ms): retries waiting out their backoff, runs held back by
    #                          buffer_one
    #   {p:n}:running:<sid>    sorted set, fire key -> lease expiry ms: runs of schedule <sid> in
    #                          progress (n = shard_of(sid)); a dead worker's lease runs out
    #   {p:n}:waiting:<sid>    hash (fk, member): the one run buffer_one holds back; expires
    #   <p>:workers            worker heartbeats (beat(kind="workers")), like the schedulers'
    # Entries on {p:n}:stream may also carry: a (attempt), k (takeovers so far), h (held back).

    _RUN_SCRIPTS = ("release_delayed", "overlap_enter", "overlap_leave", "keep_claimed")

    def delayed_key(self, shard: int) -> str:
        return f"{self.tag(shard)}:delayed"

    def running_key(self, schedule_id: str) -> str:
        return f"{self.tag(self.shard_of(schedule_id))}:running:{schedule_id}"

    def waiting_key(self, schedule_id: str) -> str:
        return f"{self.tag(self.shard_of(schedule_id))}:waiting:{schedule_id}"

    @staticmethod
    def encode_entry(fields: dict[str, str]) -> str:
        """A delayed entry's member: its fields, flat, in a fixed order (equal entries, equal members)."""
        flat = [item for name in sorted(fields) for item in (name, str(fields[name]))]
        return json.dumps(flat, separators=(",", ":"))

    def _run_worker_scripts(self, calls: list[tuple[str, list[str], list[Any]]]) -> list[Any]:
        """Like _run_scripts, for this section's scripts (loaded on first use)."""
        shas = self.__dict__.setdefault(
            "_run_sha",
            {name: hashlib.sha1(_lua(name).encode()).hexdigest() for name in self._RUN_SCRIPTS},  # noqa: S324
        )
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            for name, keys, args in calls:
                pipe.evalsha(shas[name], len(keys), *keys, *args)
            try:
                return pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                for name in self._RUN_SCRIPTS:
                    self.client.script_load(_lua(name))
        raise AssertionError("unreachable")

    def add_entry(self, shard: int, fields: dict[str, str]) -> str:
        """Append one entry to a shard's dispatch stream (a manual run); returns its id."""
        return str(self.client.xadd(self.stream_key(shard), fields).decode())  # type: ignore[arg-type,union-attr]

    def read_entries(
        self, consumer: str, count: int, shards: Sequence[int], block_ms: int | None = None
    ) -> list[tuple[int, str, dict[str, str]]]:
        """New entries for ``consumer`` of the worker group: (shard, entry id, fields).

        Without ``block_ms`` this returns at once. Redis applies ``count`` per stream, so more
        than ``count`` may come back when several shards are read at once. A missing group
        (Redis lost its data) is recreated and nothing is returned this time.
        """
        by_key = {self.stream_key(shard): shard for shard in shards}
        try:
            reply: Any = self.client.xreadgroup(
                WORKER_GROUP, consumer, dict.fromkeys(by_key, ">"), count=count, block=block_ms
            )
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self.ensure_groups()
            return []
        return [
            (by_key[stream.decode()], entry_id.decode(), self._decoded(fields))
            for stream, entries in reply or []
            for entry_id, fields in entries
        ]

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
        taken = [(entry_id.decode(), self._decoded(fields)) for entry_id, fields in reply[1] if fields]
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
            replies = self._run_worker_scripts(calls)
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self.ensure_groups()
            return []  # Redis lost the stream: nobody else holds these entries either
        return [(shard, lost.decode()) for shard, ids in zip(order, replies, strict=True) for lost in ids]

    def ack(self, shard: int, entry_id: str) -> None:
        """Done with an entry: acknowledge and delete it (the stream keeps only open work)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.stream_key(shard), WORKER_GROUP, entry_id)
        pipe.xdel(self.stream_key(shard), entry_id)
        self._execute_ignoring_nogroup(pipe)

    def defer(self, shard: int, fields: dict[str, str], due_ms: int, done_entry_id: str | None = None) -> None:
        """Put an entry in the shard's delayed set (kept if already there) and, in the same
        transaction, acknowledge the entry it replaces."""
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(self.delayed_key(shard), {self.encode_entry(fields): due_ms}, nx=True)
        if done_entry_id is not None:
            pipe.xack(self.stream_key(shard), WORKER_GROUP, done_entry_id)
            pipe.xdel(self.stream_key(shard), done_entry_id)
        self._execute_ignoring_nogroup(pipe)

    def replace(self, shard: int, entry_id: str, fields: dict[str, str]) -> None:
        """Swap an entry for a new one at the stream's end, in one transaction (a takeover's next attempt)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.stream_key(shard), fields)  # type: ignore[arg-type]
        pipe.xack(self.stream_key(shard), WORKER_GROUP, entry_id)
        pipe.xdel(self.stream_key(shard), entry_id)
        self._execute_ignoring_nogroup(pipe)

    def release_delayed(self, now_ms: int, limit: int = 1000) -> int:
        """Move every delayed entry due by ``now_ms`` onto its stream; returns how many."""
        replies = self._run_worker_scripts(
            [
                ("release_delayed", [self.delayed_key(shard), self.stream_key(shard)], [now_ms, limit])
                for shard in range(self.shards)
            ]
        )
        return sum(int(moved) for moved, _ in replies)

    def delayed(self, shard: int) -> list[tuple[dict[str, str], int]]:
        """What waits in a shard's delayed set: (fields, due ms), earliest first."""
        members: Any = self.client.zrange(self.delayed_key(shard), 0, -1, withscores=True)
        return [(self._pairs(json.loads(member)), int(score)) for member, score in members]

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
        shard, entry_id, fields, release_ms = hold or (self.shard_of(schedule_id), "0-0", {}, now_ms)
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
            self.encode_entry({**fields, "h": "1"}),
            release_ms,
            max(lease_ms, release_ms - now_ms) * 2,
            WORKER_GROUP,
            entry_id,
        ]
        (decision,) = self._run_worker_scripts([("overlap_enter", keys, args)])
        return str(decision.decode())

    def overlap_keep(self, runs: Iterable[tuple[str, str]], lease_until_ms: int) -> None:
        """Extend the leases of runs (schedule id, fire key) still in progress."""
        pipe = self.client.pipeline(transaction=False)
        for schedule_id, fire_key in runs:
            pipe.zadd(self.running_key(schedule_id), {fire_key: lease_until_ms}, xx=True)
        pipe.execute()

    def overlap_leave(self, schedule_id: str, fire_key: str, now_ms: int) -> None:
        delayed = self.delayed_key(self.shard_of(schedule_id))
        keys = [self.running_key(schedule_id), self.waiting_key(schedule_id), delayed]
        self._run_worker_scripts([("overlap_leave", keys, [fire_key, now_ms])])

    def beats_key(self, kind: str) -> str:
        return f"{self.prefix}:{kind}"

    def beat(self, kind: str, name: str, info: dict[str, Any], ttl_seconds: float = 10) -> None:
        """A heartbeat of a process of ``kind`` ("schedulers", "workers"), live for ``ttl_seconds``."""
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.beats_key(kind), name, json.dumps({**info, "beat": now}))
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

    @staticmethod
    def _decoded(fields: dict[bytes, bytes]) -> dict[str, str]:
        return {name.decode(): value.decode() for name, value in fields.items()}

    @staticmethod
    def _pairs(flat: list[str]) -> dict[str, str]:
        return dict(zip(flat[0::2], flat[1::2], strict=True))

    @staticmethod
    def _execute_ignoring_nogroup(pipe: Any) -> None:
        """Run a transaction; a group Redis lost is no error here (there is nothing to acknowledge)."""
        try:
            pipe.execute()
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise


def apply_live_state(schedules: Sequence[Schedule]) -> None:
    """Overwrite next_run_at, last_run_at and run_count with the mirror's live values.

    MongoDB's copy of these is written in bounded batches and may lag by seconds; what
    users see comes from Redis in one round trip. Schedules Redis does not know (it lost
    data and no reconcile ran yet) keep MongoDB's values.
    """
    store = get_store()
    if not schedules or not isinstance(store, RedisStore):
        return
    pipe = store.client.pipeline(transaction=False)
    for schedule in schedules:
        pipe.hmget(store.state_key(str(schedule.pk)), "next", "last", "count")
    for schedule, (nxt, last, count) in zip(schedules, pipe.execute(), strict=True):
        if count is None:
            continue
        schedule.run_count = int(count)
        if last is not None and int(last) >= 0:
            schedule.last_run_at = from_epoch_ms(int(last))
        if nxt is not None and int(nxt) != -2:  # -2: the next time is being computed
            schedule.next_run_at = from_epoch_ms(int(nxt)) if int(nxt) >= 0 else None


_SCRIPTS = ("upsert", "dispatch", "claim_work", "resolve", "unlock")


@cache
def _lua(name: str) -> str:
    return resources.files("schedules").joinpath(f"lua/{name}.lua").read_text()


def redis_client() -> redis.Redis:
    """The shared connection pool from django-redis."""
    from django_redis import get_redis_connection

    return get_redis_connection("default")


_default_store: ScheduleStore | None = None


def get_store() -> ScheduleStore:
    """The configured store (``JOBSCHEDULER_STORE``, a dotted path), built once."""
    global _default_store
    if _default_store is None:
        path = getattr(settings, "JOBSCHEDULER_STORE", "schedules.store.RedisStore")
        _default_store = import_string(path)()
    return _default_store
