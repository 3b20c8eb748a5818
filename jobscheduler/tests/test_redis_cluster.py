"""Redis Cluster mode's own parts on a real local cluster (3 masters, 3 replicas): shard tags,
notices heard on every node, a blocking read over every node's streams, readiness, and the
commands configured by JOBSCHEDULER_REDIS_CLUSTER. The engine and worker tests run on the
cluster too (their modules are marked ``redis_modes``); the multi-process ones are in
schedules/tests/test_cluster_processes.py."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from devtools.cluster import LocalCluster
from jobs.runqueue import Entry, RunQueue
from jobscheduler import health
from jobscheduler import redis_cluster as cluster_mode
from jobscheduler.keyspace import Keyspace
from jobscheduler.notices import ChangeListener
from schedules import services
from schedules.due_index import DueIndex

pytestmark = pytest.mark.redis_modes("cluster")

ROOT = Path(__file__).resolve().parents[2]


def masters_of(keyspace: Keyspace, cluster: LocalCluster) -> Counter[int]:
    """How many shards each master serves (by port), asked of the cluster itself."""
    return Counter(cluster.master_of(keyspace.key(shard, "due")) for shard in range(keyspace.shards))


@pytest.mark.parametrize("shards", [3, 4, 16, 64])
def test_shards_spread_evenly_over_the_masters(keyspace: Keyspace, redis_cluster: LocalCluster, shards: int) -> None:
    spread = Keyspace(keyspace.client, keyspace.prefix, shards)
    counts = masters_of(spread, redis_cluster)
    assert set(counts) == set(redis_cluster.masters())  # every master serves some
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    # The same tags in every process (deterministic), one slot per shard, different slots.
    again = Keyspace(redis_cluster_client(redis_cluster), keyspace.prefix, shards)
    assert [again.tag(shard) for shard in range(shards)] == [spread.tag(shard) for shard in range(shards)]
    slots = {int(cluster_mode.slot_of(spread.key(shard, "due"))) for shard in range(shards)}
    assert len(slots) == shards


def test_a_shards_keys_share_one_slot(keyspace: Keyspace, due_index: DueIndex, runqueue: RunQueue) -> None:
    for shard in range(keyspace.shards):
        keys = [
            due_index.due_key(shard),
            due_index.work_key(shard),
            due_index.fired_key(shard),
            due_index.syncing_key(shard),
            due_index.staged_key(shard),
            due_index.guard_key(shard),
            keyspace.key(shard, "s:an-id"),
            runqueue.stream_key(shard),
            runqueue.delayed_key(shard),
        ]
        assert len({cluster_mode.slot_of(key) for key in keys}) == 1


def redis_cluster_client(cluster: LocalCluster) -> Any:
    return cluster_mode.connect(cluster.url)


def test_an_edit_wakes_listeners_subscribed_on_every_node(job: Any, keyspace: Keyspace, due_index: DueIndex) -> None:
    # Classic pub/sub on a cluster: a notice published on the schedule's master (inside its
    # Lua step) reaches subscribers on every other node, replicas included.
    nodes = cluster_mode.nodes(keyspace.client)
    listeners = [ChangeListener(keyspace, [keyspace.changes_channel]) for _ in nodes]
    try:
        ports = {listener._client.connection_pool.connection_kwargs["port"] for listener in listeners}
        assert ports == {node.port for node in nodes}  # one on each node
        schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=60)
        for listener in listeners:
            assert str(schedule.pk) in (listener.wait(5) or [])
    finally:
        for listener in listeners:
            listener.close()


def test_a_blocking_read_sees_an_entry_on_any_node(keyspace: Keyspace, runqueue: RunQueue) -> None:
    runqueue.ensure_groups()
    shards = list(range(runqueue.lanes))
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.append(runqueue.read("c1", 1, shards, block_ms=5000)))
    started = time.monotonic()
    reader.start()
    time.sleep(0.3)
    last = shards[-1]
    runqueue.add(Entry.manual(job_id="j1", schedule_id="", nominal_ms=1, shard=last))
    reader.join(timeout=10)
    waited = time.monotonic() - started
    [[(shard, _, fields)]] = got
    assert (shard, fields["j"]) == (last, "j1")
    assert waited < 2, f"the read waited {waited:.2f}s for an entry added after 0.3s"


def test_readiness_asks_every_master(redis_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    client = redis_cluster_client(redis_cluster)
    monkeypatch.setattr(health, "redis_client", lambda: client)
    health.ping_redis()
    # A master that does not answer (its connection goes to a port nothing listens on).
    master = client.get_primaries()[-1]
    master.redis_connection = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.ConnectionError):
        health.ping_redis()


def test_sync_schedules_rebuilds_the_mirror_on_the_cluster_when_configured(
    job: Any, keyspace: Keyspace, due_index: DueIndex, process_env: dict[str, str], redis_cluster: LocalCluster
) -> None:
    schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    for key in keyspace.client.scan_iter(match=f"*{keyspace.prefix}*", count=1000):
        keyspace.client.delete(key)
    assert due_index.state(str(schedule.pk)) == {}
    assert process_env["JOBSCHEDULER_REDIS_CLUSTER"] == "1"
    done = subprocess.run(
        [sys.executable, "manage.py", "sync_schedules", "--skip-declared"],
        cwd=ROOT,
        env=process_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert due_index.state(str(schedule.pk))["gen"]
    assert due_index.is_reconciled()
    # Without cluster mode the node at REDIS_URL answers MOVED for most keys: the setting is what makes it work.
    single = subprocess.run(
        [sys.executable, "manage.py", "sync_schedules", "--skip-declared"],
        cwd=ROOT,
        env={**process_env, "JOBSCHEDULER_REDIS_CLUSTER": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert single.returncode != 0
    assert "MovedError" in single.stderr
