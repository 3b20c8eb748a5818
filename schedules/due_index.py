"""The due index: which schedule fires next, and the Lua steps that fire and advance them.

Redis is an index rebuilt from MongoDB (schedules.engine.reconcile), never the source of
truth. Keys of one shard share a hash tag (jobscheduler.keyspace), so every Lua step
touches one slot:

- ``{p:n}:due``       sorted set, schedule id -> due time (next nominal + jitter), epoch ms
- ``{p:n}:s:<id>``    hash, the schedule's mirror (its fields: schedules.mirror)
- ``{p:n}:work``      sorted set, schedule id -> lease expiry: schedules that need Python
                      (a cron time to compute, a misfire to resolve); leased while handled
- ``{p:n}:fired``     set of schedule ids whose run count / times MongoDB has not seen yet
- ``{p:n}:syncing``   sorted set, schedule id -> lease expiry ms: taken from ``fired`` and
                      being copied to MongoDB; back in play if its copier stops (pop_fired.lua)
- ``{p:n}:staged``    sorted set, staged occurrence -> due time: fires advanced ahead of their
                      time, waiting to be appended to the stream at it (lua/dispatch.lua)
- ``{p:n}:stream``    the run queue's stream (jobs.runqueue), where occurrences go

``<p>:changes`` is the pub/sub channel that wakes sleeping schedulers on an edit, and
``<p>:reconciled`` a marker that goes when Redis loses data.

The steps that read schedules' mirrors by id (dispatch, pop_fired, upsert: keys they find,
not keys they are given) also name ``{p:n}:guard``, a key nobody writes. On a Redis Cluster a
slot being moved (resharding) has its keys on two nodes for a while, and a script reading a
key already gone would fail midway, its first writes done; naming a key that exists on
neither node makes Redis answer TRYAGAIN before the script starts until the slot has moved
(redis-py tries again, then jobscheduler.outages does).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from jobs.runqueue import RunQueue
from jobscheduler.keyspace import Keyspace, default_keyspace
from jobscheduler.scripts import Call, LuaScripts
from schedules import mirror
from schedules.models import Schedule

# How long a copy of fired state to MongoDB may take before another scheduler takes it over.
FIRED_LEASE_MS = 30_000
# What a copy of fired state reads of a mirror (schedules.mirror: fired_state, settled, staged_member).
_FIRED_FIELDS = ("next", "last", "count", "staged_due", "u_last", "job", "grace")
# Schedules mirrored by one Lua step: a slice of a bulk load takes Redis a few milliseconds.
UPSERT_SLICE = 200
# On a Redis Cluster, how soon the shards of a master that did not answer are tried again
# (dispatch_due), while the other masters' shards go on firing.
AWAY_RETRY_MS = 100


@dataclass(frozen=True)
class Resolution:
    """Python's decision for one leased schedule: catch-up entries and its next times.

    Each entry is (fire key, nominal epoch ms, trigger); resolve.lua writes it to the stream.
    """

    schedule_id: str
    expect_gen: str
    expect_next: str
    next_ms: int
    ahead: list[int]
    final: bool
    count: int
    entries: list[tuple[str, int, str]]


class DispatchResult(NamedTuple):
    """What one dispatch step did on one shard, and when the shard next needs attention."""

    shard: int
    dispatched: int
    lags_ms: list[int]
    more: bool
    next_release_ms: int | None  # the earliest staged occurrence: release it then
    next_due_ms: int | None  # the earliest due time not staged: stage it a lead before
    next_work_ms: int | None
    staged: int = 0
    due_with_next: int = 0  # how many fall due within 10 ms of next_due_ms (a burst)


def _dispatch_result(shard: int, reply: list[Any]) -> DispatchResult:
    """A DispatchResult from dispatch.lua's reply (its header says what each field is)."""
    dispatched, _, more, next_release, next_work, next_due, staged, due_with_next, *lags = reply
    return DispatchResult(
        shard,
        dispatched,
        lags,
        more == 1,
        None if next_release < 0 else next_release,
        None if next_due < 0 else next_due,
        None if next_work < 0 else next_work,
        staged,
        due_with_next,
    )


