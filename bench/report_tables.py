"""bench/peers.py's report: the columns of each table, the best peer, ours against it in words."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

OURS = "ours (run_scheduler)"

# (key, heading, format, better): better is "low" or "high"; ratios compare ours with the best peer.
Column = tuple[str, str, str, str]

STEADY: list[Column] = [
    ("fires", "fires", ",.0f", "high"),
    ("expected", "expected", ",.0f", ""),
    ("misses", "misses", ",.0f", "low"),
    ("duplicates", "dup", ",.0f", "low"),
    ("rate", "fires/s", ",.0f", "high"),
    ("lag_p50", "lag p50 ms", ".1f", "low"),
    ("lag_p99", "lag p99 ms", ".1f", "low"),
    ("lag_max", "lag max ms", ".0f", "low"),
    ("drift_ms", "drift ms", "+.0f", ""),
    ("cpu_per_1k", "CPU-s / 1k fires", ".3f", "low"),
    ("redis_cpu_per_1k", "Redis CPU-s / 1k", ".3f", "low"),
    ("total_cpu_per_1k", "total CPU-s / 1k", ".3f", "low"),
    ("rss_mb", "RSS MB", ".0f", "low"),
]
BURST: list[Column] = [
    ("fires", "fired", ",.0f", "high"),
    ("expected", "due", ",.0f", ""),
    ("all_done_s", "all fired after s", ".2f", "low"),
    ("lag_p50", "lag p50 ms", ",.0f", "low"),
    ("lag_p99", "lag p99 ms", ",.0f", "low"),
    ("cpu_per_1k", "CPU-s / 1k fires", ".3f", "low"),
    ("redis_cpu_per_1k", "Redis CPU-s / 1k", ".3f", "low"),
    ("total_cpu_per_1k", "total CPU-s / 1k", ".3f", "low"),
    ("rss_mb", "RSS MB", ".0f", "low"),
    ("load_s", "load s", ".2f", "low"),
    ("late_start", "ready after the instant", "", ""),
]
MULTI: list[Column] = [
    ("fires", "fires", ",.0f", "high"),
    ("expected", "expected", ",.0f", ""),
    ("duplicates", "duplicates", ",.0f", "low"),
    ("misses", "misses", ",.0f", "low"),
    ("lag_p50", "lag p50 ms", ".1f", "low"),
    ("lag_p99", "lag p99 ms", ".1f", "low"),
    ("cpu_per_1k", "CPU-s / 1k fires (all)", ".3f", "low"),
]
FAILOVER: list[Column] = [
    ("silence_s", "longest silence after kill s", ".2f", "low"),
    ("resumed", "firing at the window's end", "", ""),
    ("lag_max_after_kill", "lag max after kill ms", ",.0f", "low"),
    ("misses", "misses", ",.0f", "low"),
    ("duplicates", "duplicates", ",.0f", "low"),
    ("fires", "fires", ",.0f", "high"),
    ("expected", "expected", ",.0f", ""),
]
EDIT: list[Column] = [
    ("edits", "edits", ".0f", ""),
    ("edit_failed", "API call failed", ".0f", "low"),
    ("edit_unseen", "never took effect", ".0f", "low"),
    ("edit_p50", "effect p50 ms", ",.0f", "low"),
    ("edit_p99", "effect p99 ms", ",.0f", "low"),
    ("edit_max", "effect max ms", ",.0f", "low"),
    ("lag_p99", "background lag p99 ms", ".1f", "low"),
]
IDLE: list[Column] = [
    ("load_s", "load s", ".2f", "low"),
    ("idle_cpu_pct", "scheduler CPU %", ".2f", "low"),
    ("idle_redis_cpu_pct", "Redis CPU %", ".2f", "low"),
    ("rss_mb", "RSS MB", ".0f", "low"),
]
SLACK = {
    "lag_p50": 1.0,
    "lag_p99": 1.0,
    "lag_max": 2.0,
    "edit_p50": 5.0,
    "edit_p99": 5.0,
    "edit_max": 5.0,
    "cpu_per_1k": 0.005,
    "redis_cpu_per_1k": 0.005,
    "total_cpu_per_1k": 0.005,
    "rss_mb": 5.0,
    "load_s": 0.05,
    "all_done_s": 0.05,
    "silence_s": 0.05,
    "idle_cpu_pct": 0.2,
    "idle_redis_cpu_pct": 0.2,
    "misses": 0.0,
    "duplicates": 0.0,
}
COLUMNS = {"steady": STEADY, "burst": BURST, "multi": MULTI, "failover": FAILOVER, "edit": EDIT, "idle": IDLE}
HEADLINE = {
    "steady": "lag_p99",
    "burst": "all_done_s",
    "multi": "lag_p99",
    "failover": "silence_s",
    "edit": "edit_p99",
    "idle": "idle_cpu_pct",
}


def fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if not spec:  # a flag
        return "yes" if value else "no"
    return format(value, spec)


def did_the_work(row: Any) -> bool:
    """Whether a row's figures describe a system doing the work asked of it.

    A system that fired a third of the occurrences has a fine lag for the few it fired; it is
    no yardstick. Only rows with at most 1% of their due times missed (and, for edits, every edit
    taking effect) can be the best peer or beat ours.
    """
    if row.error:
        return False
    values = row.values
    expected = values.get("expected")
    if measured(expected) and expected > 0 and not values.get("misses", math.inf) <= 0.01 * expected:
        return False
    return not (values.get("edits") and (values.get("edit_unseen") or values.get("edit_failed")))


def best_peer(rows: Sequence[Any], key: str, better: str) -> Any | None:
    peers = [row for row in rows if row.system != OURS and did_the_work(row) and measured(row.values.get(key))]
    if not peers or not better:
        return None
    pick: Callable[..., Any] = min if better == "low" else max
    return pick(peers, key=lambda row: row.values[key])


def measured(value: Any) -> bool:
    """Whether ``value`` is a figure (not missing, not NaN)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


