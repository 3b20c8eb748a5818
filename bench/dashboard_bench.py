"""Benchmark of the operations dashboard and the admin's runs list with a million runs stored.

Not a test: run it on purpose (loading a million runs into SecantusDB takes a long while).

    .venv/bin/python bench/dashboard_bench.py             # 1,000,000 runs; writes docs/dashboard-benchmark.md
    .venv/bin/python bench/dashboard_bench.py --runs 100000 --baseline
                                     # 100,000, and the runs list as it was before too (once a page)
    .venv/bin/python bench/dashboard_bench.py --data DIR  # SecantusDB's files in DIR, kept: a later run
                                     # with the same --data and --runs skips the load

It starts a private SecantusDB (data on disk) and a private Redis (nothing on disk), then loads
200 jobs, 1,000 schedules (schedule_bulk_create: saved and mirrored into the due index) and the
runs, in batches of 10,000 through ``jobs.run_records.runs_insert_many``: the worker's own write
path, so the dashboard's Redis counters fill as recording fills them. The runs spread evenly
over the last 10 days (about 70 a minute at 1M), 96% succeeded, 3% failed, 0.5% timed out,
0.5% missed; each failed one carries a short traceback. Heartbeats of 2 schedulers and 4
workers are sent with ``Coordination.beat`` and a dispatch-lag tally is flushed as a
scheduler's heartbeat does.

Then, in this process (Django's test client, signed in as a superuser, DEBUG off), each page
is fetched ``--repeat`` times: the dashboard (the admin index), its JSON endpoint, and the
runs list (first page, the estimate of the total not yet kept in Redis and kept; page 2; a
status filter; one job). The dashboard's reads are also timed one by one. Results go to
docs/dashboard-benchmark.md (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devtools.servers import Servers  # noqa: E402

JOBS = 200
SCHEDULES = 1000
SPAN = timedelta(days=10)
BATCH = 10_000
STATUSES = [("succeeded", 960), ("failed", 30), ("timed_out", 5), ("missed", 5)]
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/reports/tasks.py", line 42, in send_report\n'
    "    response.raise_for_status()\n"
    "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: https://reports.example/api"
)


@dataclass
class Timing:
    name: str
    seconds: list[float] = field(default_factory=list)
    queries: int = 0
    note: str = ""
    size: int = 0  # bytes of the response body

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def setup_django(mongo_uri: str, redis_url: str) -> None:
    os.environ.update(
        {
            "MONGODB_URI": mongo_uri,
            "MONGODB_DB": "bench",
            "REDIS_URL": redis_url,
            "JOBSCHEDULER_REDIS_PREFIX": "bench",
            # Not debug: Django's debug mode keeps (deep-copies) every MongoDB query.
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "bench-only-secret-key",
            "DJANGO_SETTINGS_MODULE": "jobscheduler.settings",
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "JOBSCHEDULER_LOG_LEVEL": "WARNING",
            "JOBSCHEDULER_DEMO": "1",  # the demo.tasks.* the jobs name
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def load(runs: int, seed: int = 7) -> tuple[float, Any]:
    """Jobs, schedules and ``runs`` runs; returns the seconds the runs took to load, and a job."""
    from bson import ObjectId
    from django.contrib.auth.models import User

    from jobs import run_records, services
    from jobs.models import Run
    from schedules.services import schedule_bulk_create

    rng = random.Random(seed)
    owner = User.objects.create_superuser("bench", "bench@example.com", "bench-password-1")
    jobs = [
        services.job_create(
            owner=owner,
            name=f"job {number:03d}",
            target_type="python",
            target={"task": "demo.tasks.hello"},
        )
        for number in range(JOBS)
    ]
    per_job = SCHEDULES // JOBS
    for number, job in enumerate(jobs):
        specs: list[dict[str, Any]] = [
            {"kind": "fixed", "interval_seconds": 60 * (1 + (number + index) % 30)} for index in range(per_job - 1)
        ]
        specs.append({"kind": "cron", "expression": f"{number % 60} */{1 + number % 6} * * *"})
        schedule_bulk_create(job=job, specs=specs)
    schedule_ids = {job.pk: list(job.schedules.values_list("pk", flat=True)) for job in jobs}
    statuses = [status for status, weight in STATUSES for _ in range(weight)]
    now = datetime.now(UTC)
    step = SPAN / runs
    started = time.monotonic()
    batch: list[Run] = []
    for number in range(runs):
        job = jobs[number % JOBS]
        schedule_id = schedule_ids[job.pk][number % per_job]
        nominal = now - SPAN + step * number
        status = rng.choice(statuses)
        finished = nominal + timedelta(milliseconds=rng.randint(5, 900))
        batch.append(
            Run(
                pk=ObjectId(),  # as the worker drafts them (run_records.run_draft)
                job_id=job.pk,
                schedule_id=schedule_id,
                fire_key=f"{schedule_id}:{int(nominal.timestamp() * 1000)}:{number}",
                trigger="schedule",
                status=status,
                attempt=1,
                nominal_time=nominal,
                dispatched_at=nominal + timedelta(milliseconds=2),
                started_at=None if status == "missed" else nominal + timedelta(milliseconds=4),
                finished_at=finished,
                worker="" if status == "missed" else f"worker-{number % 4}",
                error=TRACEBACK if status in ("failed", "timed_out") else "",
                created_at=finished,
            )
        )
        if len(batch) == BATCH:
            run_records.runs_insert_many(batch)
            batch = []
            done = number + 1
            if done % 100_000 == 0:
                elapsed = time.monotonic() - started
                print(f"  {done:,} runs loaded in {elapsed:,.0f} s ({done / elapsed:,.0f}/s)", flush=True)
    if batch:
        run_records.runs_insert_many(batch)
    return time.monotonic() - started, jobs[0]


def recount_recent() -> None:
    """Fill the (fresh) Redis counters from the runs of the last 26 hours, as recording did
    when they were loaded: a reused data folder comes with a new, empty Redis."""
    from jobs.models import Run
    from jobs.outcomes import count_ended

    since = datetime.now(UTC) - timedelta(hours=26)
    recent = list(Run.objects.filter(nominal_time__gte=since).order_by())
    for start in range(0, len(recent), BATCH):
        count_ended(recent[start : start + BATCH])


def live_processes() -> None:
    """What live schedulers and workers leave in Redis: heartbeats, and a lag histogram."""
    from jobscheduler import activity
    from jobscheduler.coordination import SCHEDULERS, WORKERS, Coordination

    coordination = Coordination()
    now = time.time()
    for number in range(2):
        info = {"pid": 100 + number, "started": now, "fired": 0}
        coordination.beat(SCHEDULERS, f"bench-host:{100 + number}", info, ttl_seconds=3600)
    for number in range(4):
        info = {"pid": 200 + number, "started": now, "concurrency": 16, "busy": number, "done": 1000}
        coordination.beat(WORKERS, f"bench-host:{200 + number}", {**info, "queues": ["default"]}, ttl_seconds=3600)
    rng = random.Random(3)
    now_ms = int(now * 1000)
    for minute in range(60):
        activity.LAGS.observe([int(rng.expovariate(1 / 3)) for _ in range(1000)], now_ms - minute * 60_000)
    activity.flush_lags()


def timed(name: str, fetch: Callable[[], Any], repeat: int, before: Callable[[], Any] | None = None) -> Timing:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    timing = Timing(name)
    for _ in range(repeat):
        if before:
            before()
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = fetch()
            timing.seconds.append(time.perf_counter() - started)
        status = getattr(response, "status_code", 200)
        if status != 200:
            raise RuntimeError(f"{name}: HTTP {status}")
        timing.queries = len(queries.captured_queries)
        timing.size = len(getattr(response, "content", b""))
        shown = re.search(r"([\d,]+) runs?\b", getattr(response, "content", b"").decode())
        timing.note = f"{shown.group(1)} runs" if shown else ""
    print(f"  {name}: median {timing.median * 1000:,.0f} ms over {repeat} {timing.note}", flush=True)
    return timing


def measure(job: Any, repeat: int) -> tuple[list[Timing], list[Timing]]:
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    from dashboard import selectors
    from jobs.admin_paging import estimated_run_count
    from jobscheduler.activity import Activity
    from jobscheduler.coordination import Coordination
    from jobscheduler.epoch import to_epoch_ms
    from jobscheduler.keyspace import default_keyspace
    from schedules.due_index import get_due_index

    client = Client()
    client.force_login(User.objects.get(username="bench"))
    keyspace = default_keyspace()
    runs_url = reverse("admin:jobs_run_changelist")

    def forget_estimate() -> None:
        keyspace.client.delete(keyspace.global_key("runs:estimated-count"))

    pages = [
        timed("dashboard page (/admin/)", lambda: client.get(reverse("admin:index")), repeat),
        timed("dashboard JSON (/admin/dashboard/data/)", lambda: client.get(reverse("dashboard-data")), repeat),
        timed(
            "runs list, first page, total not kept in Redis",
            lambda: client.get(runs_url),
            max(1, repeat // 2),
            before=forget_estimate,
        ),
        timed("runs list, first page", lambda: client.get(runs_url), repeat, before=estimated_run_count),
        timed("runs list, page 2", lambda: client.get(runs_url, {"p": "2"}), repeat),
        timed("runs list, status = failed", lambda: client.get(runs_url, {"status__exact": "failed"}), repeat),
        timed("runs list, one job", lambda: client.get(runs_url, {"job__id__exact": str(job.pk)}), repeat),
    ]
    index = get_due_index()
    activity = Activity(index.keyspace)
    now = datetime.now(UTC)
    now_ms = to_epoch_ms(now)
    parts = [
        timed("processes (heartbeats)", lambda: selectors.processes(Coordination(), time.time()), repeat),
        timed("due index", lambda: selectors.due_index_state(index, now_ms), repeat),
        timed("runs per minute, 24 h (counters)", lambda: selectors.run_counts(activity, now_ms), repeat),
        timed("dispatch lag, 1 h (histogram)", lambda: selectors.lag_summary(activity, now_ms), repeat),
        timed("latest failures", lambda: selectors.latest_failures(activity, None), repeat),
        timed("paused by the service", lambda: selectors.paused_by_service(None), repeat),
        timed("what runs next, 24 h", lambda: selectors.upcoming(index, None, now), repeat),
    ]
    return pages, parts


def measure_baseline(job: Any) -> list[Timing]:
    """The runs list as it was before (select_related, date hierarchy, full counts), once a page."""
    from django.contrib.auth.models import User
    from django.core.paginator import Paginator
    from django.test import Client
    from django.urls import reverse

    from jobs import selectors
    from jobs.admin import RunAdmin
    from jobscheduler.admin_tools import admin_user

    saved = {
        name: RunAdmin.__dict__[name]
        for name in ("list_select_related", "show_full_result_count", "paginator", "get_queryset", "list_filter")
    }
    before: dict[str, Any] = {
        "list_select_related": ("job", "schedule", "schedule__job"),
        "date_hierarchy": "nominal_time",
        "show_full_result_count": True,
        "paginator": Paginator,
        "list_filter": ("status", "trigger"),
        "get_queryset": lambda self, request: selectors.runs_visible_to(admin_user(request)),
    }
    for name, value in before.items():
        setattr(RunAdmin, name, value)
    client = Client()
    client.force_login(User.objects.get(username="bench"))
    url = reverse("admin:jobs_run_changelist")
    try:
        return [
            timed("before: runs list, first page", lambda: client.get(url), 1),
            timed("before: runs list, status = failed", lambda: client.get(url, {"status__exact": "failed"}), 1),
            timed("before: runs list, one job", lambda: client.get(url, {"job__id__exact": str(job.pk)}), 1),
        ]
    finally:
        for name, value in saved.items():
            setattr(RunAdmin, name, value)
        RunAdmin.date_hierarchy = None


def write_report(path: Path, args: argparse.Namespace, facts: dict[str, Any], timings: dict[str, list[Timing]]) -> None:
    def table(rows: list[Timing]) -> list[str]:
        lines = [
            "| what | median | min | max | ORM queries | response | the list says |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for row in rows:
            size = f"{row.size / 1024:,.0f} KiB" if row.size else ""
            lines.append(
                f"| {row.name} | {row.median * 1000:,.0f} ms | {min(row.seconds) * 1000:,.0f} ms "
                f"| {max(row.seconds) * 1000:,.0f} ms | {row.queries} | {size} | {row.note} |"
            )
        return lines

    command = " ".join(["python", "bench/dashboard_bench.py", *sys.argv[1:]])
    lines = [
        f"## {facts['runs']:,} runs stored",
        "",
        f"Measured {facts['date']} with `{command}` (bench/dashboard_bench.py; its docstring says what it loads",
        "and how it measures). This part is written by the benchmark; the notes after it are by hand.",
        "",
        f"- machine: {facts['machine']}; load average when measuring began {facts['load']}",
        f"- SecantusDB {facts['secantus']} (data on disk), Redis {facts['redis']}, Python {facts['python']}",
        f"- stored: {facts['runs']:,} runs over the last {SPAN.days} days, {JOBS} jobs, {SCHEDULES:,} schedules",
        f"- loading the runs: {facts['load_seconds']:,.0f} s ({facts['load_rate']:,.0f} runs/s, batches of {BATCH:,}"
        " through jobs.run_records.runs_insert_many)"
        + (" (reused from an earlier run's data folder)" if facts.get("reused") else ""),
        "",
        "### Pages (Django's test client in the benchmark's process, signed in as a superuser)",
        "",
        *table(timings["pages"]),
        "",
        "### The dashboard's reads, one by one",
        "",
        *table(timings["parts"]),
    ]
    if timings.get("baseline"):
        lines += ["", "### The runs list before this change (once each)", "", *table(timings["baseline"])]
    # Each size's tables go between markers of their own; the rest of the file (notes by hand) stays.
    start, end = (
        f"<!-- bench/dashboard_bench.py {facts['runs']} runs: start -->",
        "<!-- bench/dashboard_bench.py: end -->",
    )
    generated = "\n".join([start, *lines, end])
    old = path.read_text() if path.exists() else "## Notes\n\n(by hand)\n"
    if start in old:
        after = old.index(start)
        text = old[:after] + generated + old[old.index(end, after) + len(end) :]
    elif "## Notes" in old:
        text = old.replace("## Notes", generated + "\n\n## Notes", 1)
    else:
        text = old.rstrip() + "\n\n" + generated + "\n"
    path.write_text(text)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", action="store_true", help="also time the runs list as it was (slow)")
    parser.add_argument("--data", type=Path, help="SecantusDB's data folder, kept (reused when it holds --runs runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard-benchmark.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    data = args.data or workdir / "mongo"
    data.mkdir(parents=True, exist_ok=True)
    marker = data / "bench-dashboard.json"
    loaded = json.loads(marker.read_text()) if marker.exists() else None
    reused = bool(loaded and loaded["runs"] == args.runs)
    if loaded and not reused:
        raise SystemExit(f"{data} holds {loaded['runs']:,} runs, not {args.runs:,}: use another --data folder")
    servers = Servers()
    try:
        mongo = servers.start_secantus(str(data), workdir)
        redis_url = servers.start_redis(workdir)
        facts: dict[str, Any] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}",
            "load": " ".join(f"{value:.2f}" for value in os.getloadavg()),
            "python": platform.python_version(),
            "secantus": _version("SecantusDB"),
            "redis": subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2],
            "runs": args.runs,
        }
        setup_django(mongo, redis_url)
        from jobs.models import Job
        from schedules.due_index import get_due_index
        from schedules.models import Schedule
        from schedules.services import schedules_resync

        if reused:
            print(f"reusing {args.runs:,} runs in {data}; refilling Redis", flush=True)
            # The service's re-mirroring of schedules (their next times from now), not a
            # reconcile: a rebuild reads every run of a schedule Redis lost, minutes at 1M.
            schedules_resync(Schedule.objects.values_list("pk", flat=True))
            get_due_index().mark_reconciled()
            recount_recent()
            facts.update(load_seconds=loaded["load_seconds"], reused=True)  # type: ignore[index]
            job = Job.objects.order_by("name").first()
        else:
            print(f"loading {args.runs:,} runs into {data}", flush=True)
            seconds, job = load(args.runs)
            marker.write_text(json.dumps({"runs": args.runs, "load_seconds": seconds}))
            facts["load_seconds"] = seconds
        facts["load_rate"] = args.runs / facts["load_seconds"]
        live_processes()
        print("measuring", flush=True)
        facts["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        facts["load"] = " ".join(f"{value:.2f}" for value in os.getloadavg())
        pages, parts = measure(job, args.repeat)
        timings = {"pages": pages, "parts": parts}
        if args.baseline:
            timings["baseline"] = measure_baseline(job)
        if not args.no_write:
            write_report(args.out, args, facts, timings)
    finally:
        servers.stop()


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()
