"""The demo data: the demo user, its API token and a few demo jobs; seeding again changes nothing.

The run command seeds it on every start (``manage.py seed_demo`` does it by hand) so a fresh
machine has something to look at: a Python job every 10 seconds, a cron job every minute, and
a signed webhook every 15 seconds to the project's own receiver (``demo_receiver``, started by
the run command on loopback). Everything is written through the services, like any other job
or schedule. It also applies the schedules declared in code (``demo.tasks.clock``'s
``@periodic``, every 5 minutes), as every scheduler start does, so the admin shows one at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from demo.receiver import DEFAULT_PORT, DEMO_SECRET, HOST, PATH
from jobs.models import Job
from jobs.services import job_create, job_update
from jobs.targets import clean_target
from schedules.services import schedule_create
from schedules.sync_declared import sync_declared_schedules

DEMO_USERNAME = "demo"
DEFAULT_PASSWORD = "demo-password"  # noqa: S105 - a local demo account, overridable with DEMO_PASSWORD

WEBHOOK_JOB = "Webhook every 15 seconds"

# (job fields, schedule fields): one schedule per job; fixed, cron and a webhook shown.
DEMO_JOBS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {
            "name": "Hello every 10 seconds",
            "description": "Runs the Django Task demo.tasks.hello on a fixed 10 s grid.",
            "target_type": "python",
            "target": {"task": "demo.tasks.hello", "kwargs": {"name": "fixed schedule"}},
            "timeout_seconds": 30,
        },
        {"kind": "fixed", "interval_seconds": 10},
    ),
    (
        {
            "name": "Hello every minute in London",
            "description": "A cron schedule read in Europe/London time, daylight saving included.",
            "target_type": "python",
            "target": {"task": "demo.tasks.hello", "kwargs": {"name": "cron schedule"}},
            "timeout_seconds": 30,
        },
        {"kind": "cron", "expression": "*/1 * * * *", "timezone": "Europe/London"},
    ),
    (
        {
            "name": WEBHOOK_JOB,
            "description": (
                "A webhook signed the Standard Webhooks way, every 15 seconds, to the receiver the run "
                "command starts on 127.0.0.1 (manage.py demo_receiver), which checks the signature. "
                "Point it at your own endpoint (with its secret) to try that."
            ),
            "target_type": "http",
            "target": {
                "method": "POST",
                "url": "",  # the receiver's URL, filled in by seed_demo
                "headers": {"Content-Type": "application/json"},
                "body": '{"hello": "from jobscheduler"}',
            },
            "secret": DEMO_SECRET,
            "timeout_seconds": 10,
        },
        {"kind": "fixed", "interval_seconds": 15},
    ),
]


@dataclass
class DemoSeed:
    user: User
    password: str
    token: str
    created_jobs: list[Job] = field(default_factory=list)
    declared: list[str] = field(default_factory=list)  # what applying the code's declarations did


def receiver_url(port: int = DEFAULT_PORT) -> str:
    """Where the demo webhook goes: the local receiver (``demo_receiver --port``)."""
    return f"http://{HOST}:{port}{PATH}"


def _is_receiver_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname == HOST and parts.path == PATH


def seed_demo(password: str = DEFAULT_PASSWORD, *, receiver_port: int = DEFAULT_PORT) -> DemoSeed:
    """Ensure the demo superuser (with ``password``), its token and the demo jobs exist.

    The webhook job goes to the receiver on ``receiver_port``; started on another port
    later, the receiver gets it back (the one change made to an existing demo job).
    """
    user = User.objects.filter(username=DEMO_USERNAME).first()
    if user is None:
        user = User.objects.create_superuser(DEMO_USERNAME, "demo@example.com", password)
    elif not user.check_password(password):
        # The password printed at start must be the one that works.
        user.set_password(password)
        user.save(update_fields=["password"])
    token, _ = Token.objects.get_or_create(user=user)
    seed = DemoSeed(user=user, password=password, token=token.key)
    url = receiver_url(receiver_port)
    for job_fields, schedule_fields in DEMO_JOBS:
        if job_fields["target_type"] == "http":
            job_fields = {**job_fields, "target": {**job_fields["target"], "url": url}}
            if clean_target("http", job_fields["target"]):
                # JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS keeps webhooks off loopback (the run
                # command allows it unless told otherwise, and its banner says so): no webhook.
                continue
        existing = Job.objects.filter(owner=user, name=job_fields["name"]).first()
        if existing is not None:
            # A demo job the user edited or deleted schedules of is theirs now: left alone,
            # except that the webhook follows the receiver to its port.
            target = existing.target if isinstance(existing.target, dict) else {}
            current = str(target.get("url", ""))
            if existing.target_type == "http" and current != url and _is_receiver_url(current):
                job_update(existing, target={**target, "url": url})
            continue
        job = job_create(owner=user, **job_fields)
        schedule_create(job=job, **schedule_fields)
        seed.created_jobs.append(job)
    seed.declared = sync_declared_schedules().lines()
    return seed
