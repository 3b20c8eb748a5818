"""Attempts that got their final status, told to the dashboard's counters (jobscheduler.activity).

jobs.run_records calls ``count_ended`` after each write that set a run's status, with the runs it
applied to; so every path that records an outcome (the worker's batches, takeovers, the
engine's missed runs) is counted once, by the write that made it so.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils import timezone

from jobs.models import Run
from jobscheduler import activity
from jobscheduler.epoch import to_epoch_ms

FAILED = (Run.Status.FAILED, Run.Status.TIMED_OUT)


def count_ended(runs: Sequence[Run]) -> None:
    """Count the finished attempts among ``runs`` (best effort: Redis errors are swallowed)."""
    ended = [
        activity.EndedRun(
            status=str(run.status),
            ended_at=run.finished_at,
            failed=run.status in FAILED,
            run_id=str(run.pk),
            job_id=str(run.job_id),
            schedule_id=str(run.schedule_id or ""),
            fire_key=run.fire_key,
            attempt=run.attempt,
            error=run.error,
        )
        for run in runs
        if run.status in Run.FINISHED
    ]
    if ended:
        activity.count_runs(ended, to_epoch_ms(timezone.now()))
