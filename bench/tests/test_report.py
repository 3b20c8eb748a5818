"""The side-by-side report's comparisons (pure logic: no servers, no peers)."""

from types import SimpleNamespace

from report_tables import OURS, STEADY, best_peer, did_the_work, ratio, table


def row(system: str, **values: float) -> SimpleNamespace:
    return SimpleNamespace(system=system, error="", values=values)


def test_a_peer_that_missed_most_occurrences_is_no_yardstick() -> None:
    barely = row("barely", expected=20_000, fires=33, misses=19_967, lag_p99=0.2)
    steady = row("steady", expected=20_000, fires=20_000, misses=0, lag_p99=12.0)
    assert not did_the_work(barely)
    assert did_the_work(steady)
    assert best_peer([row(OURS, expected=20_000, misses=0, lag_p99=9.0), barely, steady], "lag_p99", "low") is steady


def test_one_percent_of_misses_is_still_keeping_up_and_errors_never_are() -> None:
    assert did_the_work(row("a", expected=1_000, misses=10))
    assert not did_the_work(row("b", expected=1_000, misses=11))
    failed = row("c", expected=1_000, misses=0)
    failed.error = "crashed"
    assert not did_the_work(failed)


def test_an_edit_that_never_took_effect_disqualifies() -> None:
    assert not did_the_work(row("a", expected=1_000, misses=0, edits=20, edit_unseen=1, edit_failed=0))
    assert did_the_work(row("b", expected=1_000, misses=0, edits=20, edit_unseen=0, edit_failed=0))


def test_lags_near_zero_compare_as_a_difference_not_a_ratio() -> None:
    assert ratio(5.0, 0.3, "low", "lag_p99") == "4.7 ms worse"
    assert ratio(0.2, 3.0, "low", "lag_p99") == "2.8 ms better"
    assert ratio(5.0, -1.0, "low", "lag_p50") == "6.0 ms worse"
    assert ratio(0.5, 0.1, "low", "lag_p99") == "same"  # inside the 1 ms slack
    assert ratio(40.0, 10.0, "low", "lag_p99") == "4x worse"
    assert ratio(10.0, 40.0, "low", "lag_p99") == "4x better"
    assert ratio(2_000.0, 1_000.0, "high", "rate") == "2x better"


def test_the_table_marks_who_did_not_keep_up_and_compares_with_who_did() -> None:
    rows = [
        row(OURS, fires=20_000, expected=20_000, misses=0, lag_p99=30.0),
        row("barely", fires=33, expected=20_000, misses=19_967, lag_p99=0.1),
        row("steady", fires=20_000, expected=20_000, misses=0, lag_p99=15.0),
    ]
    lines = table(rows, STEADY, "lag_p99")
    by_system = {line.split(" | ")[0].strip("| *"): line for line in lines[2:]}
    assert by_system["barely"].endswith("did not keep up |")
    assert by_system["steady"].endswith("best peer |")
    assert by_system[OURS].endswith("x 2 |")
    assert "2x worse" in by_system["ours vs best peer"]
