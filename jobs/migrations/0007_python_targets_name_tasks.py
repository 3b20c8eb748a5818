"""Python targets name Django Tasks: ``{"function": name, "kwargs"}`` -> ``{"task": path, "kwargs"}``.

A name is read as the deprecated ``@task("name")`` registered it, else as a path, else
``app.name`` as ``app.tasks.name`` (jobs.targets.python.legacy_path). A name that resolves to no
Task is left as it was: such a job failed before and still fails, saying why. Going back leaves
targets as they are (the old registry cannot be rebuilt from paths).
"""

from typing import Any

from django.db import migrations


def name_tasks(apps: Any, schema_editor: Any) -> None:
    from jobs.targets.python import legacy_path

    Job = apps.get_model("jobs", "Job")
    for job in Job.objects.filter(target_type="python").iterator():
        target = job.target
        if not isinstance(target, dict) or "function" not in target or "task" in target:
            continue
        path = legacy_path(target["function"])
        if path is None:
            continue
        rewritten = {"task": path, **{key: value for key, value in target.items() if key != "function"}}
        job.target = rewritten
        job.save(update_fields=["target"])


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0006_job_previous_secret"),
    ]

    operations = [
        migrations.RunPython(name_tasks, migrations.RunPython.noop),
    ]
