"""The engine benchmark on a Redis Cluster beside a single Redis, in one run: dispatch rate
and lag with 1 and 3 schedulers, and a master killed (kill -9) while firing.

Not a test: run it on purpose, on an otherwise idle machine (about 5 minutes).

    .venv/bin/python bench/engine.py --cluster

The single Redis and the cluster (three masters, three replicas, ``cluster-node-timeout``
1500 ms, nothing on disk; devtools/cluster.py) are private servers on loopback, both on this
machine's cores beside SecantusDB and the schedulers. The same scenarios run on each, as
bench/engine.py runs them (lag = the stream entry's id, Redis's clock at dispatch, minus the
nominal time). The results replace the cluster section of docs/engine-benchmark.md (or --out).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import engine  # bench/engine.py

from devtools.cluster import LocalCluster

MARK_START, MARK_END = "<!-- cluster:start -->", "<!-- cluster:end -->"
NODE_TIMEOUT_MS = 1500


def scenarios(seconds: float) -> list[engine.Scenario]:
    return [
        engine.Scenario(
            f"{count // 1000}k fixed, spread, {schedulers} scheduler{'s' * (schedulers > 1)}",
            count,
            schedulers=schedulers,
            seconds=seconds,
        )
        for count in (10_000, 40_000)
        for schedulers in (1, 3)
    ]


@dataclass
class Failover:
    fires: int
    expected: int
    duplicates: int
    promoted_s: float  # kill to the replica serving the slots
    resumed_s: float  # kill to the first dispatch on the lost master's shards
    lag_max_ms: float


class ClusterHarness(engine.Harness):
    """engine.Harness switched between its single Redis and a local cluster."""

    def __init__(self, workdir: Path):
        super().__init__(workdir)
        self.single_url = self.env["REDIS_URL"]
        self.cluster = LocalCluster.start(workdir / "cluster", node_timeout_ms=NODE_TIMEOUT_MS)
        self.on_cluster = False

    def use(self, cluster: bool) -> None:
        """Point this process (the loads, the reads) and the schedulers it starts at one Redis."""
        import redis
        from django.conf import settings

        from jobscheduler import redis_cluster
        from jobscheduler.coordination import Coordination
        from jobscheduler.keyspace import Keyspace, use_keyspace
        from schedules.due_index import get_due_index

        url = self.cluster.url if cluster else self.single_url
        self.env["REDIS_URL"] = url
        self.env["JOBSCHEDULER_REDIS_CLUSTER"] = "1" if cluster else ""
        client: Any = redis_cluster.connect(url) if cluster else redis.Redis.from_url(url)
        use_keyspace(Keyspace(client, settings.JOBSCHEDULER_REDIS_PREFIX, settings.JOBSCHEDULER_SHARDS))
        self.index = get_due_index()
        self.coordination = Coordination(self.index.keyspace)
        self.on_cluster = cluster

    def redis_cpu(self) -> float:
        if not self.on_cluster:
            return super().redis_cpu()
        total = 0.0
        for port in self.cluster.ports:  # masters and replicas: replication is part of the cost
            if self.cluster.alive(port):
                info: Any = self.cluster.node(port).info("cpu")
                total += float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        return total

    def failover(self, count: int = 10_000, seconds: float = 20.0) -> Failover:
        """3 schedulers firing ``count`` 1 s schedules; the master of shard 0 is killed a third
        of the way in, and started again (as a replica) at the end."""
        from datetime import UTC, datetime, timedelta

        from schedules.services import schedule_bulk_create

        job = self.reset()
        processes = self.start_schedulers(3)
        victim = 0
        try:
            base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
            step_us = 1_000_000 // count
            specs = [
                {
                    "kind": "fixed",
                    "interval_seconds": 1,
                    "anchor": base + timedelta(microseconds=i * step_us // 1000 * 1000),
                }
                for i in range(count)
            ]
            schedule_bulk_create(job=job, specs=specs)
            window_start = int(time.time()) + 2
            window_end = window_start + int(seconds)
            time.sleep(max(0.0, window_start + seconds / 3 - time.time()))
            victim = self.cluster.master_of(self.index.due_key(0))
            lost = {
                shard
                for shard in range(self.index.shards)
                if self.cluster.master_of(self.index.due_key(shard)) == victim
            }
            self.cluster.kill(victim)
            killed_ms = int(time.time() * 1000)
            while victim in self.cluster.masters():
                time.sleep(0.02)
            promoted_s = time.time() - killed_ms / 1000
            time.sleep(max(0.0, window_end + 2 - time.time()))
        finally:
            self.stop(processes)
        dispatches = self.read_shards()
        in_window = [d for d in dispatches if window_start * 1000 <= d[1] < window_end * 1000]
        keys = [d[2] for d in in_window]
        after = [d[0] for d in in_window if d[3] in lost and d[0] >= killed_ms]
        self.cluster.start_node(victim)
        self.cluster.wait_ok()
        return Failover(
            fires=len(set(keys)),
            expected=count * int(seconds),
            duplicates=len(keys) - len(set(keys)),
            promoted_s=promoted_s,
            resumed_s=(min(after) - killed_ms) / 1000 if after else float("nan"),
            lag_max_ms=max(d[0] - d[1] for d in in_window) if in_window else float("nan"),
        )

    def read_shards(self) -> list[tuple[int, int, str, int]]:
        """``read_dispatches`` with each entry's shard: (dispatch ms, nominal ms, fire key, shard)."""
        out = []
        for shard in range(self.index.shards):
            key = self.index.runqueue.stream_key(shard)
            start = "-"
            while entries := self.index.client.xrange(key, min=start, count=20000):
                out += [(int(i.split(b"-")[0]), int(f[b"n"]), f[b"fk"].decode(), shard) for i, f in entries]
                start = "(" + entries[-1][0].decode()
            self.index.client.delete(key)
        return out

    def close(self) -> None:
        self.cluster.stop()
        super().close()


