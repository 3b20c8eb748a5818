"""Data migrations, run on rows as an older version stored them."""

from __future__ import annotations

import importlib
from typing import Any

from django.apps import apps

from jobs.models import Job

name_tasks = importlib.import_module("jobs.migrations.0007_python_targets_name_tasks").name_tasks


def stored(user: Any, name: str, target: Any, target_type: str = "python") -> Job:
    """A job as the old code stored it (around the services: the old form no longer validates the same)."""
    return Job.objects.create(owner=user, name=name, target_type=target_type, target=target)


def test_legacy_python_targets_are_rewritten_to_name_tasks(user: Any) -> None:
    demo = stored(user, "demo", {"function": "demo.hello", "kwargs": {"name": "x"}})
    by_path = stored(user, "path", {"function": "demo.tasks.echo"})
    unknown = stored(user, "unknown", {"function": "gone.away", "kwargs": {}})
    new = stored(user, "new", {"task": "demo.tasks.hello"})
    command = stored(user, "command", {"command": "clearsessions"}, target_type="command")
    name_tasks(apps, None)
    for job in (demo, by_path, unknown, new, command):
        job.refresh_from_db()
    assert demo.target == {"task": "demo.tasks.hello", "kwargs": {"name": "x"}}
    assert by_path.target == {"task": "demo.tasks.echo"}
    assert unknown.target == {"function": "gone.away", "kwargs": {}}  # still failing, saying why
    assert new.target == {"task": "demo.tasks.hello"}
    assert command.target == {"command": "clearsessions"}
