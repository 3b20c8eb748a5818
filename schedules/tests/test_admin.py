"""How the schedules app's admin joins the job page (the pages themselves: jobs/tests/test_admin.py)."""

from __future__ import annotations

from django.contrib import admin

from jobs.admin import JobAdmin
from jobs.models import Job
from schedules.admin import JobWithSchedulesAdmin, ScheduleInline


def test_the_job_page_is_the_jobs_apps_with_schedules_inline() -> None:
    registered = admin.site._registry[Job]
    assert type(registered) is JobWithSchedulesAdmin
    assert isinstance(registered, JobAdmin)
    assert list(registered.inlines) == [*JobAdmin.inlines, ScheduleInline]
    assert ScheduleInline not in JobAdmin.inlines  # the jobs app knows nothing of schedules
