"""What to do with a schedule that needs Python: its next times, and the misfire policy if it fell behind.

Pure decisions on a mirrored schedule and a time; schedules.engine.steps applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from jobs.models import Run
from jobscheduler.epoch import from_epoch_ms, to_epoch_ms
from schedules.kinds import get_kind
from schedules.mirror import NONE, UNKNOWN, MirroredSchedule, look_ahead
from schedules.models import Schedule
from schedules.timeline import fire_key, jitter_ms

MAX_MISSED_RECORDS = 10_000  # per schedule and gap; more are counted in the log, not recorded


@dataclass
class Decision:
    """What Python decided for one schedule taken from the work set.

    ``entries`` are the occurrences to dispatch now: (fire key, nominal epoch ms, trigger).
    """

    entries: list[tuple[str, int, str]] = field(default_factory=list)
    missed: list[datetime] = field(default_factory=list)
    next_at: datetime | None = None
    ahead: list[int] = field(default_factory=list)
    final: bool = True
    count: int = 0
    not_recorded: int = 0


def decide(schedule: MirroredSchedule, state: dict[str, str], now: datetime) -> Decision | None:
    """Compute the next times, and apply the misfire policy if the schedule fell behind.

    Returns None when the schedule has no next occurrence left (nothing to do).
    """
    count = schedule.run_count
    nxt = int(state["next"])
    if nxt == NONE:
        return None
    known = [int(moment) for moment in state.get("ahead", "").split(",") if moment]
    if nxt == UNKNOWN:
        last = int(state.get("last", NONE))
        candidate = schedule.after(from_epoch_ms(last) if last != NONE else now, count)
        known = []
    else:
        candidate = from_epoch_ms(nxt)
    decision = Decision(count=count)
    late: list[datetime] = []
    grace = timedelta(seconds=schedule.misfire_grace_seconds)
    while candidate is not None and _due_at(schedule, candidate) + grace < now:
        if len(late) < MAX_MISSED_RECORDS:
            late.append(candidate)
        else:
            decision.not_recorded += 1
        candidate = schedule.after(candidate, count)
    if late:
        _apply_misfire_policy(schedule, late, now, decision)
        known = []
    decision.next_at = candidate
    if candidate is not None and not get_kind(schedule.kind).advances_in_lua:
        decision.ahead, decision.final = look_ahead(schedule, candidate, decision.count + 1, known)
    else:
        decision.final = candidate is None
    return decision


def _due_at(schedule: MirroredSchedule, nominal: datetime) -> datetime:
    return nominal + timedelta(milliseconds=jitter_ms(fire_key(schedule.pk, nominal), schedule.jitter_seconds, None))


def _apply_misfire_policy(schedule: MirroredSchedule, late: list[datetime], now: datetime, decision: Decision) -> None:
    policy = schedule.misfire_policy
    if policy == Schedule.Misfire.RUN_ONCE:
        # Coalesced: the latest stands for them all, so the others are not reported missed.
        run, missed = late[-1:], []
    elif policy == Schedule.Misfire.RUN_ALL:
        window_start = now - timedelta(seconds=schedule.catchup_window_seconds)
        in_window = [moment for moment in late if moment >= window_start]
        run = in_window[-schedule.catchup_max_runs :]
        missed = late[: len(late) - len(run)]
    else:
        run, missed = [], late
    decision.entries = [
        (fire_key(schedule.pk, moment), to_epoch_ms(moment), Run.Trigger.CATCH_UP.value) for moment in run
    ]
    decision.missed = missed
    decision.count += len(run)
