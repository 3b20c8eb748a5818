"""Benchmark of what operators wait for: a bulk load, the API's create rate, a scheduler's stop.

Not a test: run it on purpose. Like bench/engine.py it starts its own Redis and SecantusDB
(in memory) and real processes:

    .venv/bin/python bench/operations.py --quick              # 10k loaded, stops at 10k
    .venv/bin/python bench/operations.py                      # 100k loaded, stops at 10k-100k
    .venv/bin/python bench/operations.py --baseline DIR       # the same, also with the code in DIR

- *bulk load*: ``schedule_bulk_create`` of N fixed schedules whose first time is a day ahead,
  in a process of its own (the code of the tree measured), one scheduler running as in service;
- *API create*: one ``POST /api/schedules/`` per schedule to gunicorn (the Dockerfile's server),
  over kept-alive connections, with 1 worker and 1 client, then 2 workers and 4 clients;
- *stop*: SIGTERM to a ``run_scheduler`` that fires N every-second schedules (spread), at
  several moments of its sync cycle; the time until it exited, and the schedules whose fired
  state it left in Redis for the next scheduler's sync.

``--baseline DIR`` runs every measure a second time with the code in DIR (say, ``git archive``
of an older commit, with the same venv), interleaved, so both figures share the machine's load.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from engine import Harness, machine  # noqa: E402

from devtools.servers import free_port, port_open  # noqa: E402

# Runs in a child process whose working directory is the tree measured, so its own service
# code loads the schedules. Only what every version has: schedule_bulk_create(job=, specs=).
LOAD = """
import json, sys, time
sys.path.insert(0, ".")
import django
django.setup()
from datetime import UTC, datetime, timedelta
from jobs.models import Job
from schedules.services import schedule_bulk_create
count, job_id = int(sys.argv[1]), sys.argv[2]
job = Job.objects.get(pk=job_id)
base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
specs = [
    {"kind": "fixed", "interval_seconds": 86400, "anchor": base + timedelta(milliseconds=index % 86_400_000)}
    for index in range(count)
]
started = time.perf_counter()
schedule_bulk_create(job=job, specs=specs)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""

# The floor a bulk load stands on: the server's inserts alone. The documents of schedules
# already saved (by a load just before) are inserted again, under new ids, into a collection
# with the same indexes, two batches at a time as the loads of this tree do.
RAW_INSERTS = """
import json, sys, time, threading
sys.path.insert(0, ".")
import django
django.setup()
from bson import ObjectId
from jobscheduler import mongo
from schedules.models import Schedule
source = mongo.collection(Schedule)
target = source.database["bench_raw_inserts"]
target.drop()
kept = ("unique", "partialFilterExpression")
for name, spec in source.index_information().items():
    if name != "_id_":
        target.create_index(spec["key"], name=name, **{k: v for k, v in spec.items() if k in kept})
documents = [dict(document, _id=ObjectId()) for document in source.find()]
batches = [documents[first : first + 2000] for first in range(0, len(documents), 2000)]
lock = threading.Lock()
def insert():
    while True:
        with lock:
            if not batches:
                return
            batch = batches.pop()
        target.insert_many(batch, ordered=False)
threads = [threading.Thread(target=insert) for _ in range(2)]
started = time.perf_counter()
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"seconds": time.perf_counter() - started, "documents": len(documents)}))
target.drop()
"""


