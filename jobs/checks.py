"""System checks of the jobs app's settings: ``manage.py check``, and every command that starts a process."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from jobs import retention
from jobs.targets.command import allowed_rules
from jobs.targets.http.addresses import allow_list


@register()
def check_allowed_commands(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    try:
        allowed_rules()
    except ImproperlyConfigured as error:
        return [Error(str(error), hint="See jobs/targets/command.py for the setting's forms.", id="jobs.E001")]
    return []


@register()
def check_webhook_allow_list(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """A bad JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS entry stops the processes at start, not every save."""
    try:
        allow_list()
    except ImproperlyConfigured as error:
        return [Error(str(error), hint="Entries are host names, .domain suffixes or CIDR networks.", id="jobs.E002")]
    return []


@register(Tags.database)
def check_run_retention(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Warning]:
    """``check --database default``: the runs' TTL index as the settings ask (migrate sets it)."""
    if not databases or connection.alias not in databases:
        return []  # database checks run only when asked for, as Django's own
    try:
        held = retention.held_expiry()
    except (LookupError, PyMongoError):
        return []  # not migrated yet, or no server: other checks and migrate say so
    wanted = retention.wanted_expiry()
    if held == wanted:
        return []
    return [
        Warning(
            f"The runs' TTL index has {retention.describe(held)}; the settings ask for {retention.describe(wanted)}.",
            hint="Run manage.py migrate or manage.py run_retention to apply it.",
            id="jobs.W003",
        )
    ]


@register(Tags.database)
def check_retryable_writes_on_secantus(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Warning]:
    """Retryable writes slow SecantusDB down and have no failover to serve (jobscheduler/settings.py)."""
    if not databases or connection.alias not in databases:
        return []
    try:
        connection.ensure_connection()
        return retryable_writes_warnings(connection.connection)
    except PyMongoError:
        return []


def retryable_writes_warnings(client: MongoClient[Any]) -> list[Warning]:
    if "secantusVersion" not in client.admin.command("buildInfo") or not client.options.retry_writes:
        return []
    return [
        Warning(
            "Retryable writes are on against SecantusDB: it has no failover to retry across, and "
            "its record of them makes every write slower (4.2 ms instead of 0.5 ms at 10,000).",
            hint="Set MONGODB_RETRY_WRITES=0.",
            id="jobs.W004",
        )
    ]
