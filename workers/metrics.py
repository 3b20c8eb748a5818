"""Prometheus metrics of the workers (served at /metrics and by run_worker --metrics-port)."""

from prometheus_client import Counter, Gauge, Histogram

RUNS = Counter(
    "jobscheduler_runs_total", "Run attempts finished by workers, by status and trigger.", ["status", "trigger"]
)
RUN_DURATION = Histogram(
    "jobscheduler_run_duration_seconds",
    "How long a run attempt took to execute, by target type.",
    ["target_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
RETRIES = Counter("jobscheduler_retries_scheduled_total", "Retries scheduled after a failed or timed-out attempt.")
TAKEOVERS = Counter("jobscheduler_takeovers_total", "Runs taken over from a worker lost mid-run.")
IN_FLIGHT = Gauge("jobscheduler_runs_in_flight", "Runs this process is executing now.")
