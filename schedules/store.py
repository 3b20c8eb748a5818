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
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

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
    from schedules.timeline import next_occurrence

    ahead = list(known)
    moment = from_epoch_ms(ahead[-1]) if ahead else after
    while len(ahead) < LOOK_AHEAD:
        occurrence = next_occurrence(schedule, moment, fired + len(ahead))
        if occurrence is None:
            return ahead, True
        moment = occurrence.at
        ahead.append(to_epoch_ms(moment))
    return ahead, False


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

    # --- Lua --------------------------------------------------------------------------------
    def _run_scripts(self, calls: list[tuple[str, list[str], list[Any]]]) -> list[Any]:
        """Run (script, keys, args) calls in one pipeline, by SHA: no SCRIPT EXISTS round
        trip per pipeline. Scripts are loaded once if Redis lacks them (a restart, a flush)."""
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            for name, keys, args in calls:
                pipe.evalsha(self._sha[name], len(keys), *keys, *args)
            try:
                return pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                for name in _SCRIPTS:
                    self.client.script_load(_lua(name))
        raise AssertionError("unreachable")

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
            calls.append(("upsert", keys, [schedule_id, self.changes_channel, fields]))
        if calls:
            self._run_scripts(calls)

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
        replies = self._run_scripts(
            [
                ("dispatch", self._shard_keys(shard), [now_ms, limit, f"{self.tag(shard)}:s:", REFILL_BELOW])
                for shard in order
            ]
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
        """Take schedule ids that fired since the last call, with their current state."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.spop(self.fired_key(shard), limit)
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

    @property
    def heartbeats_key(self) -> str:
        return f"{self.prefix}:schedulers"

    def heartbeat(self, name: str, info: dict[str, Any], ttl_seconds: float = 10) -> None:
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.heartbeats_key, name, json.dumps({**info, "beat": now}))
        pipe.zadd(f"{self.heartbeats_key}:expiry", {name: now + ttl_seconds})
        pipe.execute()

    def forget_heartbeat(self, name: str) -> None:
        self.client.hdel(self.heartbeats_key, name)
        self.client.zrem(f"{self.heartbeats_key}:expiry", name)

    def heartbeats(self) -> dict[str, dict[str, Any]]:
        """Live schedulers by name; entries whose heartbeat expired are dropped."""
        expired = self.client.zrange(f"{self.heartbeats_key}:expiry", "-inf", time.time(), byscore=True)
        if expired:
            self.client.hdel(self.heartbeats_key, *expired)
            self.client.zrem(f"{self.heartbeats_key}:expiry", *expired)
        beats: dict[Any, Any] = self.client.hgetall(self.heartbeats_key)
        return {name.decode(): json.loads(info) for name, info in beats.items()}

    def index_sizes(self) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.zcard(self.due_key(shard))
            pipe.zcard(self.work_key(shard))
            pipe.xlen(self.stream_key(shard))
        counts = pipe.execute()
        return {"due": sum(counts[0::3]), "work": sum(counts[1::3]), "stream": sum(counts[2::3])}

    def all_mirrored_ids(self) -> set[str]:
        ids: set[str] = set()
        for shard in range(self.shards):
            for key in self.client.scan_iter(match=f"{self.tag(shard)}:s:*", count=1000):
                ids.add(key.decode().rsplit(":", 1)[1])
        return ids


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


_SCRIPTS = ("upsert", "dispatch", "claim_work", "resolve")


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
