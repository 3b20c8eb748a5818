"""System checks of the jobs app's settings: ``manage.py check``, and every command that starts a process."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from jobs.targets.command import allowed_rules


@register()
def check_allowed_commands(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    try:
        allowed_rules()
    except ImproperlyConfigured as error:
        return [Error(str(error), hint="See jobs/targets/command.py for the setting's forms.", id="jobs.E001")]
    return []
