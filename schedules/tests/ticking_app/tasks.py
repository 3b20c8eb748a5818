"""A Django Task scheduled in code every second: run_scheduler syncs it at start, fires it, run_worker runs it."""

from __future__ import annotations

from jobs.tasks_api import task
from schedules.declarations import periodic


@periodic(every=1, name="tick", kwargs={"sound": "tock"})
@task
def tick(sound: str) -> str:
    """Answers with the sound it was given: the run's return value shows the declared kwargs arrived."""
    return f"tick, {sound}"
