"""Prometheus metrics of the scheduling engine (served at /metrics and by run_scheduler)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

FIRES = Counter("jobscheduler_fires_total", "Occurrences dispatched to workers.", ["trigger"])
SCHEDULED_FIRES = FIRES.labels(trigger="schedule")  # looked up once: counted on every wake
MISSED = Counter("jobscheduler_missed_total", "Occurrences recorded as missed by the misfire policy.")
WORK_RESOLVED = Counter("jobscheduler_work_resolved_total", "Schedules resolved in Python (cron times, misfires).")
QUARANTINED = Counter(
    "jobscheduler_schedules_quarantined_total",
    "Schedules paused because the scheduler could not compute them (their pause_reason says why).",
)
RECONCILE_REPAIRS = Counter("jobscheduler_reconcile_repairs_total", "Mirror entries added, updated or removed.")

LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)


class LagHistogram(Collector):
    """``jobscheduler_dispatch_lag_seconds``: dispatch time minus nominal time, a histogram.

    Counted here rather than with prometheus_client's Histogram, whose ``observe`` takes a
    lock and walks the buckets for each value: a scheduler counts a lag for every fire, up to
    tens of thousands a second, and at a thousand a second that was a tenth of its CPU. Only
    the dispatch loop counts (one thread); a scrape reads the counts as they are.
    """

    def __init__(self) -> None:
        self._bounds_ms = [bound * 1000 for bound in LAG_BUCKETS]
        self._counts = [0] * (len(LAG_BUCKETS) + 1)  # the last: above every bound
        self._sum_ms = 0

    def observe_ms(self, lags_ms: list[int]) -> None:
        counts, bounds = self._counts, self._bounds_ms
        for lag in lags_ms:
            counts[bisect_left(bounds, lag)] += 1
        self._sum_ms += sum(lags_ms)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative, buckets = 0, []
        for bound, count in zip((*(str(bound) for bound in LAG_BUCKETS), "+Inf"), self._counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        family = HistogramMetricFamily(
            "jobscheduler_dispatch_lag_seconds", "Dispatch time minus nominal time.", unit=""
        )
        family.add_metric([], buckets, self._sum_ms / 1000)
        yield family


LAG = LagHistogram()
REGISTRY.register(LAG)


def observe_lags(lags_ms: list[int]) -> None:
    LAG.observe_ms(lags_ms)
