"""The end-to-end report's chart: runs (ours) or tasks (peers) completed per second, one bar per system.

    python -m peers.exec_chart BARS.json OUT.png

Run by bench/e2e.py in the peers' venv (matplotlib is a benchmark-only dependency). BARS.json holds
``{"title": ..., "bars": [{"name": ..., "rate": ..., "ours": true|false}, ...]}``, bars top to bottom.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def draw(bars: list[dict[str, Any]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    palette = plt.get_cmap("tab10")
    figure, axis = plt.subplots(figsize=(9, 0.5 * len(bars) + 1.6))
    positions = list(range(len(bars)))[::-1]
    rates = [bar["rate"] for bar in bars]
    axis.barh(positions, rates, color=[palette(0) if bar["ours"] else palette(7) for bar in bars])
    axis.set_yticks(positions, [bar["name"] for bar in bars], fontsize=8)
    for position, rate in zip(positions, rates, strict=True):
        axis.text(rate, position, f" {rate:.0f}", va="center", fontsize=8)
    axis.set_xlim(0, max(rates, default=1) * 1.15)
    axis.set_xlabel("completed per second (ours: runs recorded in MongoDB; peers: no-op tasks done)")
    axis.set_title(title, fontsize=10)
    axis.grid(True, axis="x", alpha=0.3)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    plt.close(figure)


if __name__ == "__main__":
    data = json.loads(Path(sys.argv[1]).read_text())
    draw(data["bars"], Path(sys.argv[2]), data["title"])