# Figures in milliseconds near zero (or below: a fire a little early) make ratios meaningless:
# 0.2 ms against 0.1 ms is not "2x worse" in any sense a user cares about. Below this many ms,
# the difference is given instead.
ABSOLUTE_BELOW_MS = 1.0
IN_MS = {"lag_p50", "lag_p99", "lag_max", "edit_p50", "edit_p99", "edit_max", "lag_max_after_kill"}


def ratio(ours: float, best: float, better: str, key: str = "") -> str:
    """How many times better (or worse) ours is than the best peer, in words."""
    if not (measured(ours) and measured(best)):
        return "-"
    if abs(ours - best) <= SLACK.get(key, 0.0):
        return "same"
    if key in IN_MS and min(ours, best) < ABSOLUTE_BELOW_MS:
        difference = ours - best
        word = "worse" if (difference > 0) == (better == "low") else "better"
        return f"{abs(difference):,.1f} ms {word}"
    if better == "low":
        if ours <= 0:
            return "better (0)"
        if best <= 0:
            return f"worse ({ours:.3g} vs 0)"
        factor = best / ours
    else:
        if best <= 0:
            return "-"
        factor = ours / best
    if 0.95 <= factor <= 1.05:
        return "same"
    if factor >= 1:
        return f"{factor:.2g}x better" if factor < 100 else f"{factor:,.0f}x better"
    return f"{1 / factor:.2g}x worse" if factor > 0.01 else f"{1 / factor:,.0f}x worse"


def table(rows: Sequence[Any], columns: list[Column], headline: str) -> list[str]:
    heading = ["system", *[title for _, title, _, _ in columns], f"{headline_title(columns, headline)}: x best peer"]
    lines = ["| " + " | ".join(heading) + " |", "|" + "---|" * len(heading)]
    key_column = next(column for column in columns if column[0] == headline)
    best = best_peer(rows, headline, key_column[3])
    for row in rows:
        if row.error:
            lines.append(f"| {row.system} | failed: {row.error[:120]} |" + " |" * (len(heading) - 2))
            continue
        cells = [f"**{row.system}**" if row.system == OURS else row.system]
        cells += [fmt(row.values.get(key), spec) for key, _, spec, _ in columns]
        value = row.values.get(headline)
        if not did_the_work(row):
            cells.append("did not keep up")
        elif best is None or not measured(value):
            cells.append("-")
        elif row is best:
            cells.append("best peer")
        else:
            cells.append(vs_best(value, best.values[headline], key_column[3], headline))
        lines.append("| " + " | ".join(cells) + " |")
    ours = next((row for row in rows if row.system == OURS and not row.error), None)
    if ours is not None:
        cells = ["ours vs best peer"]
        for key, _, _, better in columns:
            peer = best_peer(rows, key, better)
            cells.append(ratio(ours.values.get(key, math.nan), peer.values[key], better, key) if peer else "-")
        cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def headline_title(columns: list[Column], headline: str) -> str:
    return next(title for key, title, _, _ in columns if key == headline)


def vs_best(value: float, best: float, better: str, key: str = "") -> str:
    if key in IN_MS and min(value, best) < ABSOLUTE_BELOW_MS:
        return "same" if abs(value - best) <= SLACK.get(key, 0.0) else f"{value - best:+,.1f} ms"
    if best == 0:
        return "same" if value == 0 else f"{value:.3g} vs 0"
    factor = value / best if better == "low" else best / value if value else math.inf
    return f"x {factor:.3g}"
