"""seed_demo: the demo user, its API token and jobs, and the schedules declared in code (demo.seed); idempotent."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand

from demo.receiver import DEFAULT_PORT, HOST
from demo.seed import DEFAULT_PASSWORD, seed_demo


class Command(BaseCommand):
    help = (
        "Create the demo superuser, its API token and demo jobs, and apply the schedules declared in code (idempotent)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--password",
            default=os.environ.get("DEMO_PASSWORD") or DEFAULT_PASSWORD,
            help="The demo user's password (default: $DEMO_PASSWORD, else demo-password).",
        )
        parser.add_argument(
            "--receiver-port",
            type=int,
            default=int(os.environ.get("DEMO_RECEIVER_PORT") or DEFAULT_PORT),
            help=f"Port of demo_receiver on {HOST}, where the demo webhook goes (default $DEMO_RECEIVER_PORT, "
            f"else {DEFAULT_PORT}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        seed = seed_demo(options["password"], receiver_port=options["receiver_port"])
        created = ", ".join(job.name for job in seed.created_jobs) or "none (already there)"
        self.stdout.write(f"Demo jobs created: {created}")
        self.stdout.write(f"Schedules declared in code: {'; '.join(seed.declared) or 'in step'}")
        self.stdout.write(f"Demo login: {seed.user.username} / {seed.password}")
        self.stdout.write(f"API token:  {seed.token}")
