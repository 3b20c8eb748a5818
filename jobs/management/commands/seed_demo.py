"""Create the demo user, its API token and a few demo jobs; running it again changes nothing.

The run command calls it on every start so a fresh machine has something to look at.
Everything is written through the services, like any other job or schedule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from jobs.models import Job
from jobs.services import job_create
from schedules.services import schedule_create

DEMO_USERNAME = "demo"
DEFAULT_PASSWORD = "demo-password"  # noqa: S105 - a local demo account, overridable with DEMO_PASSWORD

# (job fields, schedule fields): a schedule per job, each kind shown once.
DEMO_JOBS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {
            "name": "Hello every 10 seconds",
            "description": "Calls the registered Python function demo.hello on a fixed 10 s grid.",
            "target_type": "python",
            "target": {"function": "demo.hello", "kwargs": {"name": "fixed schedule"}},
            "timeout_seconds": 30,
        },
        {"kind": "fixed", "interval_seconds": 10},
    ),
    (
        {
            "name": "Hello every minute in London",
            "description": "A cron schedule read in Europe/London time, daylight saving included.",
            "target_type": "python",
            "target": {"function": "demo.hello", "kwargs": {"name": "cron schedule"}},
            "timeout_seconds": 30,
        },
        {"kind": "cron", "expression": "*/1 * * * *", "timezone": "Europe/London"},
    ),
    (
        {
            "name": "Webhook example (disabled)",
            "description": "A signed HTTP webhook. Disabled and paused: point it at your endpoint, then enable it.",
            "target_type": "http",
            "target": {
                "method": "POST",
                "url": "https://example.com/webhooks/jobscheduler",
                "headers": {"Content-Type": "application/json"},
                "body": '{"hello": "from jobscheduler"}',
            },
            "secret": "change-me",
            "enabled": False,
        },
        {"kind": "cron", "expression": "0 9 * * MON-FRI", "timezone": "Europe/London", "paused": True},
    ),
]


@dataclass
class DemoSeed:
    user: User
    password: str
    token: str
    created_jobs: list[Job] = field(default_factory=list)


def seed_demo(password: str = DEFAULT_PASSWORD) -> DemoSeed:
    """Ensure the demo superuser (with ``password``), its token and the demo jobs exist."""
    user = User.objects.filter(username=DEMO_USERNAME).first()
    if user is None:
        user = User.objects.create_superuser(DEMO_USERNAME, "demo@example.com", password)
    elif not user.check_password(password):
        # The password printed at start must be the one that works.
        user.set_password(password)
        user.save(update_fields=["password"])
    token, _ = Token.objects.get_or_create(user=user)
    seed = DemoSeed(user=user, password=password, token=token.key)
    for job_fields, schedule_fields in DEMO_JOBS:
        # A demo job the user edited or deleted schedules of is theirs now: left alone.
        if Job.objects.filter(owner=user, name=job_fields["name"]).exists():
            continue
        job = job_create(owner=user, **job_fields)
        schedule_create(job=job, **schedule_fields)
        seed.created_jobs.append(job)
    return seed


class Command(BaseCommand):
    help = "Create the demo superuser, its API token and demo jobs (idempotent)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--password",
            default=os.environ.get("DEMO_PASSWORD") or DEFAULT_PASSWORD,
            help="The demo user's password (default: $DEMO_PASSWORD, else demo-password).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        seed = seed_demo(options["password"])
        created = ", ".join(job.name for job in seed.created_jobs) or "none (already there)"
        self.stdout.write(f"Demo jobs created: {created}")
        self.stdout.write(f"Demo login: {seed.user.username} / {seed.password}")
        self.stdout.write(f"API token:  {seed.token}")
