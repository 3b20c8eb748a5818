"""The execution peers' arithmetic (pure logic: no servers, no workers, no clocks)."""

import pytest
from peers.executors import Outcome, Sample, steady_span, summarize, value_at


def test_the_steady_span_leaves_out_the_first_and_last_tenth_of_completions() -> None:
    times = [float(t) for t in range(101)]  # one completion a second, 0 .. 100
    start, end, completions = steady_span(times)
    assert (start, end, completions) == (10.0, 90.0, 80)
    assert steady_span([3.0]) == (0.0, 0.0, 0)


def test_a_slow_start_does_not_lower_the_rate() -> None:
    warm_up = [0.0, 5.0]  # the second pool process took 5 s to take its first task
    steady = [5.0 + i / 100 for i in range(1, 199)]  # then 100 a second
    start, end, completions = steady_span(warm_up + steady)
    assert completions / (end - start) == pytest.approx(100.0)


def test_counters_are_read_between_samples_linearly_and_clamped_outside() -> None:
    samples = [Sample(10.0, 1.0, 0.0, 50.0), Sample(12.0, 3.0, 0.5, 60.0)]
    assert value_at(samples, 11.0, "cpu") == pytest.approx(2.0)
    assert value_at(samples, 9.0, "cpu") == 1.0
    assert value_at(samples, 20.0, "redis_cpu") == 0.5
    assert value_at([], 1.0, "cpu") == 0.0


def test_an_outcome_counts_duplicates_and_takes_cpu_over_the_steady_span() -> None:
    times = [100.0 + i / 10 for i in range(101)]  # 10 tasks a second from 100 s to 110 s
    names = [str(i) for i in range(100)] + ["7"]  # task 7 ran twice
    samples = [Sample(100.0, 0.0, 0.0, 80.0), Sample(110.0, 5.0, 1.0, 90.0)]  # half a core
    outcome = Outcome("peer", tasks=100)
    summarize(outcome, times, names, started=98.5, samples=samples)
    assert (outcome.done, outcome.duplicates) == (100, 1)
    assert outcome.start_to_first_s == pytest.approx(1.5)
    assert outcome.rate == pytest.approx(10.0)
    assert outcome.cpu_cores == pytest.approx(0.5)
    assert outcome.cpu_ms_per_task == pytest.approx(50.0)
    assert outcome.redis_cpu_cores == pytest.approx(0.1)
    assert outcome.rss_mb == 90.0
