"""Who may create which target: Django permissions, checked by the job services (API and admin alike).

- ``jobs.create_python_jobs``: a python target runs the project's code in a worker process;
- ``jobs.create_command_jobs``: a command target runs an allow-listed management command;
- ``jobs.create_celery_jobs``: a celery target sends any task, with any arguments, to the
  team's Celery workers;
- ``jobs.create_internal_webhooks``: a webhook to a destination only the operator's
  allow-list (``JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS``) makes reachable: a trusted host name,
  or a literal address that is not public.

Webhooks to public addresses need no permission: any user could send those requests from
anywhere. Superusers hold every permission; grant the others per user or group in the admin.
A named host that only resolves to an allow-listed network is judged at delivery, where the
job's owner must hold ``create_internal_webhooks`` too (jobs.targets.http).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured, PermissionDenied

from jobs.targets.http.addresses import allow_list, refusal
from jobs.targets.http.request import InvalidTarget, parse_url

CREATE_PYTHON = "jobs.create_python_jobs"
CREATE_COMMAND = "jobs.create_command_jobs"
CREATE_CELERY = "jobs.create_celery_jobs"
CREATE_INTERNAL_WEBHOOKS = "jobs.create_internal_webhooks"

# (codename, name): Job.Meta.permissions.
JOB_PERMISSIONS = (
    ("create_python_jobs", "Can create and change python jobs"),
    ("create_command_jobs", "Can create and change command jobs"),
    ("create_internal_webhooks", "Can create webhooks to allow-listed internal destinations"),
    ("create_celery_jobs", "Can create and change celery jobs"),
)

_FOR_TYPE = {"python": CREATE_PYTHON, "command": CREATE_COMMAND, "celery": CREATE_CELERY}


def reaches_internal(target: Any) -> bool:
    """Whether an http target's URL names a destination only the allow-list makes reachable."""
    if not isinstance(target, dict):
        return False
    try:
        destination = parse_url(target.get("url"))
        allow = allow_list()
    except (InvalidTarget, ImproperlyConfigured):
        return False  # refused by the target's own check, with a better message
    if destination.literal is not None:
        return refusal(destination.literal) is not None
    return allow.allows_name(destination.host)


def may_reach_internal(job: Any) -> bool:
    """Whether a job's webhooks may resolve into allow-listed networks: its owner holds
    ``create_internal_webhooks``. Cached on the job object (workers cache jobs)."""
    known = job.__dict__.get("_may_reach_internal")
    if known is None:
        known = job.__dict__["_may_reach_internal"] = bool(job.owner.has_perm(CREATE_INTERNAL_WEBHOOKS))
    return known


def target_refusal(user: Any, target_type: str, target: Any) -> str | None:
    """Why ``user`` may not give a job this target, or None."""
    needed = _FOR_TYPE.get(target_type)
    if needed is not None and not user.has_perm(needed):
        return f"You do not have permission to create {target_type} jobs ({needed})."
    if target_type == "http" and reaches_internal(target) and not user.has_perm(CREATE_INTERNAL_WEBHOOKS):
        return f"You do not have permission to create webhooks to internal destinations ({CREATE_INTERNAL_WEBHOOKS})."
    return None


def check_target(user: Any, target_type: str, target: Any) -> None:
    """Raise PermissionDenied unless ``user`` may give a job this target."""
    problem = target_refusal(user, target_type, target)
    if problem:
        raise PermissionDenied(problem)