def report(rows: list[tuple[str, engine.Result]], failover: Failover, load: tuple[Any, Any]) -> list[str]:
    before, after = (" / ".join(f"{value:.2f}" for value in average) for average in load)
    lines = [
        MARK_START,
        "## On a Redis Cluster",
        "",
        f"`bench/engine.py --cluster` on {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {engine.machine()}.",
        "The same scenarios on a single Redis and on a local Redis Cluster (3 masters, 3 replicas,",
        f"`cluster-node-timeout` {NODE_TIMEOUT_MS} ms, 16 shards: 6, 5 and 5 on the masters), one after the",
        "other in one run; all six cluster nodes, the single Redis, SecantusDB and the schedulers",
        f"share the 2 cores. Load average before {before}, after {after} (1 / 5 / 15 min).",
        "",
        "| scenario | Redis | fires (expected) | dup | fires/s | lag p50 ms | lag p99 ms | lag max ms | "
        "sched CPU-s/1k | Redis CPU-s/1k |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for where, r in rows:
        lines.append(
            f"| {r.scenario.name} | {where} | {r.fires} ({r.expected}) | {r.duplicates} | {r.rate:,.0f} | "
            f"{r.lag_p50:.0f} | {r.lag_p99:.0f} | {r.lag_max:.0f} | {r.cpu_per_1k:.3f} | {r.redis_cpu_per_1k:.3f} |"
        )
    lines += [
        "",
        "Failover: 10k schedules every second, 3 schedulers, 20 s; the master serving shard 0 killed",
        f"(kill -9) a third of the way in. Its replica served the slots {failover.promoted_s:.1f} s after the kill;",
        f"dispatch on the lost master's shards resumed {failover.resumed_s:.1f} s after it; "
        f"{failover.fires} of {failover.expected} occurrences dispatched, {failover.duplicates} twice; "
        f"largest lag {failover.lag_max_ms:.0f} ms.",
        "Exactly-once run records through a failover, with workers: `schedules/tests/test_cluster_processes.py`.",
        MARK_END,
    ]
    return lines


def write(path: Path, lines: list[str]) -> None:
    text = path.read_text() if path.exists() else ""
    section = "\n".join(lines)
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        text = head + section + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main(out: Path, only: str = "", seconds: float = 8.0) -> None:
    import tempfile

    load_before = os.getloadavg()
    harness = ClusterHarness(Path(tempfile.mkdtemp(prefix="jobscheduler-bench-cluster-")))
    rows: list[tuple[str, engine.Result]] = []
    try:
        for cluster in (False, True):
            harness.use(cluster)
            where = "cluster" if cluster else "single"
            for scenario in scenarios(seconds):
                if only and only not in scenario.name:
                    continue
                print(f"running: {scenario.name} on {where} ...", flush=True)
                result = harness.run(scenario)
                rows.append((where, result))
                print(
                    f"  fires={result.fires}/{result.expected} dup={result.duplicates} rate={result.rate:,.0f}/s "
                    f"lag p50={result.lag_p50:.0f} p99={result.lag_p99:.0f} max={result.lag_max:.0f} ms "
                    f"cpu/1k={result.cpu_per_1k:.3f}s redis/1k={result.redis_cpu_per_1k:.3f}s",
                    flush=True,
                )
        print("running: failover on cluster ...", flush=True)
        failover = harness.failover()
        print(f"  {failover}", flush=True)
    finally:
        harness.close()
    write(out, report(rows, failover, (load_before, os.getloadavg())))
    print(f"wrote the cluster section of {out}")
