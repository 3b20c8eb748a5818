"""Fixtures shared by every app's tests. Servers come from devtools.pytest_servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from devtools.cluster import LocalCluster
from devtools.pytest_servers import delete_keys_with_prefix
from jobs.permissions import JOB_PERMISSIONS
from jobs.runqueue import RunQueue
from jobscheduler.coordination import Coordination
from jobscheduler.keyspace import Keyspace, use_keyspace
from jobscheduler.redis_cluster import connect as redis_cluster_client
from schedules.due_index import DueIndex, get_due_index


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``@pytest.mark.redis_modes("single", "cluster")``: the test runs on each (see redis_mode)."""
    marker = metafunc.definition.get_closest_marker("redis_modes")
    if marker is not None and "redis_mode" in metafunc.fixturenames:
        metafunc.parametrize("redis_mode", list(marker.args), indirect=True)


@pytest.fixture
def redis_mode(request: pytest.FixtureRequest) -> str:
    """'single' (the Redis at REDIS_URL) unless the test is marked to run on a Redis Cluster too."""
    return str(getattr(request, "param", "single"))


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three masters and three replicas on loopback, started at the first test that needs them."""
    cluster = LocalCluster.start(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, redis_mode: str) -> str:
    if redis_mode == "cluster":
        return request.getfixturevalue("redis_cluster").url  # type: ignore[no-any-return]
    return os.environ["REDIS_URL"]


@pytest.fixture
def redis_client(redis_url: str, redis_mode: str) -> Iterator[Any]:
    """A redis.Redis, or a redis.RedisCluster in cluster mode."""
    client = redis_cluster_client(redis_url) if redis_mode == "cluster" else redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def keyspace(redis_client: Any) -> Iterator[Keyspace]:
    """Redis keys private to this test (4 shards), the default for every service call."""
    prefix = f"{os.environ['JOBSCHEDULER_REDIS_PREFIX']}:{uuid.uuid4().hex[:8]}"
    test_keyspace = Keyspace(redis_client, prefix, 4)
    previous = use_keyspace(test_keyspace)
    yield test_keyspace
    use_keyspace(previous)
    delete_keys_with_prefix(redis_client, prefix)


@pytest.fixture
def due_index(keyspace: Keyspace) -> DueIndex:
    """The due index the services write to (this test's keys)."""
    return get_due_index()


@pytest.fixture
def runqueue(keyspace: Keyspace) -> RunQueue:
    return RunQueue(keyspace)


@pytest.fixture
def coordination(keyspace: Keyspace) -> Coordination:
    return Coordination(keyspace)


def trust_with_every_target(person: User) -> User:
    """Grant ``person`` the target permissions (jobs.permissions) an operator gives trusted users."""
    from django.contrib.auth.models import Permission

    codenames = [codename for codename, _ in JOB_PERMISSIONS]
    person.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobs", codename__in=codenames))
    return person


@pytest.fixture
def user(db: Any) -> User:
    """A user trusted with every target type; ``plain_user`` holds no permission at all."""
    return trust_with_every_target(User.objects.create_user("alice", "alice@example.com", "alice-password-1"))


@pytest.fixture
def other_user(db: Any) -> User:
    return trust_with_every_target(User.objects.create_user("bob", "bob@example.com", "bob-password-1"))


@pytest.fixture
def plain_user(db: Any) -> User:
    return User.objects.create_user("mallory", "mallory@example.com", "mallory-password-1")


@pytest.fixture
def api(user: User) -> APIClient:
    client = APIClient()
    token = Token.objects.create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def job(user: User) -> Any:
    from jobs.services import job_create

    return job_create(owner=user, name="hello", target_type="python", target={"task": "demo.tasks.hello"})


@pytest.fixture
def process_env(keyspace: Keyspace, redis_url: str) -> dict[str, str]:
    """Environment for a manage.py subprocess that shares this test's MongoDB and Redis keys."""
    from django.db import connection

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "jobscheduler.settings",
        "DJANGO_DEBUG": "1",
        "MONGODB_DB": connection.settings_dict["NAME"],
        "REDIS_URL": redis_url,
        "JOBSCHEDULER_REDIS_CLUSTER": "1" if keyspace.cluster else "",
        "JOBSCHEDULER_REDIS_PREFIX": keyspace.prefix,
        "JOBSCHEDULER_SHARDS": str(keyspace.shards),
        "JOBSCHEDULER_LOG_LEVEL": "WARNING",
    }
