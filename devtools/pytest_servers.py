"""pytest plugin: real MongoDB-wire and Redis servers, and the demo app, before Django's settings load.

Loaded with ``-p`` from pytest.ini so it runs before pytest-django reads settings, whether
pytest runs from bin/test or directly. Without MONGODB_URI it starts a pinned SecantusDB in
memory on a free port; with it, the suite runs against that server (a real MongoDB
included). Redis is the one at REDIS_URL, or a private redis-server when none answers. Keys
carry a per-run prefix, removed at the end; nothing else in Redis is touched. It sets
JOBSCHEDULER_DEMO=1: the tests use the demo app (its tasks, commands and receiver).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from devtools.servers import Servers, ensure_servers

_servers: Servers | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    global _servers
    # The tests schedule the demo's tasks and test its commands: settings install the demo app.
    os.environ["JOBSCHEDULER_DEMO"] = "1"
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    log_dir = Path(tempfile.mkdtemp(prefix="jobscheduler-test-"))
    _servers = ensure_servers(log_dir, ":memory:")
    os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-" + uuid.uuid4().hex)
    os.environ["JOBSCHEDULER_REDIS_PREFIX"] = f"jstest:{uuid.uuid4().hex[:12]}"
    # No TTL on the test database's runs: tests store runs that finished long ago, which the
    # server's TTL monitor would delete under them. jobs/tests/test_retention.py turns it on.
    os.environ.setdefault("JOBSCHEDULER_RUN_RETENTION_TTL", "0")
    os.environ.setdefault("JOBSCHEDULER_TEST_LOG_DIR", str(log_dir))


def pytest_unconfigure(config: pytest.Config) -> None:
    prefix = os.environ.get("JOBSCHEDULER_REDIS_PREFIX", "")
    if prefix.startswith("jstest:"):
        delete_keys_with_prefix(os.environ["REDIS_URL"], prefix)
    if _servers is not None:
        _servers.stop()


def delete_keys_with_prefix(server: Any, prefix: str) -> None:
    """Remove this run's keys only (hash-tagged keys start with '{' before the prefix) from
    ``server``: a URL, or a client (a redis.RedisCluster scans every master and deletes slot by slot)."""
    import redis

    client = redis.Redis.from_url(server) if isinstance(server, str) else server
    try:
        for pattern in (f"{prefix}*", f"{{{prefix}*"):
            batch = []
            for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    client.delete(*batch)
                    batch.clear()
            if batch:
                client.delete(*batch)
    except redis.RedisError:
        pass
