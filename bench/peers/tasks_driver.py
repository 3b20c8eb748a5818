"""Enqueue a no-op Django Task and read its results through the Tasks API alone, for bench/tasks.py.

    python -m peers.tasks_driver enqueue TASK COUNT OUT        # COUNT at once; prints the seconds taken
    python -m peers.tasks_driver steady TASK RATE SECONDS OUT  # RATE a second for SECONDS
    python -m peers.tasks_driver collect IDS OUT TIMEOUT       # wait until each has finished, read them
    python -m peers.tasks_driver migrate | reset               # django-tasks-db's table: create, empty

Runs with whichever Django project DJANGO_SETTINGS_MODULE names: ours (jobscheduler.settings,
TASKS on jobs.tasks_backend.RunQueueBackend) in the project's venv, or peers.tasks_settings
(django-tasks-db or django-tasks-rq) in bench/.venvs/django-tasks. So every backend is driven
by the same code: ``task.enqueue()``, and ``get_result()`` for the status and ``finished_at``
the backend recorded. An enqueue's moment is this process's clock just before ``enqueue()``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def setup() -> None:
    import django

    django.setup()


def load_task(path: str) -> Any:
    from django.utils.module_loading import import_string

    return import_string(path)


def enqueue(path: str, count: int, out: str) -> None:
    task = load_task(path)
    started = time.perf_counter()
    rows = []
    for index in range(count):
        moment = time.time()
        rows.append([task.enqueue(str(index)).id, moment])
    took = time.perf_counter() - started
    Path(out).write_text(json.dumps({"task": path, "enqueued": rows}))
    print(f"{took:.3f}")


def steady(path: str, rate: float, seconds: float, out: str) -> None:
    """Enqueue at ``rate`` a second, each on its own slot of an even grid (late ones go at once)."""
    task = load_task(path)
    count = int(rate * seconds)
    start = time.time() + 0.1
    rows = []
    for index in range(count):
        time.sleep(max(0.0, start + index / rate - time.time()))
        moment = time.time()
        rows.append([task.enqueue(str(index)).id, moment])
    Path(out).write_text(json.dumps({"task": path, "enqueued": rows}))
    print(f"{time.time() - start:.3f}")


def _epoch(moment: Any) -> float | None:
    return None if moment is None else float(moment.timestamp())


def collect(ids_file: str, out: str, timeout: float) -> None:
    """Wait (polling the last enqueued, then each one still open, every 0.1 s: a light load while
    workers drain) until every result is finished, then write each one's status and times."""
    from django_tasks import TaskResultStatus

    data = json.loads(Path(ids_file).read_text())
    backend = load_task(data["task"]).get_backend()
    enqueued = data["enqueued"]
    finished = {TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED}
    deadline = time.time() + timeout
    while enqueued and backend.get_result(enqueued[-1][0]).status not in finished and time.time() < deadline:
        time.sleep(0.1)
    rows: dict[str, dict[str, Any]] = {}
    while time.time() < deadline:
        for result_id, moment in enqueued:
            if result_id in rows:
                continue
            result = backend.get_result(result_id)
            if result.status in finished:
                rows[result_id] = {
                    "id": result_id,
                    "enqueued": moment,
                    "status": str(result.status),
                    "started": _epoch(result.started_at),
                    "finished": _epoch(result.finished_at),
                    "workers": list(result.worker_ids),
                }
        if len(rows) == len(enqueued):
            break
        time.sleep(0.1)
    Path(out).write_text(json.dumps({"results": list(rows.values()), "open": len(enqueued) - len(rows)}))


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def reset() -> None:
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.all().delete()


def main(argv: list[str]) -> None:
    setup()
    command, args = argv[0], argv[1:]
    if command == "enqueue":
        enqueue(args[0], int(args[1]), args[2])
    elif command == "steady":
        steady(args[0], float(args[1]), float(args[2]), args[3])
    elif command == "collect":
        collect(args[0], args[1], float(args[2]))
    elif command == "migrate":
        migrate()
    elif command == "reset":
        reset()
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
