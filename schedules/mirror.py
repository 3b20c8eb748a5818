"""A schedule's mirror in Redis: the hash the dispatch step reads, encoded and decoded here only.

The hash ``{p:n}:s:<id>`` (see schedules.due_index for the keys around it) holds what the
dispatch Lua needs to fire and advance a schedule, and what the scheduler needs to compute
cron times and misfires without asking MongoDB. Its fields, all strings:

- the schedule's settings: ``kind``, ``job``, ``expression``, ``timezone``, ``dst_gap`` and
  ``dst_repeat`` (a cron time's daylight saving choice), ``solar_event``, ``latitude``,
  ``longitude`` (floats as Python writes them: they read back exactly), ``solar_offset``
  (seconds), ``anchor``, ``start``,
  ``end`` (epoch ms), ``interval`` (ms; NONE for kinds other than fixed), ``max``, ``jitter``
  (ms), ``grace`` (ms), ``window`` (ms), ``catchup_max``, ``misfire``, ``overlap``, ``gen``
  (the generation of the MongoDB document it mirrors);
- live state, kept by the Lua steps: ``next`` (the next nominal time, or NONE: no further
  occurrence, or UNKNOWN: Python has to compute it), ``last`` (the last nominal time fired),
  ``count`` (occurrences fired), ``ahead`` (a comma list of the next nominal times of kinds
  whose times Python computes), ``n_ahead`` (its length) and ``final`` (1: nothing lies
  beyond ``ahead``);
- once an occurrence was staged (advanced ahead of its due time, waiting in ``{p:n}:staged``
  to be released: schedules/lua/dispatch.lua), ``staged_due`` (its due time) and ``u_last``
  (``last`` before the advance, '' for none); ``last`` is its nominal time, so its member
  there is ``staged_member``. ``next``, ``last`` and ``count`` count it already; ``settled``
  gives what has fired while it waits. Both stay once it is released (it no longer waits).

The Lua scripts in schedules/lua/ read and write the same names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from jobscheduler.epoch import from_epoch_ms, to_epoch_ms
from schedules.cron import GAP_SHIFT, REPEAT_ONCE
from schedules.models import Schedule
from schedules.timeline import TimelineFields, next_occurrence, occurrences

NONE = -1  # "no value" in mirrored integer fields; as ``next``: no further occurrence
UNKNOWN = -2  # as ``next``: a cron time the dispatch step left for Python to compute
# Non-fixed kinds carry this many upcoming times; Python adds more below REFILL_BELOW.
LOOK_AHEAD = 16
REFILL_BELOW = 6


def look_ahead(schedule: TimelineFields, after: datetime, fired: int, known: list[int]) -> tuple[list[int], bool]:
    """Upcoming nominal times (epoch ms) after ``after``: ``known`` extended to LOOK_AHEAD.

    ``fired`` counts occurrences up to and including ``after``. Returns the list and whether
    it is final (no occurrence exists beyond it).
    """
    ahead = list(known)
    start = from_epoch_ms(ahead[-1]) if ahead else after
    wanted = LOOK_AHEAD - len(ahead)
    ahead += [to_epoch_ms(o.at) for o in islice(occurrences(schedule, start, fired + len(ahead)), max(wanted, 0))]
    return ahead, len(ahead) < LOOK_AHEAD


def _ms(moment: datetime | None) -> int:
    return NONE if moment is None else to_epoch_ms(moment)


def encode(schedule: Schedule) -> dict[str, str]:
    """A saved schedule as its mirror hash, with its next times computed from ``next_run_at``."""
    next_ms, ahead, final = NONE, list[int](), True
    if schedule.next_run_at is not None:
        next_ms = to_epoch_ms(schedule.next_run_at)
        if not schedule.kind_object.advances_in_lua:
            ahead, final = look_ahead(schedule, schedule.next_run_at, schedule.run_count + 1, [])
    interval = schedule.interval_seconds if schedule.kind_object.advances_in_lua else None
    fields: dict[str, Any] = {
        "expression": schedule.expression,
        "timezone": schedule.timezone,
        "dst_gap": schedule.dst_gap,
        "dst_repeat": schedule.dst_repeat,
        "solar_event": schedule.solar_event,
        "latitude": "" if schedule.latitude is None else repr(schedule.latitude),
        "longitude": "" if schedule.longitude is None else repr(schedule.longitude),
        "solar_offset": schedule.solar_offset_seconds,
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
        "interval": (interval or 0) * 1000 or NONE,
        "end": _ms(schedule.end_at),
        "max": schedule.max_runs if schedule.max_runs is not None else NONE,
        "count": schedule.run_count,
        "jitter": schedule.jitter_seconds * 1000,
        "grace": schedule.misfire_grace_seconds * 1000,
        "misfire": schedule.misfire_policy,
        "overlap": schedule.overlap_policy,
    }
    return {name: str(value) for name, value in fields.items()}


@dataclass
class MirroredSchedule:
    """A schedule rebuilt from its mirror: enough for the schedule maths, no MongoDB."""

    pk: str
    job_id: str
    kind: str
    interval_seconds: int | None
    anchor: datetime | None
    expression: str
    timezone: str
    dst_gap: str
    dst_repeat: str
    solar_event: str
    latitude: float | None
    longitude: float | None
    solar_offset_seconds: int
    start_at: datetime | None
    end_at: datetime | None
    max_runs: int | None
    run_count: int
    jitter_seconds: int
    misfire_policy: str
    misfire_grace_seconds: float
    catchup_window_seconds: float
    catchup_max_runs: int

    @classmethod
    def from_state(cls, schedule_id: str, state: dict[str, str]) -> MirroredSchedule:
        """Read a mirror hash; ValueError names the first field that is missing or malformed."""
        check_state(state)

        def moment(name: str) -> datetime | None:
            value = int(state.get(name, NONE))
            return None if value == NONE else from_epoch_ms(value)

        def degrees(name: str) -> float | None:
            value = state.get(name, "")
            return float(value) if value else None

        interval = int(state["interval"])
        maximum = int(state["max"])
        return cls(
            pk=schedule_id,
            job_id=state["job"],
            kind=state["kind"],
            interval_seconds=interval // 1000 if interval > 0 else None,
            anchor=moment("anchor"),
            expression=state.get("expression", ""),
            timezone=state.get("timezone", "UTC"),
            # Mirrors written before the choice existed hold Debian cron's rules.
            dst_gap=state.get("dst_gap", GAP_SHIFT),
            dst_repeat=state.get("dst_repeat", REPEAT_ONCE),
            solar_event=state.get("solar_event", ""),
            latitude=degrees("latitude"),
            longitude=degrees("longitude"),
            solar_offset_seconds=int(state.get("solar_offset", 0)),
            start_at=moment("start"),
            end_at=moment("end"),
            max_runs=None if maximum == NONE else maximum,
            run_count=int(state["count"]),
            jitter_seconds=int(state["jitter"]) // 1000,
            misfire_policy=state["misfire"],
            misfire_grace_seconds=int(state["grace"]) / 1000,
            catchup_window_seconds=int(state.get("window", 3_600_000)) / 1000,
            catchup_max_runs=int(state.get("catchup_max", 100)),
        )

    def after(self, moment: datetime, fired: int) -> datetime | None:
        occurrence = next_occurrence(self, moment, fired)
        return occurrence.at if occurrence else None


_INTEGERS = ("gen", "next", "interval", "end", "max", "count", "jitter", "grace")
_OPTIONAL_INTEGERS = ("anchor", "start", "window", "catchup_max", "last", "n_ahead", "solar_offset", "staged_due")
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_AHEAD = re.compile(r"([0-9]{1,19}(,[0-9]{1,19})*)?")


def check_state(state: dict[str, str]) -> None:
    """Raise ValueError unless a mirror hash holds every field the engine reads, each readable."""
    for name in _INTEGERS + _OPTIONAL_INTEGERS:
        value = state.get(name)
        if value is None and name in _OPTIONAL_INTEGERS:
            continue
        if value is None or not _INTEGER.fullmatch(value):
            raise ValueError(f"mirror field {name!r} is not an integer: {value!r}")
    if state.get("u_last") and not _INTEGER.fullmatch(state["u_last"]):
        raise ValueError(f"mirror field 'u_last' is not an integer: {state['u_last']!r}")
    if not _AHEAD.fullmatch(state.get("ahead", "")):
        raise ValueError(f"mirror field 'ahead' is not a list of times: {state.get('ahead')!r}")
    for name in ("job", "kind", "misfire"):
        if not state.get(name):
            raise ValueError(f"mirror field {name!r} is missing")


def staged_member(schedule_id: str, state: dict[str, str]) -> str:
    """The member of the occurrence a schedule staged last, in its shard's staged set."""
    return f"{schedule_id}:{state.get('last', '')}:{state.get('job', '')}:{state.get('grace', '')}"


