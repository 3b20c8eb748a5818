"""The end-to-end report's side-by-side rows (pure logic: figures in, lines out)."""

from types import SimpleNamespace
from typing import Any

from e2e_report import bounds, peers_findings, side_by_side


def ours(name: str, rate: float, workers_cpu: float) -> Any:  # stands in for e2e_results.Result
    return SimpleNamespace(
        scenario=SimpleNamespace(name=name), rate=rate, rss_mb=120.0, cpu={"workers": workers_cpu}, collection_runs=9
    )


def peer(name: str, rate: float, **more: object) -> dict[str, object]:
    return {
        "name": name,
        "tasks": 4000,
        "done": 4000,
        "rate": rate,
        "start_to_first_s": 1.5,
        "rss_mb": 200.0,
        "cpu_cores": 1.0,
        "redis_cpu_cores": 0.1,
        "results_kept": None,
        "error": "",
        **more,
    }


def test_our_saturated_rows_come_first_then_every_peer_with_its_cost_per_task() -> None:
    results = [ours("python, 1200/s, 2 workers", 300.0, 1.5), ours("python, 200/s, 1 worker", 200.0, 0.5)]
    lines = side_by_side(results, [("python", 0.8, 90.0)], [peer("Celery", 500.0, results_kept=4000)], heavy=1200)
    assert [line.name for line in lines] == ["ours, python `demo.hello`, 2 workers", "Celery"]
    assert lines[0].start_s == 0.8
    assert lines[0].cpu_ms == 5.0
    assert lines[1].cpu_ms == 2.0
    assert lines[1].kept == "4,000"


def test_findings_quote_the_run_and_leave_out_a_failed_peer() -> None:
    results = [ours("python, 1200/s, 2 workers", 250.0, 1.0)]
    peers = [peer("Celery", 500.0), peer("RQ", 0.0, done=0, error="0 of 4000 tasks never ran")]
    text = "\n".join(peers_findings(side_by_side(results, [("python", 0.8, 90.0)], peers, heavy=1200)))
    assert "two of our workers record 250 python runs/s; Celery 500/s (2.0x ours)" in text
    assert "RQ" not in text
    assert "ours 0.80 s; the peers 1.50 to 1.50 s" in text


def measured(name: str, rate: float, cpu: dict[str, float], requests: int) -> Any:  # stands in for e2e_results.Result
    seconds = 10
    result = SimpleNamespace(scenario=SimpleNamespace(name=name), rate=rate, cpu=cpu, requests={"all": requests})
    result.per_run = lambda bucket: result.requests.get(bucket, 0) / (rate * seconds)
    return result


def test_bounds_derive_the_database_ceiling_from_its_cpu_per_run() -> None:
    one = measured("python, 1200/s, 1 worker", 500.0, {"SecantusDB": 0.8}, requests=2500)
    two = measured("python, 1200/s, 2 workers", 510.0, {"SecantusDB": 0.85}, requests=2600)
    webhook = measured("webhook, 1200/s, 1 worker", 300.0, {"workers": 0.4}, requests=1500)
    text = "\n".join(bounds(one, two, webhook, heavy=1200))
    assert "SecantusDB spends 1.60 ms of CPU per run recorded (0.80 of a core at 500 runs/s)" in text
    assert "at most about 625 runs/s" in text
    assert "(510 runs/s with two)" in text
    assert "a request carries 2.0 runs on average (0.50 per run" in text
    assert "16 slots record 300 runs/s with its CPU at 0.40 of a core" in text


def test_bounds_say_nothing_without_a_measured_python_row() -> None:
    assert bounds(None, None, None, heavy=1200) == []
