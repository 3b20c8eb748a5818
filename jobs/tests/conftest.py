"""Fixtures for the webhook tests (``test_http_*``): settings without an allow-list, a canary, a receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings

from jobs.tests.webhook_doubles import Canary, Receiver


@pytest.fixture
def no_allow_list() -> Iterator[None]:
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=[], JOBSCHEDULER_WEBHOOK_EXCERPT_CHARS=2000):
        yield


@pytest.fixture
def allow_loopback() -> Iterator[None]:
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
        yield


@pytest.fixture
def canary() -> Iterator[Canary]:
    listener = Canary()
    yield listener
    listener.close()


@pytest.fixture
def receiver(canary: Canary) -> Iterator[Receiver]:
    server = Receiver(canary_port=canary.port).start()
    yield server
    server.stop()
