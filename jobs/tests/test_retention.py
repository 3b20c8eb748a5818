"""The runs' TTL index follows the retention settings, and the server expires finished runs by it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings

from jobs import retention
from jobs.models import Job, Run
from jobs.services import runs_purge
from jobscheduler import mongo
from jobscheduler.tests.query_plans import assert_indexed, capturing, queries

DAY = 86_400


def expiry_on_server() -> Any:
    """The index's expireAfterSeconds as the server lists it (None: a plain index)."""
    indexes = {index["name"]: index for index in mongo.collection(Run).list_indexes()}
    assert indexes[retention.INDEX]["key"] == {"finished_at": 1}
    return indexes[retention.INDEX].get("expireAfterSeconds")


@pytest.fixture
def ttl_restored(db: Any) -> Iterator[None]:
    """Leave the test database's index plain again (tests run without a TTL: devtools.pytest_servers)."""
    yield
    with override_settings(JOBSCHEDULER_RUN_RETENTION_TTL=False):
        retention.apply_retention()
    assert expiry_on_server() is None


def test_the_tests_run_without_a_ttl(db: Any) -> None:
    assert expiry_on_server() is None


@pytest.mark.usefixtures("ttl_restored")
def test_run_retention_sets_changes_and_removes_the_ttl() -> None:
    out = StringIO()
    with override_settings(JOBSCHEDULER_RUN_RETENTION_TTL=True, JOBSCHEDULER_RUN_RETENTION_DAYS=30):
        with pytest.raises(CommandError, match="out of step"):
            call_command("run_retention", "--check", stdout=out)
        assert expiry_on_server() is None  # --check changes nothing
        call_command("run_retention", stdout=out)
        assert expiry_on_server() == 30 * DAY
        call_command("run_retention", "--check", stdout=out)  # in step now
    with override_settings(JOBSCHEDULER_RUN_RETENTION_TTL=True, JOBSCHEDULER_RUN_RETENTION_DAYS=7):
        call_command("run_retention", stdout=out)
        assert expiry_on_server() == 7 * DAY
    with override_settings(JOBSCHEDULER_RUN_RETENTION_TTL=True, JOBSCHEDULER_RUN_RETENTION_DAYS=0):
        call_command("run_retention", stdout=out)  # 0 days: no TTL, not "delete at once"
        assert expiry_on_server() is None
    assert "set: finished runs expire 7 days after they finished (expireAfterSeconds=604800)" in out.getvalue()


@pytest.mark.usefixtures("ttl_restored")
def test_migrate_applies_a_changed_setting() -> None:
    with override_settings(JOBSCHEDULER_RUN_RETENTION_TTL=True, JOBSCHEDULER_RUN_RETENTION_DAYS=14):
        out = StringIO()
        call_command("migrate", verbosity=1, stdout=out)
        assert expiry_on_server() == 14 * DAY
        assert "Runs retention: finished runs expire 14 days after they finished" in out.getvalue()


def test_the_check_names_an_index_out_of_step(db: Any) -> None:
    from jobs.checks import check_run_retention

    assert check_run_retention(databases=[connection.alias]) == []
    with override_settings(JOBSCHEDULER_RUN_RETENTION_TTL=True, JOBSCHEDULER_RUN_RETENTION_DAYS=30):
        (warning,) = check_run_retention(databases=[connection.alias])
        assert check_run_retention() == []  # database checks only when asked for
    assert warning.id == "jobs.W003"
    assert "expireAfterSeconds=2592000" in warning.msg


def running_on_secantus() -> bool:
    return "secantusVersion" in mongo.collection(Run).database.command("buildInfo")


def make_run(job: Job, key: str, status: str, finished_days_ago: float | None) -> None:
    now = datetime.now(UTC)
    finished = None if finished_days_ago is None else now - timedelta(days=finished_days_ago)
    Run.objects.create(job=job, fire_key=key, status=status, finished_at=finished, nominal_time=now)


@pytest.mark.usefixtures("ttl_restored")
def test_secantus_expires_finished_runs_past_the_retention_by_the_ttl_index(job: Job) -> None:
    # SecantusDB runs a TTL monitor every 60 s, as mongod does, and prunes at once on its
    # secantusAdmin.pruneTtl command; mongod has no such command, and a minute's wait is too
    # long for the suite, so against MongoDB the index's options above are what is checked.
    if not running_on_secantus():
        pytest.skip("expiry is driven by SecantusDB's pruneTtl command; MongoDB's monitor wakes every 60 s")
    admin = mongo.collection(Run).database.client.admin
    make_run(job, "old-succeeded", "succeeded", 40)
    make_run(job, "old-missed", "missed", 31)
    make_run(job, "recent", "failed", 1)
    make_run(job, "running", "running", None)
    make_run(job, "pending", "pending", None)
    admin.command("secantusAdmin.pruneTtl")
    assert Run.objects.count() == 5  # no TTL yet: nothing expires
    with override_settings(JOBSCHEDULER_RUN_RETENTION_TTL=True, JOBSCHEDULER_RUN_RETENTION_DAYS=30):
        retention.apply_retention()
    assert runs_purge(before=datetime.now(UTC) - timedelta(days=30), dry_run=True) == 2  # what purge_runs would take
    admin.command("secantusAdmin.pruneTtl")
    assert sorted(Run.objects.values_list("fire_key", flat=True)) == ["pending", "recent", "running"]


def test_purge_runs_reads_and_deletes_by_index(job: Job) -> None:
    for index in range(300):
        make_run(job, f"old-{index}", "succeeded", 40 + index / 100)
    make_run(job, "recent", "failed", 1)
    make_run(job, "running", "running", None)
    with capturing(Run._meta.db_table) as captured:
        call_command("purge_runs", "--batch", "100", stdout=StringIO())
    assert sorted(Run.objects.values_list("fire_key", flat=True)) == ["recent", "running"]
    found = [query for _, query, _ in queries(captured)]
    assert found and all(list(query) in (["finished_at"], ["_id"]) for query in found), found
    assert_indexed(captured, strict=True)


def test_the_check_warns_of_retryable_writes_on_secantus_only(db: Any) -> None:
    from pymongo import MongoClient

    from jobs.checks import check_retryable_writes_on_secantus, retryable_writes_warnings

    assert check_retryable_writes_on_secantus(databases=[connection.alias]) == []  # the tests turn them off
    address = connection.settings_dict["HOST"]
    for retry_writes in (True, False):
        client: MongoClient[Any] = MongoClient(address, retryWrites=retry_writes)
        try:
            warnings = [warning.id for warning in retryable_writes_warnings(client)]
        finally:
            client.close()
        expected = ["jobs.W004"] if retry_writes and running_on_secantus() else []
        assert warnings == expected, retry_writes
