"""import_celery_beat: make celery jobs and schedules of celery beat's entries (django-celery-beat or beat_schedule)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs import permissions
from jobs.targets import celery as celery_target
from schedules.beat_import import apply, sources


class Command(BaseCommand):
    help = (
        "Create (or, run again, update) a celery job and its schedule for each celery beat entry: from "
        "django-celery-beat's tables on another database, or from a beat_schedule. Entries that cannot be "
        "translated are listed with the reason; the command then exits with status 1."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument(
            "--database", metavar="ALIAS", help="A DATABASES alias holding django-celery-beat's tables."
        )
        source.add_argument(
            "--database-url",
            metavar="URL",
            help="The database holding them: sqlite:////path/to/db.sqlite3 or postgres://user:password@host:port/name.",
        )
        source.add_argument(
            "--from-module",
            metavar="PATH",
            help="A Celery app (proj.celery:app, its beat_schedule) or a beat_schedule dict (proj.settings.BEAT).",
        )
        parser.add_argument("--owner", required=True, help="Username of the user the jobs belong to.")
        parser.add_argument("--dry-run", action="store_true", help="Print what would be done; change nothing.")
        parser.add_argument(
            "--paused",
            action="store_true",
            help="Make every schedule paused (while beat still runs); import again without it to apply beat's "
            "enabled flags.",
        )
        parser.add_argument(
            "--db-timezone",
            default="UTC",
            help="Time zone of datetimes the tables hold without one (a project with USE_TZ = False). Default UTC.",
        )
        parser.add_argument(
            "--timezone",
            default=None,
            help="Time zone of a beat_schedule's crontabs (default: the app's timezone setting, else UTC).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        owner = User.objects.filter(username=options["owner"]).first()
        if owner is None:
            raise CommandError(f"No user {options['owner']!r}.")
        if not options["dry_run"]:
            if not celery_target.configured():
                raise CommandError(
                    "Set JOBSCHEDULER_CELERY_BROKER_URL (or JOBSCHEDULER_CELERY_APP) first: celery jobs need a broker."
                )
            refusal = permissions.target_refusal(owner, "celery", {})
            if refusal:
                raise CommandError(f"{options['owner']}: {refusal}")
        made_alias = None
        try:
            if options["from_module"]:
                entries = sources.from_module(options["from_module"], timezone=options["timezone"])
            else:
                alias = options["database"] or (made_alias := sources.alias_for_url(options["database_url"]))
                entries = sources.from_database(alias, naive_timezone=options["db_timezone"])
        except sources.SourceError as error:
            raise CommandError(str(error)) from error
        finally:
            if made_alias is not None:
                sources.drop_alias(made_alias)
        lines = apply.import_entries(entries, owner=owner, dry_run=options["dry_run"], paused=options["paused"])
        for line in lines:
            self.stdout.write(apply.as_text(line))
        counts = apply.summary(lines)
        verb = "would be " if options["dry_run"] else ""
        self.stdout.write(
            f"{len(lines)} entries: {counts['create']} {verb}created, {counts['update']} {verb}updated, "
            f"{counts['same']} unchanged, {counts['refuse']} not imported."
        )
        if counts["refuse"] and not options["dry_run"]:
            raise CommandError(f"{counts['refuse']} entries were not imported (listed above with the reason).")
