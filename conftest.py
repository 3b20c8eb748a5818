"""Fixtures shared by every app's tests. Servers come from jobscheduler.devtools.pytest_servers."""

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

from jobscheduler.devtools.pytest_servers import delete_keys_with_prefix
from schedules import store as store_module


@pytest.fixture
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDIS_URL"])


@pytest.fixture(autouse=True)
def store(redis_client: redis.Redis) -> Iterator[store_module.RedisStore]:
    """A Redis store with keys private to this test, used by every service call."""
    prefix = f"{os.environ['JOBSCHEDULER_REDIS_PREFIX']}:{uuid.uuid4().hex[:8]}"
    test_store = store_module.RedisStore(client=redis_client, prefix=prefix, shards=4)
    previous = store_module._default_store
    store_module._default_store = test_store
    yield test_store
    store_module._default_store = previous
    delete_keys_with_prefix(os.environ["REDIS_URL"], prefix)


@pytest.fixture
def user(db: Any) -> User:
    return User.objects.create_user("alice", "alice@example.com", "alice-password-1")


@pytest.fixture
def other_user(db: Any) -> User:
    return User.objects.create_user("bob", "bob@example.com", "bob-password-1")


@pytest.fixture
def api(user: User) -> APIClient:
    client = APIClient()
    token = Token.objects.create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def job(user: User) -> Any:
    from jobs.services import job_create

    return job_create(owner=user, name="hello", target_type="python", target={"function": "demo.hello"})


@pytest.fixture
def process_env(store: store_module.RedisStore) -> dict[str, str]:
    """Environment for a manage.py subprocess that shares this test's MongoDB and Redis keys."""
    from django.db import connection

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "jobscheduler.settings",
        "DJANGO_DEBUG": "1",
        "MONGODB_DB": connection.settings_dict["NAME"],
        "JOBSCHEDULER_REDIS_PREFIX": store.prefix,
        "JOBSCHEDULER_SHARDS": str(store.shards),
        "JOBSCHEDULER_LOG_LEVEL": "WARNING",
    }
