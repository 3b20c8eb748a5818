"""The Django Tasks benchmark's figures and report (pure logic: figures in, lines out)."""

from tasks import Drain, Latency, Row, Sample, cpu_at
from tasks_report import drain_table, findings, keeps_up, latency_table


def rows() -> list[Row]:
    ours = Row("ours, `RunQueueBackend`", "1 `run_worker`", Drain(1000, done=1000, rate=120.0, enqueue_s=10.0))
    ours.latencies.append(("", Latency(50, 10, enqueued=500, done=500, p50_ms=30, p99_ms=90, max_ms=120)))
    db = Row("django-tasks-db", "2 `db_worker`", Drain(1000, done=1000, rate=150.0, enqueue_s=2.0))
    db.latencies += [
        ("--interval 1 (default)", Latency(50, 10, enqueued=500, done=500, p50_ms=500, p99_ms=990, max_ms=1000)),
        ("--interval 0.1", Latency(50, 10, enqueued=500, done=500, p50_ms=55, p99_ms=200, max_ms=300)),
    ]
    rq = Row("django-tasks-rq", "2 `rqworker`", Drain(1000, done=1000, rate=45.0, enqueue_s=3.0))
    rq.latencies.append(("", Latency(50, 10, enqueued=500, done=500, p50_ms=2800, p99_ms=5800, max_ms=5900)))
    return [ours, db, rq]


def test_a_counter_is_read_between_its_samples() -> None:
    samples = [Sample(10.0, 1.0, 0.0), Sample(12.0, 3.0, 1.0)]
    assert cpu_at(samples, 11.0, "workers") == 2.0
    assert cpu_at(samples, 9.0, "store") == 0.0 and cpu_at(samples, 13.0, "store") == 1.0  # clamped


def test_tables_show_enqueue_cost_per_task_and_flag_a_backlog() -> None:
    ours, db, rq = rows()
    assert "| 10.0 |" in drain_table([ours])[2]  # 10 s for 1,000 enqueues
    assert keeps_up(ours, 50) and not keeps_up(rq, 50)
    lines = latency_table([db, rq], 50)
    assert [line.split(" | ")[1] for line in lines[2:]] == [
        "2 `db_worker` --interval 1 (default)",
        "2 `db_worker` --interval 0.1",
        "2 `rqworker`",
    ]
    assert lines[-1].endswith("| drains 45/s: at or past saturation |")


def test_findings_quote_ours_beside_the_peers_of_the_same_run() -> None:
    found = findings(rows(), 50)
    assert found[0] == (
        "- **Drain**: ours, `RunQueueBackend`, 1 `run_worker`: 120/s; beside django-tasks-db, "
        "2 `db_worker`: 150/s; django-tasks-rq, 2 `rqworker`: 45/s."
    )
    assert "django-tasks-db, 2 `db_worker` --interval 0.1: p50 55 ms, p99 200 ms" in found[1]  # each one's best
    assert found[2].startswith("- django-tasks-rq, 2 `rqworker` drained less than 1.2 times the 50/s offered")
