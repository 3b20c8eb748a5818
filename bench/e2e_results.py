"""What an end-to-end scenario is and what its window measured: runs/s, lags, duplicates (bench/e2e.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine import percentile


@dataclass
class Scenario:
    name: str
    target: str  # "http" (webhook to the receiver) or "python" (demo.hello)
    schedules: int  # each fires every second: the offered load in runs/s
    workers: int = 1
    concurrency: int = 16  # run_worker's default
    old_runs: int = 0  # finished runs already in the collection (a service that has been running)
    profile: bool = False


@dataclass
class Result:
    scenario: Scenario
    seconds: int
    succeeded: int  # finished (succeeded) inside the window
    failed: int  # any other finished status, whole run
    due: int  # occurrences nominally in the window
    done_of_due: int  # of those, recorded succeeded by the end
    lag_p50: float
    lag_p99: float
    recorded_p50: float
    recorded_p99: float
    duplicates: int  # deliveries the receiver saw twice (or runs recorded twice)
    unverified: int  # deliveries the receiver refused
    cpu: dict[str, float]  # role -> CPU seconds per wall second over the window
    collection_runs: int  # documents in the runs collection at the end
    profile: list[str] = field(default_factory=list)
    rss_mb: float = 0.0  # the workers' resident memory at the end of the window, run processes included
    requests: dict[str, int] = field(default_factory=dict)  # SecantusDB's requests in the window, by bucket

    @property
    def rate(self) -> float:
        return self.succeeded / self.seconds

    def per_run(self, bucket: str) -> float:
        """SecantusDB requests of ``bucket`` in the window per run recorded in it."""
        return self.requests.get(bucket, 0) / max(self.succeeded, 1)

    @property
    def saturated(self) -> bool:
        return self.done_of_due < 0.98 * self.due


@dataclass(frozen=True)
class RunRow:
    fire_key: str
    status: str
    nominal_ms: int | None
    started_ms: int | None
    finished_ms: int | None


def epoch_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def result_of(
    scenario: Scenario,
    runs: list[RunRow],
    received: list[dict[str, Any]],
    window_start: int,
    window_end: int,
    cpu: dict[str, float],
    profile: list[str],
) -> Result:
    """The figures of a scenario's window from its recorded runs and what the receiver logged."""
    start_ms, end_ms = window_start * 1000, window_end * 1000
    succeeded = [run for run in runs if run.status == "succeeded"]
    in_window = [run for run in succeeded if run.finished_ms is not None and start_ms <= run.finished_ms < end_ms]
    due = [run for run in succeeded if run.nominal_ms is not None and start_ms <= run.nominal_ms < end_ms]
    recorded = [run.finished_ms - run.nominal_ms for run in due if run.finished_ms and run.nominal_ms]
    if scenario.target == "http":
        nominal_of = {run.fire_key: run.nominal_ms for run in due if run.nominal_ms}
        lags = [
            line["received_ms"] - nominal_of[line["webhook_id"]]
            for line in received
            if line["webhook_id"] in nominal_of
        ]
        ids = [line["webhook_id"] for line in received if line["verified"]]
        duplicates = len(ids) - len(set(ids))
        unverified = sum(1 for line in received if not line["verified"])
    else:
        lags = [run.started_ms - run.nominal_ms for run in due if run.started_ms and run.nominal_ms]
        duplicates = unverified = 0
    keys = [run.fire_key for run in runs]
    duplicates += len(keys) - len(set(keys))
    expected = scenario.schedules * (window_end - window_start)
    return Result(
        scenario=scenario,
        seconds=window_end - window_start,
        succeeded=len(in_window),
        failed=sum(1 for run in runs if run.status not in ("succeeded", "pending", "running")),
        due=expected,
        done_of_due=len(due),
        lag_p50=percentile(lags, 0.5),
        lag_p99=percentile(lags, 0.99),
        recorded_p50=percentile(recorded, 0.5),
        recorded_p99=percentile(recorded, 0.99),
        duplicates=duplicates,
        unverified=unverified,
        cpu=cpu,
        collection_runs=0,
        profile=profile,
    )
