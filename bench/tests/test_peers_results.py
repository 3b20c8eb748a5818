"""Runs of the side-by-side benchmark merged into one report (pure logic)."""

from typing import Any

from peers_results import merge_results


def run(command: str, rows: list[tuple[str, str, float]], skipped: list[list[str]] | None = None) -> dict[str, Any]:
    workloads = list(dict.fromkeys(workload for _, workload, _ in rows))
    return {
        "rows": [{"system": system, "workload": workload, "lag_p99": lag} for system, workload, lag in rows],
        "skipped": skipped or [],
        "workloads": [{"label": label} for label in workloads],
        "systems": list(dict.fromkeys(system for system, _, _ in rows)),
        "limits": {},
        "duration": 60.0,
        "loads": [[0.1], [0.2]],
        "command": command,
        "profile": "",
    }


def test_a_rerun_of_our_rows_replaces_them_and_keeps_the_peers() -> None:
    full = run("bench/run", [("ours", "1k", 9.0), ("ours", "1k", 11.0), ("peer", "1k", 5.0), ("ours", "10k", 30.0)])
    rerun = run("bench/run --only 1k --systems ours", [("ours", "1k", 2.0), ("ours", "1k", 3.0)])
    merged = merge_results([full, rerun])
    by_pair = sorted((row["system"], row["workload"], row["lag_p99"]) for row in merged["rows"])
    assert by_pair == [("ours", "10k", 30.0), ("ours", "1k", 2.0), ("ours", "1k", 3.0), ("peer", "1k", 5.0)]
    assert merged["command"] == "bench/run then bench/run --only 1k --systems ours"


def test_a_row_a_stopped_run_skipped_is_shown_once_measured_later() -> None:
    stopped = run("bench/run", [("ours", "1k", 9.0)], skipped=[["ours", "100k", "stopped"]])
    later = run("bench/run --only 100k", [("ours", "100k", 300.0)])
    merged = merge_results([stopped, later])
    assert merged["skipped"] == []
    assert [row["workload"] for row in merged["rows"]] == ["1k", "100k"]
