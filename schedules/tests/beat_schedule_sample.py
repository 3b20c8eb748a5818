"""A team's Celery app with a beat_schedule (``import_celery_beat --from-module``'s test input)."""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.schedules import crontab, schedule, solar

app = Celery("team", set_as_current=False)
app.conf.timezone = "Europe/Berlin"

# A solar schedule needs the ephem package to be made (the team has it; we do not): one as
# Celery keeps it, without computing anything.
dusk = solar.__new__(solar)
dusk.event, dusk.lat, dusk.lon = "dusk", 52.52, 13.40

app.conf.beat_schedule = {
    "every minute": {
        "task": "proj.tasks.tick",
        "schedule": 60.0,
        "args": (1,),
        "options": {"queue": "ticks", "expires": 30},
    },
    "hourly": {"task": "proj.tasks.hourly", "schedule": timedelta(hours=1), "kwargs": {"x": 1}},
    "workday mornings": {
        "task": "proj.tasks.morning",
        "schedule": crontab(minute=15, hour=[7, 8], day_of_week="mon-fri"),
    },
    "poll": {
        "task": "proj.tasks.poll",
        "schedule": schedule(run_every=timedelta(seconds=5)),
        "options": {"priority": 3, "soft_time_limit": 10},
    },
    "dusk": {"task": "proj.tasks.lights", "schedule": dusk},
    "half a second": {"task": "proj.tasks.fast", "schedule": 0.5},
}
