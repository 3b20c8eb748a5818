"""Change notices over pub/sub (jobscheduler.notices), on TCP, on a unix socket and over TLS (rediss://)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from devtools.servers import free_port
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


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[str]:
    """A private redis-server speaking TLS only, with a certificate made for the test; a
    ``rediss://`` URL that trusts that certificate. Ended by its PID."""
    server, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if server is None or openssl is None:
        pytest.skip("redis-server or openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subject = ["-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), *subject],
        check=True,
        capture_output=True,
    )
    port = free_port()
    listen = ["--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    tls = ["--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert)]
    process = subprocess.Popen(
        [server, *listen, *tls, "--tls-auth-clients", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not accept TLS connections"
                time.sleep(0.05)
        yield url
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


def test_notices_arrive_over_tls(tls_redis: str) -> None:
    client = redis.Redis.from_url(tls_redis)
    assert client.connection_pool.connection_class is redis.SSLConnection
    keyspace = Keyspace(client, "notices-test", 4)
    listener = ChangeListener(keyspace, [keyspace.changes_channel])
    try:
        assert "s1" in heard(listener, keyspace.client, keyspace.changes_channel)
    finally:
        listener.close()


@pytest.mark.slow
def test_run_scheduler_runs_over_tls(tls_redis: str, process_env: dict[str, str], db: Any) -> None:
    # db: the scheduler applies the schedules declared in code (the demo's) to this test's MongoDB.
    env = {**process_env, "REDIS_URL": tls_redis}
    done = subprocess.run(
        [sys.executable, "manage.py", "run_scheduler", "--once"], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert redis.Redis.from_url(tls_redis).exists(f"{env['JOBSCHEDULER_REDIS_PREFIX']}:reconciled")


@pytest.mark.slow
def test_run_scheduler_runs_on_a_unix_socket(unix_redis: str, process_env: dict[str, str], db: Any) -> None:
    # db: the scheduler applies the schedules declared in code (the demo's) to this test's MongoDB.
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