class DueIndex:
    """The sharded due index and the schedule mirrors it points at."""

    def __init__(self, keyspace: Keyspace | None = None):
        self.keyspace = keyspace or default_keyspace()
        self.client = self.keyspace.client
        self.shards = self.keyspace.shards
        self.runqueue = RunQueue(self.keyspace)
        self._scripts = LuaScripts(
            self.client, "schedules", ("upsert", "dispatch", "claim_work", "resolve", "pop_fired", "remove")
        )
        # Each shard's keys and state-key prefix, built once: every wake needs them.
        self._dispatch_keys = [
            (self._dispatch_keys_of(shard), self.keyspace.key(shard, "s:")) for shard in range(self.shards)
        ]
        # Each shard's dispatch command packed once but for its time, by (limit, lead).
        self._dispatch_heads: dict[tuple[int, int], list[bytes]] = {}

    # --- keys -----------------------------------------------------------------------------
    def shard_of(self, schedule_id: str) -> int:
        return self.keyspace.shard_of(schedule_id)

    def due_key(self, shard: int) -> str:
        return self.keyspace.key(shard, "due")

    def state_key(self, schedule_id: str) -> str:
        return self.keyspace.key(self.shard_of(schedule_id), f"s:{schedule_id}")

    def work_key(self, shard: int) -> str:
        return self.keyspace.key(shard, "work")

    def fired_key(self, shard: int) -> str:
        return self.keyspace.key(shard, "fired")

    def syncing_key(self, shard: int) -> str:
        return self.keyspace.key(shard, "syncing")

    def staged_key(self, shard: int) -> str:
        return self.keyspace.key(shard, "staged")

    def _shard_keys(self, shard: int) -> list[str]:
        return [self.due_key(shard), self.work_key(shard), self.fired_key(shard), self.runqueue.stream_key(shard)]

    def guard_key(self, shard: int) -> str:
        """Never written: see the module's docstring."""
        return self.keyspace.key(shard, "guard")

    def _dispatch_keys_of(self, shard: int) -> list[str]:
        return [*self._shard_keys(shard), self.staged_key(shard), self.guard_key(shard)]

    # --- the mirror -------------------------------------------------------------------------
    def upsert(self, schedule: Schedule) -> None:
        """Mirror a saved schedule; an older generation never overwrites a newer one."""
        self.upsert_many([schedule])

    def upsert_many(
        self, schedules: Iterable[Schedule], on_error: Callable[[Schedule, Exception], None] | None = None
    ) -> None:
        """Mirror saved schedules in one round trip: a Lua step per shard and slice of them.

        A schedule that cannot be encoded (its stored fields are wrong) raises, unless
        ``on_error`` takes it: then it is left out and the others are mirrored.
        """
        by_shard: dict[int, list[dict[str, str]]] = {}
        for schedule in schedules:
            schedule_id = str(schedule.pk)
            try:
                fields = mirror.encode(schedule)
            except Exception as error:
                if on_error is None:
                    raise
                on_error(schedule, error)
                continue
            fields["id"] = schedule_id
            by_shard.setdefault(self.shard_of(schedule_id), []).append(fields)
        if not by_shard:
            return
        single = sum(map(len, by_shard.values())) == 1
        # One notice per schedule alone; a batch sends one ('*': look at every shard).
        channel = self.keyspace.changes_channel if single else ""
        calls: list[Call] = [
            (
                "upsert",
                [self.due_key(shard), self.work_key(shard), self.staged_key(shard), self.guard_key(shard)],
                [self.keyspace.key(shard, "s:"), channel, packed],
            )
            for shard, mirrors in by_shard.items()
            # One JSON argument per slice: it packs far faster than separate ones (bulk loads).
            for packed in (
                json.dumps(mirrors[first : first + UPSERT_SLICE]) for first in range(0, len(mirrors), UPSERT_SLICE)
            )
        ]
        self._scripts.run(calls)
        if not single:
            self.client.publish(self.keyspace.changes_channel, "*")

    def remove(self, schedule_id: str) -> None:
        """Take a schedule out of the mirror, its staged occurrence included (remove.lua)."""
        shard = self.shard_of(schedule_id)
        keys = [
            self.due_key(shard),
            self.work_key(shard),
            self.fired_key(shard),
            self.syncing_key(shard),
            self.staged_key(shard),
            self.state_key(schedule_id),
        ]
        self._scripts.run([("remove", keys, [schedule_id, self.keyspace.changes_channel])])

    def state(self, schedule_id: str) -> dict[str, str]:
        return self.states([schedule_id])[0]

    def states(self, schedule_ids: Sequence[str]) -> list[dict[str, str]]:
        pipe = self.client.pipeline(transaction=False)
        for schedule_id in schedule_ids:
            pipe.hgetall(self.state_key(schedule_id))
        return [{k.decode(): v.decode() for k, v in raw.items()} for raw in pipe.execute()]

    def generations(self, schedule_ids: Sequence[str]) -> list[int | None]:
        """The mirrored generation of each schedule, None where Redis has no mirror."""
        pipe = self.client.pipeline(transaction=False)
        for schedule_id in schedule_ids:
            pipe.hget(self.state_key(schedule_id), "gen")
        return [None if gen is None else int(gen) for gen in pipe.execute()]

    def apply_live_state(self, schedules: Sequence[Schedule]) -> None:
        """Overwrite next_run_at, last_run_at and run_count with the mirror's live values.

        MongoDB's copy of these is written in bounded batches and may lag by seconds; what
        users see comes from Redis in one round trip. Schedules Redis does not know (it lost
        data and no reconcile ran yet) keep MongoDB's values.
        """
        if not schedules:
            return
        pipe = self.client.pipeline(transaction=False)
        for schedule in schedules:
            pipe.hmget(self.state_key(str(schedule.pk)), "next", "last", "count", "staged_due", "u_last")
        now_ms = int(time.time() * 1000)
        for schedule, live in zip(schedules, pipe.execute(), strict=True):
            mirror.apply_live(schedule, live, now_ms)

    def due_score(self, schedule_id: str) -> int | None:
        score = self.client.zscore(self.due_key(self.shard_of(schedule_id)), schedule_id)
        return None if score is None else int(score)

    # --- dispatch -------------------------------------------------------------------------
    def dispatch_due(
        self, now_ms: int, shards: Iterable[int], limit: int = 1000, lead_ms: int = 0
    ) -> list[DispatchResult]:
        """Dispatch on the given shards, one Lua step per shard (dispatch.lua): release the
        staged occurrences due by ``now_ms``, then advance every schedule due by ``now_ms +
        lead_ms``, appending to the stream what is due already and staging the rest.

        Each step is atomic, so an occurrence is dispatched once however many schedulers call
        this at the same time, and any of them releases what another staged.
        """
        order = list(shards)
        heads = self._dispatch_heads.get((limit, lead_ms))
        if heads is None:
            heads = self._dispatch_heads[(limit, lead_ms)] = [
                self._scripts.packed_head("dispatch", keys, self._dispatch_args(prefix, limit, lead_ms))
                for keys, prefix in self._dispatch_keys
            ]
        replies = self._scripts.run_packed(
            [LuaScripts.with_last(heads[shard], now_ms) for shard in order],
            lambda: [
                (
                    "dispatch",
                    self._dispatch_keys[shard][0],
                    [*self._dispatch_args(self._dispatch_keys[shard][1], limit, lead_ms), now_ms],
                )
                for shard in order
            ],
            [self._dispatch_keys[shard][0][0] for shard in order],
            keep_failures=True,
        )
        failed = [reply for reply in replies if isinstance(reply, Exception)]
        if failed and len(failed) == len(replies):
            raise failed[0]  # no master answered: an outage
        # A Redis Cluster's master that is away (failing over) fails only its own shards' steps:
        # they did nothing and are looked at again in a moment; the others' replies stand.
        return [
            DispatchResult(shard, 0, [], False, now_ms + AWAY_RETRY_MS, None, None)
            if isinstance(reply, Exception)
            else _dispatch_result(shard, reply)
            for shard, reply in zip(order, replies, strict=True)
        ]

    @staticmethod
    def _dispatch_args(prefix: str, limit: int, lead_ms: int) -> list[Any]:
        """dispatch.lua's arguments but the last (now)."""
        return [limit, prefix, mirror.REFILL_BELOW, lead_ms]

    def earliest_due_ms(self) -> int | None:
        """The earliest due time (staged or not, or work lease) over all shards; None when nothing waits."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.zrange(self.due_key(shard), 0, 0, withscores=True)
            pipe.zrange(self.work_key(shard), 0, 0, withscores=True)
            pipe.zrange(self.staged_key(shard), 0, 0, withscores=True)
        scores = [int(entries[0][1]) for entries in pipe.execute() if entries]
        return min(scores) if scores else None

    # --- work that needs Python: cron times, misfires --------------------------------------
    def claim_work(
        self, now_ms: int, lease_ms: int, limit: int = 500, shards: Iterable[int] | None = None
    ) -> list[tuple[int, str]]:
        """Lease schedules waiting for Python; an expired lease makes them claimable again."""
        order = list(range(self.shards)) if shards is None else list(shards)
        replies = self._scripts.run(
            [("claim_work", [self.work_key(shard)], [now_ms, now_ms + lease_ms, limit]) for shard in order]
        )
        return [(shard, schedule_id.decode()) for shard, ids in zip(order, replies, strict=True) for schedule_id in ids]

    def resolve(self, decisions: Sequence[Resolution]) -> list[bool]:
        """Apply what Python decided for leased schedules, each only if its state has not
        moved since it was read (else it is left for another look). One round trip."""
        calls: list[Call] = []
        for decision in decisions:
            flat: list[Any] = [item for entry in decision.entries for item in entry]
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
                self.keyspace.changes_channel,
            ]
            calls.append(("resolve", keys, args))
        return [bool(applied) for applied in self._scripts.run(calls)] if calls else []

    def forget_work(self, schedule_id: str) -> None:
        self.client.zrem(self.work_key(self.shard_of(schedule_id)), schedule_id)

    # --- what MongoDB should learn -----------------------------------------------------------
    def pop_fired(
        self, limit: int = 1000, lease_ms: int = FIRED_LEASE_MS, now_ms: int | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        """Take up to ``limit`` schedule ids that fired since the last call (an equal share
        from each shard), with what a copy to MongoDB needs of their state (pop_fired.lua).

        They stay leased in the syncing set until ``done_fired`` (or ``return_fired``): if
        this process stops or dies before, another scheduler takes them once the lease ends.
        A schedule whose staged occurrence still waits comes as it was before that one.
        """
        share = -(-limit // self.shards)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        replies = self._scripts.run(
            [
                (
                    "pop_fired",
                    [self.fired_key(shard), self.syncing_key(shard), self.staged_key(shard), self.guard_key(shard)],
                    [now_ms, now_ms + lease_ms, share, self.keyspace.key(shard, "s:")],
                )
                for shard in range(self.shards)
            ]
        )
        taken = []
        width = len(_FIRED_FIELDS) + 2
        for reply in replies:
            for first in range(0, len(reply), width):
                schedule_id, *values, waiting = reply[first : first + width]
                state = {name: value.decode() for name, value in zip(_FIRED_FIELDS, values, strict=True) if value}
                taken.append((schedule_id.decode(), mirror.settled(state) if waiting else state))
        return taken

    def done_fired(self, schedule_ids: Sequence[str]) -> None:
        """Release the lease of ids ``pop_fired`` took whose state reached MongoDB."""
        self._unlease(schedule_ids, back=False)

    def return_fired(self, schedule_ids: Sequence[str]) -> None:
        """Put back ids ``pop_fired`` took whose state did not reach MongoDB (it was away)."""
        self._unlease(schedule_ids, back=True)

    def _unlease(self, schedule_ids: Sequence[str], *, back: bool) -> None:
        if not schedule_ids:
            return
        by_shard: dict[int, list[str]] = {}
        for schedule_id in schedule_ids:
            by_shard.setdefault(self.shard_of(schedule_id), []).append(schedule_id)
        pipe = self.client.pipeline(transaction=False)
        for shard, ids in by_shard.items():
            if back:
                pipe.sadd(self.fired_key(shard), *ids)
            pipe.zrem(self.syncing_key(shard), *ids)
        pipe.execute()

    # --- health ----------------------------------------------------------------------------
    @property
    def reconciled_key(self) -> str:
        return self.keyspace.global_key("reconciled")

    def mark_reconciled(self) -> None:
        """Set a marker a reconcile leaves; if Redis loses data, the marker goes with it."""
        self.client.set(self.reconciled_key, "1")

    def is_reconciled(self) -> bool:
        return bool(self.client.exists(self.reconciled_key))

    def sizes(self) -> dict[str, int]:
        """Schedules waiting in the due index and in the work set, over every shard."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.zcard(self.due_key(shard))
            pipe.zcard(self.work_key(shard))
        counts = pipe.execute()
        return {"due": sum(counts[0::2]), "work": sum(counts[1::2])}

    def all_mirrored_ids(self) -> set[str]:
        """Every schedule id with a mirror, in one SCAN of the keyspace."""
        tags = {self.keyspace.tag(shard) for shard in range(self.shards)}
        ids: set[str] = set()
        for raw in self.client.scan_iter(match=f"{{{self.keyspace.prefix}:*}}:s:*", count=1000):
            key = raw.decode()
            tag, _, schedule_id = key.partition(":s:")
            if tag in tags:  # not another deployment's whose prefix extends ours
                ids.add(schedule_id)
        return ids


@lru_cache(maxsize=8)  # tests and benchmarks switch keyspaces; each index holds connections
def _for(keyspace: Keyspace) -> DueIndex:
    return DueIndex(keyspace)


def get_due_index() -> DueIndex:
    """The due index of the default keyspace (built once per keyspace)."""
    return _for(default_keyspace())


def apply_live_state(schedules: Sequence[Schedule]) -> None:
    """``DueIndex.apply_live_state`` on the default due index (what the API and admin show)."""
    get_due_index().apply_live_state(schedules)
