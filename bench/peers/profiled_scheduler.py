"""``run_scheduler`` with cProfile switched on (SIGUSR1) and off and saved (SIGUSR2), for the benchmark.

Runs in the project's venv: ``python bench/peers/profiled_scheduler.py STATS_FILE``.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    stats_file = sys.argv[1]
    profiler = cProfile.Profile()

    def start(signum: int, frame: Any) -> None:
        profiler.enable()

    def stop(signum: int, frame: Any) -> None:
        profiler.disable()
        profiler.dump_stats(stats_file)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobscheduler.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("run_scheduler", name="profiled")


if __name__ == "__main__":
    main()