@dataclass
class Measures:
    """Each measure's samples, by the code that made them."""

    rows: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    notes: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def add(self, measure: str, code: str, value: float, note: str = "") -> None:
        self.rows.setdefault((measure, code), []).append(value)
        if note:
            self.notes.setdefault((measure, code), []).append(note)


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def run_child(harness: Harness, code: str, root: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=root, env=harness.env, capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def bulk_load(harness: Harness, count: int, root: Path) -> float:
    job = harness.reset()
    processes = harness.start_schedulers(1, root=root)
    try:
        return float(run_child(harness, LOAD, root, str(count), str(job.pk))["seconds"])
    finally:
        harness.stop(processes)


def raw_inserts(harness: Harness) -> float:
    """SecantusDB's time to insert the documents of the schedules loaded last, alone."""
    return float(run_child(harness, RAW_INSERTS, ROOT)["seconds"])


def api_create(harness: Harness, count: int, root: Path, workers: int, clients: int) -> float:
    """Schedules created per second through the API, one request each."""
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    job = harness.reset()
    token, _ = Token.objects.get_or_create(user=User.objects.get(username="bench"))
    port = free_port()
    env = {**harness.env, "JOBSCHEDULER_THROTTLE_USER": "1000000/min", "DJANGO_ALLOWED_HOSTS": "127.0.0.1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "jobscheduler.wsgi", "--bind", f"127.0.0.1:{port}", f"--workers={workers}"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", port):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.1)
        headers = {"Authorization": f"Token {token.key}", "Content-Type": "application/json"}
        base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        failures: list[str] = []

        def client(share: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            body = json.dumps(
                {"job": str(job.pk), "kind": "fixed", "interval_seconds": 86400, "anchor": base.isoformat()}
            )
            for _ in range(share):
                connection.request("POST", "/api/schedules/", body=body, headers=headers)
                response = connection.getresponse()
                text = response.read()
                if response.status != 201:
                    failures.append(f"{response.status}: {text[:200]!r}")
            connection.close()

        client(5)  # warm up each worker's imports and connections
        threads = [threading.Thread(target=client, args=(count // clients,)) for _ in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if failures:
            raise RuntimeError(f"{len(failures)} creates failed, first: {failures[0]}")
        return (count // clients) * clients / elapsed
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def stops(harness: Harness, count: int, root: Path, samples: int) -> list[tuple[float, int, int]]:
    """(seconds from SIGTERM to exit, exit code, schedules left in the fired set) per sample."""
    from schedules.services import schedule_bulk_create

    job = harness.reset()
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    specs = [
        {"kind": "fixed", "interval_seconds": 1, "anchor": base + timedelta(milliseconds=index * 1000 // count)}
        for index in range(count)
    ]
    results = []
    processes = harness.start_schedulers(1, root=root)
    schedule_bulk_create(job=job, specs=specs)
    for sample in range(samples):
        if sample:
            processes = harness.start_schedulers(1, root=root)
        # At different moments of the 5 s sync cycle: mid-copy, just after, in between.
        time.sleep(6 + sample * 1.7)
        process = processes[0]
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        elapsed = time.monotonic() - started
        client = harness.index.client
        # Fired state not in MongoDB yet: in the fired set, or leased by a copy cut short.
        left = sum(
            int(client.scard(harness.index.fired_key(shard)))
            + int(client.zcard(harness.index.keyspace.key(shard, "syncing")))
            for shard in range(harness.index.shards)
        )
        results.append((elapsed, code, left))
        for shard in range(harness.index.shards):  # the streams grow by `count` a second
            client.delete(harness.index.runqueue.stream_key(shard))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k loaded and stops at 10k only")
    parser.add_argument("--baseline", type=Path, help="also measure the code in this directory")
    parser.add_argument("--only", default="", help="bulk, api or stop")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--count", type=int, default=0, help="schedules in a bulk load (default 10k quick, 100k full)")
    args = parser.parse_args()
    codes = {"this tree": ROOT}
    if args.baseline:
        codes["baseline"] = args.baseline.resolve()
    load_count = 10_000 if args.quick else 100_000
    if args.count:
        load_count = args.count
    api_count = 1_000 if args.quick else 4_000
    stop_counts = [10_000] if args.quick else [10_000, 40_000, 100_000]
    print(f"load average before: {load_average()}", flush=True)
    harness = Harness(Path(tempfile.mkdtemp(prefix="jobscheduler-bench-ops-")))
    measures = Measures()
    try:
        for _ in range(args.samples):
            for code, root in codes.items():
                if args.only in ("", "bulk"):
                    seconds = bulk_load(harness, load_count, root)
                    measures.add(f"bulk load {load_count:,} s", code, seconds)
                    print(f"[{code}] bulk load {load_count:,}: {seconds:.2f} s", flush=True)
                    if code == "this tree":
                        seconds = raw_inserts(harness)
                        measures.add(f"bulk load {load_count:,} s", "SecantusDB's inserts alone", seconds)
                        print(f"[SecantusDB's inserts alone] {load_count:,}: {seconds:.2f} s", flush=True)
        for code, root in codes.items():
            if args.only in ("", "api"):
                for workers, clients in ((1, 1), (2, 4)):
                    rate = api_create(harness, api_count, root, workers, clients)
                    name = f"API creates/s ({workers} gunicorn workers, {clients} clients)"
                    measures.add(name, code, rate)
                    print(f"[{code}] {name}: {rate:.0f}/s", flush=True)
        for count in stop_counts:
            for code, root in codes.items():
                if args.only in ("", "stop"):
                    for seconds, exit_code, left in stops(harness, count, root, args.samples):
                        note = f"exit {exit_code}, {left:,} left in the fired set"
                        measures.add(f"stop at {count:,} every second, s", code, seconds, note)
                        print(f"[{code}] stop at {count:,}: {seconds:.2f} s, {note}", flush=True)
    finally:
        harness.close()
    print(f"load average after: {load_average()}")
    print(f"machine: {machine()}")
    print("| measure | code | median | samples |")
    print("|---|---|---|---|")
    for (measure, code), values in measures.rows.items():
        notes = measures.notes.get((measure, code), [])
        notes += [""] * (len(values) - len(notes))
        pairs = zip(values, notes, strict=True)
        shown = ", ".join(f"{value:.2f} ({note})" if note else f"{value:.2f}" for value, note in pairs)
        print(f"| {measure} | {code} | {statistics.median(values):.2f} | {shown} |")


if __name__ == "__main__":
    main()
