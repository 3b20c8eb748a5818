"""Django for the peers that need it: settings from django_settings, a migrated SQLite copied per run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from peers.common import RunSpec

TEMPLATE_NAME = "template.sqlite3"


def setup(spec: RunSpec) -> None:
    os.environ["BENCH_SQLITE"] = spec.sqlite
    os.environ["BENCH_REDIS_URL"] = spec.redis_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "peers.django_settings"
    import django

    django.setup()


def copy_migrated_db(python: str, workroot: Path, target: str) -> None:
    """Migrate once per harness run, then copy: each run starts from an empty, migrated database."""
    template = workroot / TEMPLATE_NAME
    if not template.exists():
        bench = Path(__file__).resolve().parents[1]
        env = {
            **os.environ,
            "BENCH_SQLITE": str(template),
            "DJANGO_SETTINGS_MODULE": "peers.django_settings",
            "PYTHONPATH": str(bench),
        }
        subprocess.run(
            [python, "-m", "django", "migrate", "--verbosity", "0"], cwd=bench, env=env, check=True, timeout=300
        )
    shutil.copyfile(template, target)
