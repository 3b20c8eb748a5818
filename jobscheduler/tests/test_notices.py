"""Change notices over pub/sub (jobscheduler.notices), on TCP and on a unix socket."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobscheduler.keyspace import Keyspace
from jobscheduler.notices import ChangeListener

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def unix_redis(tmp_path: Path) -> Iterator[str]:
    """A private redis-server listening on a unix socket only; ended by its PID."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    socket = tmp_path / "redis.sock"
    process = subprocess.Popen(
        [server, "--port", "0", "--unixsocket", str(socket), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not socket.exists():
            assert time.monotonic() < deadline, "redis-server did not open its socket"
            time.sleep(0.02)
        yield f"unix://{socket}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def heard(listener: ChangeListener, client: redis.Redis, channel: str) -> list[str]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        client.publish(channel, "s1")
        notices = listener.wait(0.1)
        if notices:
            return notices
    return []


def test_notices_arrive_over_tcp(keyspace: Keyspace) -> None:
    listener = ChangeListener(keyspace, [keyspace.changes_channel])
    try:
        assert "s1" in heard(listener, keyspace.client, keyspace.changes_channel)
    finally:
        listener.close()


def test_notices_arrive_over_a_unix_socket(unix_redis: str) -> None:
    # The listener builds a connection pool of its own: from a unix-socket URL it needs the
    # pool's connection class too (without it, run_scheduler crashed at start).
    keyspace = Keyspace(redis.Redis.from_url(unix_redis), "notices-test", 4)
    listener = ChangeListener(keyspace, [keyspace.changes_channel])
    try:
        assert "s1" in heard(listener, keyspace.client, keyspace.changes_channel)
    finally:
        listener.close()


@pytest.mark.slow
def test_run_scheduler_runs_on_a_unix_socket(unix_redis: str, process_env: dict[str, str]) -> None:
    env = {**process_env, "REDIS_URL": unix_redis}
    done = subprocess.run(
        [sys.executable, "manage.py", "run_scheduler", "--once"], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert redis.Redis.from_url(unix_redis).exists(f"{env['JOBSCHEDULER_REDIS_PREFIX']}:reconciled")


def test_nothing_is_left_listening(unix_redis: str) -> None:
    keyspace = Keyspace(redis.Redis.from_url(unix_redis), "notices-test", 4)
    listener = ChangeListener(keyspace, [keyspace.changes_channel])
    listener.close()
    deadline = time.monotonic() + 5
    while keyspace.client.pubsub_numsub(keyspace.changes_channel)[0][1]:
        assert time.monotonic() < deadline, "the listener's subscription outlived close()"
        time.sleep(0.05)
    assert os.path.exists(unix_redis.removeprefix("unix://"))
