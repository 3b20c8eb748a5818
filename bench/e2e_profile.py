"""The end-to-end benchmark's py-spy runs and summaries: where a worker's slot threads and SecantusDB spend time."""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path


def start_profilers(
    worker_pid: int, secantus_pid: int, workdir: Path, seconds: int
) -> list[tuple[str, subprocess.Popen[bytes], Path]]:
    """py-spy on the worker (every thread, waiting included) and on SecantusDB (CPU only)."""
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    targets = [("worker", worker_pid, ["--idle", "--threads"]), ("SecantusDB", secantus_pid, ["--threads"])]
    profilers = []
    for name, pid, extra in targets:
        path = workdir / f"profile-{name}.txt"
        command = [py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200"]
        command += ["--format", "raw", "--output", str(path), "--nonblocking", *extra]
        profilers.append((name, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), path))
    return profilers


# Where a slot thread of the worker spends its time, by the first of these frames on its stack.
WORKER_STEPS = [
    ("Recorder.finish (workers/recorder.py", "wait for the batch that records the run (MongoDB)"),
    ("run_begin (jobs/run_records.py", "read a taken-over or manual run's record (MongoDB)"),
    ("Worker.job (workers/worker.py", "look up the job (MongoDB, cached until it changes)"),
    ("Worker.schedule_policy (workers/worker.py", "look up the overlap policy (MongoDB, cached until it changes)"),
    ("overlap_enter (jobs/runqueue.py", "overlap bookkeeping (Redis)"),
    ("overlap_leave (jobs/runqueue.py", "overlap bookkeeping (Redis)"),
    ("deliver (jobs/targets/http/transport.py", "the webhook itself (HTTP to the receiver)"),
    ("_in_child (workers/children.py", "the python task (in the run process)"),
    ("ack (jobs/runqueue.py", "acknowledge the entry (Redis)"),
    ("Queue.get (queue.py", "idle: waiting for work"),
]


def read_stacks(process: subprocess.Popen[bytes], path: Path) -> list[tuple[list[str], int]] | str:
    """The stacks py-spy recorded (``--format raw``) and their sample counts, or why there are none."""
    _, errors = process.communicate(timeout=60)
    if process.returncode != 0 or not path.exists():
        return f"py-spy failed: {errors.decode(errors='replace').strip()[-300:]}"
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def summarize_profile(name: str, process: subprocess.Popen[bytes], path: Path) -> list[str]:
    stacks = read_stacks(process, path)
    if isinstance(stacks, str):
        return [f"{name}: {stacks}"]
    return summarize_worker(stacks) if name == "worker" else summarize_cpu(name, stacks)


def cpu_by_step(stacks: list[tuple[list[str], int]], steps: list[tuple[str, str]]) -> list[tuple[str, float]]:
    """Shares of CPU samples (every thread) by step: the first of ``steps`` whose marker is in a
    frame of the stack, else "other"; largest first."""
    shares: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        shares[next((label for marker, label in steps if any(marker in f for f in frames)), "other")] += count
    total = sum(shares.values()) or 1
    return [(label, count / total) for label, count in shares.most_common()]


def summarize_worker(stacks: list[tuple[list[str], int]]) -> list[str]:
    """Shares of the slot threads' wall time by step, and how much of each is spent in pymongo."""
    steps: collections.Counter[str] = collections.Counter()
    in_pymongo: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, count in stacks:
        if "): slot-" not in frames[0]:  # "thread (1234): slot-0": py-spy --threads names the thread first
            continue
        total += count
        step = next((label for marker, label in WORKER_STEPS if any(marker in f for f in frames)), "other")
        steps[step] += count
        if any("pymongo/" in frame for frame in frames):
            in_pymongo[step] += count
    if not total:
        return ["worker profile: no samples of the slot threads"]
    idle = steps.pop("idle: waiting for work", 0)
    busy = total - idle
    lines = [f"worker slot threads: {total} samples of wall time (waiting included), {100 * idle / total:.0f}% idle;"]
    lines.append("busy time by step (share inside pymongo, i.e. a MongoDB round trip):")
    for step, count in steps.most_common():
        mongo = f" ({100 * in_pymongo[step] / count:.0f}% in pymongo)" if in_pymongo[step] else ""
        lines.append(f"  {100 * count / max(busy, 1):5.1f}%  {step}{mongo}")
    return lines


def summarize_cpu(name: str, stacks: list[tuple[list[str], int]]) -> list[str]:
    """CPU by the command being served (SecantusDB's handlers), then the functions with most self time."""
    commands: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = sum(count for _, count in stacks)
    for frames, count in stacks:
        own[_short(frames[-1])] += count
        handler = "other"
        for index, frame in enumerate(frames[:-1]):
            if frame.startswith("dispatch (secantus/commands.py"):
                handler = frames[index + 1].split(" (", 1)[0]
                break
            if frame.startswith("read_message (secantus/wire.py"):
                handler = "reading requests off the socket"
                break
        commands[handler] += count
    lines = [f"{name}: {total} CPU samples; by command handler:"]
    lines += [f"  {100 * count / max(total, 1):5.1f}%  {handler}" for handler, count in commands.most_common(6)]
    lines.append("functions with the most self time:")
    lines += [f"  {100 * count / max(total, 1):5.1f}%  {frame}" for frame, count in own.most_common(8)]
    return lines


def _short(frame: str) -> str:
    return frame if len(frame) < 110 else frame[:107] + "..."
