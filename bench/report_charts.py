"""bench/peers.py's report: the charts (lag distribution, fires per second), drawn with matplotlib."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from report_tables import OURS, measured


def charts(rows: dict[tuple[str, str], Any], workloads: Sequence[Any], systems: Sequence[str], img: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    made = []
    palette = plt.get_cmap("tab10")
    colour = {system: palette(index % 10) for index, system in enumerate(systems)}
    steady = [w for w in workloads if w.kind == "steady" and w.count in (1_000, 10_000)]
    if steady:
        columns = 2
        lines_of = math.ceil(len(steady) / columns)
        figure, axes = plt.subplots(lines_of, columns, figsize=(12, 4.2 * lines_of), squeeze=False)
        for axis, workload in zip(axes.flat, steady, strict=False):
            for system in systems:
                row = rows.get((system, workload.label))
                if row is None or row.error or not row.lags:
                    continue
                lags = [max(lag, 0.01) for lag in row.lags]
                share = [(index + 1) / len(lags) for index in range(len(lags))]
                axis.plot(lags, share, label=system, color=colour[system], linewidth=2.4 if system == OURS else 1.2)
            axis.set_xscale("log")
            axis.set_xlabel("lag, ms (log; 0.01 stands for 0 or less; ours has 1 ms steps)")
            axis.set_ylabel("share of fires with at most this lag")
            axis.set_title(workload.label)
            axis.grid(True, which="both", alpha=0.3)
        for axis in list(axes.flat)[len(steady) :]:
            axis.axis("off")
        legend: dict[str, Any] = {}
        for axis in axes.flat:
            for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
                legend.setdefault(label, handle)
        figure.legend(list(legend.values()), list(legend), loc="lower center", ncol=3, fontsize=9)
        figure.tight_layout(rect=(0, 0.07, 1, 1))
        figure.savefig(img / "benchmarks-lag.png", dpi=90)
        plt.close(figure)
        made.append("benchmarks-lag.png")
    sweep = [w for w in workloads if w.kind == "steady"]
    if sweep:
        figure, axis = plt.subplots(figsize=(9, 5.5))
        top = 0
        for system in systems:
            points: dict[int, float] = {}
            for (name, _), row in rows.items():
                if name != system or row.error or row.kind != "steady":
                    continue
                rate = row.values.get("rate", math.nan)
                if measured(rate):
                    points[row.count] = max(points.get(row.count, 0.0), rate)
            if points:
                counts = sorted(points)
                top = max(top, *counts)
                axis.plot(
                    counts,
                    [points[c] for c in counts],
                    marker="o",
                    label=system,
                    color=colour[system],
                    linewidth=2.4 if system == OURS else 1.2,
                )
        if top:
            axis.plot([1_000, top], [1_000, top], linestyle=":", color="grey", label="every fire on time")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("schedules firing every second")
        axis.set_ylabel("fires per second (on-grid fires in the window / window)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(img / "benchmarks-rate.png", dpi=90)
        plt.close(figure)
        made.append("benchmarks-rate.png")
    return made
