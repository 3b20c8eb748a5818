"""Prometheus metrics of the scheduling engine (served at /metrics and by run_scheduler)."""

from prometheus_client import Counter, Histogram

FIRES = Counter("jobscheduler_fires_total", "Occurrences dispatched to workers.", ["trigger"])
LAG = Histogram(
    "jobscheduler_dispatch_lag_seconds",
    "Dispatch time minus nominal time.",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
)
SCHEDULED_FIRES = FIRES.labels(trigger="schedule")  # looked up once: counted on every wake
MISSED = Counter("jobscheduler_missed_total", "Occurrences recorded as missed by the misfire policy.")
WORK_RESOLVED = Counter("jobscheduler_work_resolved_total", "Schedules resolved in Python (cron times, misfires).")
QUARANTINED = Counter(
    "jobscheduler_schedules_quarantined_total",
    "Schedules paused because the scheduler could not compute them (their pause_reason says why).",
)
RECONCILE_REPAIRS = Counter("jobscheduler_reconcile_repairs_total", "Mirror entries added, updated or removed.")


def observe_lags(lags_ms: list[int]) -> None:
    for lag in lags_ms:
        LAG.observe(lag / 1000)
