"""Reconcile's reads of runs, jobs and schedules, after Redis lost everything, are answered from indexes.

Captured as pymongo sends them while a reconcile rebuilds an emptied mirror (the heaviest
one: every schedule missing, its runs looked at for replays, pending runs put back), then
explained on the server the suite uses (jobscheduler/tests/query_plans.py). The reads that
matter at scale are those of runs: a reconcile reads every schedule anyway, but of the runs
only each missing schedule's last ones and the pending ones.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobs.models import Job, Run
from jobscheduler.epoch import to_epoch_ms
from jobscheduler.tests.query_plans import assert_indexed, capturing, queries
from schedules import engine, services
from schedules.models import Schedule

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
WATCHED = (Run._meta.db_table, Job._meta.db_table, Schedule._meta.db_table)


def test_reconcile_after_redis_lost_its_data_reads_by_index(job, keyspace, due_index):
    schedules = [services.schedule_create(job=job, kind="fixed", interval_seconds=10) for _ in range(3)]
    Run.objects.bulk_create(
        Run(
            job=job,
            schedule=schedule,
            fire_key=f"{schedule.pk}:{to_epoch_ms(T0 + timedelta(seconds=10 * n))}",
            nominal_time=T0 + timedelta(seconds=10 * n),
            status=Run.Status.PENDING if n == 29 else Run.Status.SUCCEEDED,
        )
        for schedule in schedules
        for n in range(30)
    )
    for key in keyspace.client.scan_iter(match=f"*{keyspace.prefix}*"):
        keyspace.client.delete(key)
    with capturing(*WATCHED) as captured:
        report = engine.reconcile(due_index, T0 + timedelta(seconds=300))
    assert report["added"] == 3 and report["requeued"] == 3
    read = {(table, tuple(query)) for table, query, _ in queries(captured)}
    runs = Run._meta.db_table
    # The last run of each schedule, what of the last 5 minutes is finished, the pending runs.
    assert {(runs, ("schedule_id",)), (runs, ("status",))} <= read, read
    assert any(table == runs and len(fields) == 3 for table, fields in read), read
    # Its pass over every schedule (a count for the progress, then all of them by id) reads the
    # whole collection by design; every other read is narrowed by an index.
    whole = [command for command in captured if not any(query for _, query, _ in queries([command]))]
    assert {command.get("find", command.get("aggregate")) for command in whole} == {Schedule._meta.db_table}
    assert_indexed([command for command in captured if command not in whole])
