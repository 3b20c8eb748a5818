"""Liveness, readiness and Prometheus metrics endpoints for operators and orchestrators."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

import pymongo
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from jobscheduler import redis_cluster
from jobscheduler.keyspace import redis_client

logger = logging.getLogger(__name__)


def mongodb_client() -> Any:
    """The project's MongoDB client (the ORM connection's)."""
    connection = connections["default"]
    connection.ensure_connection()
    return connection.connection


def ping_mongodb() -> None:
    # Bounded: a probe gets its answer within seconds while MongoDB is away (the driver's own
    # server selection would wait MONGODB_TIMEOUT_MS).
    with pymongo.timeout(READY_TIMEOUT_SECONDS):
        mongodb_client().admin.command("ping")


def ping_redis() -> None:
    client = redis_client()
    if redis_cluster.is_cluster(client):
        redis_cluster.ping_every_master(client)  # a master without a live replica is a node down
    else:
        client.ping()


READY_TIMEOUT_SECONDS = 2.0

# What readiness needs, by name; each raises when its server does not answer.
CHECKS: dict[str, Callable[[], None]] = {"mongodb": ping_mongodb, "redis": ping_redis}


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up and serving; touches no server, so a database outage never restarts it."""
    return JsonResponse({"status": "ok"})


@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    """200 when MongoDB and Redis both answer; 503 naming the ones that did not.

    ``checks`` says "ok" or "down" for each; ``failed`` gives each down one's error type.
    While one is down, schedulers and workers ride the outage out (jobscheduler.outages).
    """
    failed: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as error:
            # The response names the failing server only; details go to the log, not the world.
            logger.warning("readiness check failed", extra={"check": name, "error": repr(error)})
            failed[name] = type(error).__name__
    if failed:
        checks = {name: "down" if name in failed else "ok" for name in CHECKS}
        return JsonResponse({"status": "unavailable", "checks": checks, "failed": failed}, status=503)
    return JsonResponse({"status": "ok", "checks": dict.fromkeys(CHECKS, "ok")})


def _scraper_allowed(request: HttpRequest) -> bool:
    """True without ``JOBSCHEDULER_METRICS_TOKEN``; with it, only for ``Authorization: Bearer <it>``."""
    token: str = getattr(settings, "JOBSCHEDULER_METRICS_TOKEN", "")
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Constant time, so the token cannot be guessed a character at a time from response times.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, from the default registry the engine's metrics register with."""
    if not _scraper_allowed(request):
        response = HttpResponse("Unauthorized: send Authorization: Bearer <JOBSCHEDULER_METRICS_TOKEN>.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