def settled(state: dict[str, str]) -> dict[str, str]:
    """A mirror hash with its staged occurrence taken back: what has fired so far, while that
    occurrence waits for its time (the caller knows it still waits)."""
    settled = dict(state, count=str(int(state["count"]) - 1), next=state["last"])
    if state.get("u_last"):
        settled["last"] = state["u_last"]
    else:
        settled.pop("last", None)
    return settled


def fired_state(state: dict[str, str]) -> dict[str, Any]:
    """What MongoDB keeps of a schedule's live state: run count, next and last times."""
    nxt, last = int(state["next"]), int(state.get("last", NONE))
    values: dict[str, Any] = {"run_count": int(state["count"])}
    if nxt != UNKNOWN:
        values["next_run_at"] = from_epoch_ms(nxt) if nxt >= 0 else None
    if last >= 0:
        values["last_run_at"] = from_epoch_ms(last)
    return values


def apply_live(schedule: Schedule, live: Sequence[bytes | str | None], now_ms: int) -> None:
    """Overwrite a schedule's next_run_at, last_run_at and run_count with the mirror's
    (``next``, ``last``, ``count``, ``staged_due``, ``u_last``); a schedule Redis
    does not know keeps MongoDB's values. An occurrence staged for a time after ``now_ms`` has
    not fired yet."""
    values = [value.decode() if isinstance(value, bytes) else value for value in live]
    nxt, last, count, staged_due, u_last = values
    if count is None:
        return
    if staged_due is not None and last is not None and int(staged_due) > now_ms:
        state = settled({"count": count, "u_last": u_last or "", "last": last})
        nxt, last, count = state["next"], state.get("last"), state["count"]
    schedule.run_count = int(count)
    if last is not None and int(last) >= 0:
        schedule.last_run_at = from_epoch_ms(int(last))
    if nxt is not None and int(nxt) != UNKNOWN:
        schedule.next_run_at = from_epoch_ms(int(nxt)) if int(nxt) >= 0 else None
