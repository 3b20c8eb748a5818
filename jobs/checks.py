"""System checks of the jobs app's settings: ``manage.py check``, and every command that starts a process."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

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
