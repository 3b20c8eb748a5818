"""Liveness, readiness and metrics endpoints, against the real servers and genuinely dead ports."""

from __future__ import annotations

import socket
from typing import Any

import pymongo
import pytest
import redis
from django.test import override_settings
from prometheus_client import REGISTRY, Counter

from jobscheduler import health


def dead_port() -> int:
    """A local port nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def dead_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    client = redis.Redis(port=dead_port(), socket_connect_timeout=1)
    monkeypatch.setattr(health, "redis_client", lambda: client)


@pytest.fixture
def dead_mongodb(monkeypatch: pytest.MonkeyPatch) -> Any:
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(port=dead_port(), serverSelectionTimeoutMS=300)
    monkeypatch.setattr(health, "mongodb_client", lambda: client)
    yield
    client.close()


def test_healthz_answers_without_touching_any_server(client, dead_redis, dead_mongodb):
    # No db fixture: pytest-django would fail the test on any database access.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_200_when_both_servers_answer(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"mongodb": "ok", "redis": "ok"}}


def test_readyz_is_503_naming_redis(client, db, dead_redis):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"] == {"mongodb": "ok", "redis": "down"}
    assert response.json()["failed"] == {"redis": "ConnectionError"}


def test_readyz_is_503_naming_mongodb(client, db, dead_mongodb):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"mongodb": "down", "redis": "ok"}
    assert response.json()["failed"] == {"mongodb": "ServerSelectionTimeoutError"}


def test_readyz_names_both_when_both_fail(client, db, dead_mongodb, dead_redis):
    assert set(client.get("/readyz").json()["failed"]) == {"mongodb", "redis"}


def test_health_endpoints_need_no_login_and_take_no_writes(client, db):
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405
    assert client.post("/metrics").status_code == 405


def test_metrics_serves_the_default_registry_in_prometheus_text(client):
    counter = Counter("jobscheduler_test_probe_total", "A metric registered by this test.")
    counter.inc(3)
    try:
        response = client.get("/metrics")
    finally:
        REGISTRY.unregister(counter)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    assert "jobscheduler_test_probe_total 3.0" in text
    assert "# TYPE jobscheduler_test_probe_total counter" in text


# --- /metrics behind an optional bearer token --------------------------------------------------------

METRICS_TOKEN = "metrics-token-of-this-test"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", f"Token {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x", METRICS_TOKEN],
)
def test_metrics_with_a_token_set_refuses_anything_but_that_bearer_token(client, authorization):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    with override_settings(JOBSCHEDULER_METRICS_TOKEN=METRICS_TOKEN):
        response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"# TYPE" not in response.content


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_metrics_with_a_token_set_answers_that_bearer_token(client, scheme):
    with override_settings(JOBSCHEDULER_METRICS_TOKEN=METRICS_TOKEN):
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"{scheme} {METRICS_TOKEN}")
    assert response.status_code == 200
    assert b"# TYPE" in response.content


def test_metrics_without_a_token_set_is_open(client):
    with override_settings(JOBSCHEDULER_METRICS_TOKEN=""):
        assert client.get("/metrics").status_code == 200
