"""The dashboard app: the admin's index as an operations console (processes, due index, runs, failures, what runs next).

It sits above the other apps and reads them all (jobs, schedules, the workers' heartbeats);
none of them imports it. Its figures come from Redis (jobscheduler.activity's counters, the
due index, heartbeats) and a few indexed MongoDB reads, so it stays fast with a million runs.
"""

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Operations dashboard"
