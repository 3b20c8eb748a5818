"""The execution peers beside bench/e2e.py: build their venv, run peers.executors in it, draw the chart.

The peers (Celery, RQ, django-q2, matplotlib) live in bench/.venv-peers, never in the project's
venv; bench/run builds it (``--venvs-only``) and this module only calls that when the venv is
missing or older than bench/requirements-peers.txt, as bench/run itself would decide.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from e2e_report import Line

BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".venv-peers"
PYTHON = VENV / "bin" / "python"


def ensure_venv(venv: Path = VENV, requirements: Path = BENCH / "requirements-peers.txt") -> None:
    """Build ``venv`` from ``requirements`` (with every other benchmark venv) unless it is up to date."""
    built = venv / ".requirements"  # bench/run's record of what the venv was built from
    python = venv / "bin" / "python"
    if python.exists() and built.exists() and built.read_bytes() == requirements.read_bytes():
        return
    print(f"building {venv.relative_to(BENCH.parent)}: bench/run --venvs-only ...", flush=True)
    subprocess.run([str(BENCH / "run"), "--venvs-only"], check=True)


def run_peers(tasks: int, workdir: Path) -> list[dict[str, Any]]:
    """peers.executors' outcomes, one dict per peer (see its Outcome)."""
    out = workdir / "peers.json"
    command = [str(PYTHON), "-m", "peers.executors", "--tasks", str(tasks), "--workdir", str(workdir / "peers")]
    subprocess.run([*command, "--out", str(out)], cwd=BENCH, check=True)
    outcomes: list[dict[str, Any]] = json.loads(out.read_text())
    return outcomes


def draw_chart(lines: Sequence[Line], path: Path) -> None:
    """A PNG of each line's rate, drawn by peers.exec_chart with the peers' matplotlib."""
    bars = [{"name": line.name.replace("`", ""), "rate": line.rate, "ours": line.ours} for line in lines]
    title = f"Runs (ours) and no-op tasks (peers) done per second, {os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as data:
        json.dump({"title": title, "bars": bars}, data)
        data.flush()
        subprocess.run([str(PYTHON), "-m", "peers.exec_chart", data.name, str(path)], cwd=BENCH, check=True)
