"""What one row of bench/peers.py measured: every fire matched to its schedule's ideal grid, the figures."""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from peers.common import Workload


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return math.nan
    return values[min(len(values) - 1, int(fraction * len(values)))]


@dataclass
class Row:
    system: str
    workload: str
    kind: str
    count: int
    values: dict[str, float] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)  # a sample, for the charts
    error: str = ""


def analyse(system: str, workload: Workload, raw: dict[str, Any]) -> Row:
    """Match every fire to its schedule's ideal grid and compute the row's figures."""
    row = Row(system, workload.label, workload.kind, workload.count)
    if "error" in raw:
        row.error = raw["error"]
        return row
    interval = raw["interval_ms"]
    anchors: dict[str, int] = raw["anchors"]
    window_start, window_end = raw["window"]
    early = 2  # ms: clock rounding; a fire earlier than its time counts for the previous one
    matched: dict[tuple[str, int], float] = {}
    duplicates = 0
    by_nominal: list[tuple[float, float]] = []
    for fired, key, nominal in raw["fires"]:
        if key.startswith("e"):  # the edit workload's own schedules
            continue
        # Peers' keys are the plan's; ours are schedule ids whose entries carry their nominal time.
        anchor = anchors.get(key, nominal % interval if nominal is not None else None)
        if anchor is None:
            continue
        if nominal is not None:
            # Ours names the occurrence (fire key): count it where it belongs, however late,
            # so a late fire is a late fire, not a duplicate of the next one and a miss.
            step = round((nominal - anchor) / interval)
        else:
            step = math.floor((fired + early - anchor) / interval)
        grid = anchor + step * interval
        if not window_start <= grid < window_end:
            continue
        if (key, step) in matched:
            duplicates += 1
            continue
        matched[(key, step)] = fired
        by_nominal.append((grid, fired - grid))
    values: dict[str, float] = {"load_s": raw.get("load_s") or math.nan, "rss_mb": raw.get("rss_mb", math.nan)}
    if workload.kind == "idle":
        values["idle_cpu_pct"] = 100 * raw["idle_cpu_s"] / raw["idle_seconds"]
        values["idle_redis_cpu_pct"] = 100 * raw["idle_redis_cpu_s"] / raw["idle_seconds"]
        row.values = values
        return row
    expected = 0
    for anchor in anchors.values():
        before_end = math.ceil((window_end - anchor) / interval)
        expected += max(0, before_end - max(0, math.ceil((window_start - anchor) / interval)))
    if not anchors:  # ours: one grid point per schedule and interval in the window
        expected = workload.count * max(1, (window_end - window_start) // interval)
    lags = sorted(lag for _, lag in by_nominal)
    fires = len(matched)
    values.update(
        fires=fires,
        expected=expected,
        misses=max(0, expected - fires),
        duplicates=duplicates,
        lag_p50=percentile(lags, 0.5),
        lag_p99=percentile(lags, 0.99),
        lag_max=lags[-1] if lags else math.nan,
    )
    if workload.kind == "burst":
        values["all_done_s"] = (max(matched.values()) - window_start) / 1000 if matched else math.nan
        values["late_start"] = float(bool(raw.get("late_start")))
    else:
        values["rate"] = fires / ((window_end - window_start) / 1000)
        by_nominal.sort()
        quarter = max(1, len(by_nominal) // 4)
        if len(by_nominal) >= 4:
            values["drift_ms"] = statistics.median(lag for _, lag in by_nominal[-quarter:]) - statistics.median(
                lag for _, lag in by_nominal[:quarter]
            )
    if raw.get("cpu_s") is not None:
        cpu_from, cpu_to = raw["cpu_window"]
        in_cpu_window = sum(1 for fired, _, _ in raw["fires"] if cpu_from <= fired <= cpu_to)
        values["cpu_per_1k"] = raw["cpu_s"] / max(in_cpu_window, 1) * 1000
        values["redis_cpu_per_1k"] = raw["redis_cpu_s"] / max(in_cpu_window, 1) * 1000
        redis_part = 0.0 if math.isnan(values["redis_cpu_per_1k"]) else values["redis_cpu_per_1k"]
        values["total_cpu_per_1k"] = values["cpu_per_1k"] + redis_part
    if workload.kind == "failover":
        kill = raw["kill_ms"]
        after = sorted(fired for fired, _, _ in raw["fires"] if kill <= fired <= window_end)
        moments = [kill, *after, window_end]  # the time to the window's end counts as a silence too
        values["silence_s"] = max(b - a for a, b in itertools.pairwise(moments)) / 1000
        values["resumed"] = float(bool(after) and window_end - after[-1] < 1000)
        late = [lag for grid, lag in by_nominal if grid >= kill]
        values["lag_max_after_kill"] = max(late) if late else math.nan
    if workload.kind == "edit":
        firsts: dict[str, float] = {}
        for fired, key, _ in raw["fires"]:
            if key.startswith("e"):
                firsts[key] = min(firsts.get(key, math.inf), fired)
        effects = []
        unseen = failed = 0
        for key, _, first_ms, succeeded in raw.get("edits", []):
            failed += not succeeded
            if key in firsts:
                effects.append(firsts[key] - first_ms)
            else:
                unseen += 1
        effects.sort()
        values.update(
            edits=len(raw.get("edits", [])),
            edit_unseen=unseen,
            edit_failed=failed,
            edit_p50=percentile(effects, 0.5),
            edit_p99=percentile(effects, 0.99),
            edit_max=effects[-1] if effects else math.nan,
        )
    row.values = values
    row.lags = [round(lag, 2) for lag in lags[:: max(1, len(lags) // 5000)]]
    return row


def combine(rows: list[Row]) -> Row:
    """Median of the repeats of one (system, workload)."""
    if len(rows) == 1:
        return rows[0]
    good = [row for row in rows if not row.error] or rows
    first = good[0]
    merged = Row(first.system, first.workload, first.kind, first.count, error=first.error if not rows else "")
    keys = {key for row in good for key in row.values}
    for key in keys:
        numbers = [row.values[key] for row in good if key in row.values and not math.isnan(row.values[key])]
        merged.values[key] = statistics.median(numbers) if numbers else math.nan
    merged.lags = sorted(lag for row in good for lag in row.lags)
    merged.values["repeats"] = len(good)
    return merged


def kept_up(row: Row) -> bool:
    values = row.values
    return (
        not row.error
        and values.get("expected", 0) > 0
        and values.get("misses", math.inf) <= 0.01 * values["expected"]
        and values.get("lag_p99", math.inf) < 500
    )


def summary(row: Row) -> str:
    if row.error:
        return f"ERROR {row.error}"
    v = row.values
    parts = []
    for key in (
        "fires",
        "expected",
        "misses",
        "duplicates",
        "rate",
        "lag_p50",
        "lag_p99",
        "lag_max",
        "all_done_s",
        "cpu_per_1k",
        "rss_mb",
        "load_s",
        "silence_s",
        "edit_p50",
        "edit_p99",
        "idle_cpu_pct",
    ):
        if key in v and not (isinstance(v[key], float) and math.isnan(v[key])):
            parts.append(f"{key}={v[key]:.4g}")
    return " ".join(parts)
