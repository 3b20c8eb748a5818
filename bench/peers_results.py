"""What bench/peers.py keeps of a run (gzipped JSON of every row), and the report written from it.

Every run keeps what it measured, so that the report can be rewritten (a fix to the analysis or
the tables) without measuring again for an hour.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import cpu_model, redis_version
from peers.common import Workload
from peers_analysis import Row, combine


def saved_run(
    results: dict[tuple[str, str], list[Row]],
    skipped: dict[tuple[str, str], str],
    chosen: list[Workload],
    systems: list[Any],
    args: argparse.Namespace,
    started: float,
    load_before: tuple[float, float, float],
    profile: str = "",
) -> dict[str, Any]:
    return {
        "rows": [asdict(row) for rows in results.values() for row in rows],
        "skipped": [[system, label, reason] for (system, label), reason in skipped.items()],
        "workloads": [asdict(workload) for workload in chosen],
        "systems": [system.name for system in systems],
        "limits": {system.name: system.limits for system in systems},
        "quick": args.quick,
        "repeats": args.repeats or (1 if args.quick else 3),
        "duration": time.time() - started,
        "loads": [list(load_before), list(os.getloadavg())],
        "command": "bench/run"
        + "".join(f" {flag}" for flag in (args.quick and "--quick", args.only and f'--only "{args.only}"') if flag),
        "machine": machine(),
        "profile": profile,
    }


def save_results(path: Path, saved: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    with gzip.open(partial, "wt") as out:
        json.dump(saved, out, default=str)
    partial.replace(path)


def load_results(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt") as source:
        saved: dict[str, Any] = json.load(source)
    return saved


def merge_results(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Consecutive runs as one: their rows and skips, workloads in the order first met. A
    system's workload measured again in a later run (a rerun of our rows after a change)
    takes the later run's samples only."""
    merged = dict(runs[0])
    for run in runs[1:]:
        remeasured = {(row["system"], row["workload"]) for row in run["rows"]}
        kept = [row for row in merged["rows"] if (row["system"], row["workload"]) not in remeasured]
        merged["rows"] = kept + run["rows"]
        merged["skipped"] = merged["skipped"] + run["skipped"]
        known = {workload["label"] for workload in merged["workloads"]}
        merged["workloads"] = merged["workloads"] + [w for w in run["workloads"] if w["label"] not in known]
        merged["systems"] = merged["systems"] + [s for s in run["systems"] if s not in merged["systems"]]
        merged["limits"] = {**run["limits"], **merged["limits"]}
        merged["duration"] = merged["duration"] + run["duration"]
        merged["loads"] = [merged["loads"][0], run["loads"][1]]
        merged["command"] = f"{merged['command']} then {run['command']}"
        merged["profile"] = run["profile"] or merged["profile"]
    # A row measured in both (a run stopped during it): the later run's skip does not hide it.
    measured = {(row["system"], row["workload"]) for row in merged["rows"]}
    merged["skipped"] = [entry for entry in merged["skipped"] if (entry[0], entry[1]) not in measured]
    return merged


def write_saved_report(out: Path, saved: dict[str, Any]) -> None:
    from report import write_report

    results: dict[tuple[str, str], list[Row]] = {}
    for fields in saved["rows"]:
        row = Row(**fields)
        results.setdefault((row.system, row.workload), []).append(row)
    write_report(
        out,
        {key: combine(rows) for key, rows in results.items()},
        {(system, label): reason for system, label, reason in saved["skipped"]},
        [Workload(**fields) for fields in saved["workloads"]],
        saved["systems"],
        saved["limits"],
        quick=saved["quick"],
        repeats=saved["repeats"],
        duration=saved["duration"],
        loads=(tuple(saved["loads"][0]), tuple(saved["loads"][1])),
        command=saved["command"],
        machine=saved["machine"],
        profile=saved["profile"],
    )


def machine() -> dict[str, str]:
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    return {
        "cpu": f"{os.cpu_count()} cores, {cpu_model()}",
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis": redis_version(),
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
    }
