"""Record a fire inside a scheduler's process: one line per fire, appended to a file per process.

A plain os.write to an O_APPEND file costs a few microseconds and survives SIGKILL (the line is in
the kernel once the call returns), so the measure adds almost nothing to the scheduler measured.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_fd: int | None = None
_pid = 0


def record(key: str) -> None:
    """Note that the occurrence of ``key`` was handed off now (wall clock, microseconds)."""
    global _fd, _pid
    if _fd is None or _pid != os.getpid():  # reopen after a fork
        _pid = os.getpid()
        directory = os.environ["BENCH_FIRES"]
        _fd = os.open(f"{directory}/fires-{_pid}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_fd, b"%d %s\n" % (time.time_ns() // 1000, key.encode()))


def fire(key: str) -> None:
    """A job function that records its own call (for schedulers that call the job in-thread)."""
    record(key)


def noop(*args: object, **kwargs: object) -> None:
    """A job function for schedulers that only enqueue: no worker runs it here."""


def read(directory: Path) -> list[tuple[float, str, int]]:
    """(fire ms, key, pid) of every fire recorded under ``directory``."""
    fires = []
    for path in directory.glob("fires-*.log"):
        pid = int(path.stem.split("-")[1])
        for line in path.read_bytes().splitlines():
            micros, _, key = line.partition(b" ")
            if key:
                fires.append((int(micros) / 1000, key.decode(), pid))
    return fires
