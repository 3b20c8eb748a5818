"""Django Tasks for the declared-schedule tests: an installed app's tasks module, imported by their fixture."""

from __future__ import annotations

from jobs.tasks_api import task
from schedules.declarations import periodic


@periodic(cron="0 2 * * *", timezone="Europe/London", name="nightly-report", kwargs={"kind": "daily"})
@task
def send_report(kind: str) -> str:
    return f"sent the {kind} report"


@task
def tidy_up(days: int = 7) -> None:
    """Declared by the tests' JOBSCHEDULER_TASK_SCHEDULES, not by a decorator."""


def not_a_task() -> None:
    """A plain function: declarations must name Django Tasks."""
