"""The admin login's lockout (django-axes on MongoDB), through the real login view.

A username and address pair is locked out after JOBSCHEDULER_LOGIN_FAILURE_LIMIT failures
for the cool-off; other pairs are not, and X-Forwarded-For does not move the address unless
a proxy is trusted.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils import timezone

LOGIN = "/admin/login/"
PASSWORD = "the-right-password-1"


@pytest.fixture
def staff(db: Any) -> User:
    return User.objects.create_user("operator", "operator@example.com", PASSWORD, is_staff=True)


def log_in(password: str, *, address: str = "192.0.2.1", username: str = "operator", **headers: str) -> int:
    """The status of one login through the admin's form from ``address`` (302: logged in)."""
    client = Client(REMOTE_ADDR=address, headers=headers)
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}).status_code


def fail(times: int, **kwargs: Any) -> list[int]:
    return [log_in("wrong-password", **kwargs) for _ in range(times)]


def test_the_defaults_lock_a_username_and_address_pair_after_five_failures() -> None:
    assert settings.AXES_FAILURE_LIMIT == 5
    assert timedelta(minutes=15) == settings.AXES_COOLOFF_TIME
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_a_locked_out_pair_is_refused_even_with_the_right_password(staff: User) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    statuses = fail(limit)
    assert statuses[:-1] == [200] * (limit - 1)  # the form again, with an error
    assert statuses[-1] == 429  # the limit-th failure locks
    assert log_in(PASSWORD) == 429
    attempt = AccessAttempt.objects.get(username="operator", ip_address="192.0.2.1")
    assert attempt.failures_since_start >= limit


def test_other_addresses_and_usernames_are_not_locked_out(staff: User) -> None:
    fail(settings.AXES_FAILURE_LIMIT)
    assert log_in(PASSWORD, address="192.0.2.2") == 302
    assert log_in("wrong-password", username="someone-else") == 200


def test_the_lockout_ends_after_the_cool_off(staff: User) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        fail(settings.AXES_FAILURE_LIMIT)
        clock.shift(settings.AXES_COOLOFF_TIME + timedelta(seconds=1))
        assert log_in(PASSWORD) == 302


def test_an_attempt_during_the_lockout_starts_the_cool_off_again(staff: User) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        fail(settings.AXES_FAILURE_LIMIT)
        clock.shift(settings.AXES_COOLOFF_TIME - timedelta(seconds=30))
        assert log_in(PASSWORD) == 429  # still locked; and this attempt counts
        clock.shift(timedelta(seconds=31))
        assert log_in(PASSWORD) == 429
        clock.shift(settings.AXES_COOLOFF_TIME + timedelta(seconds=1))
        assert log_in(PASSWORD) == 302


def test_a_successful_login_resets_the_count(staff: User) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    fail(limit - 1)
    assert log_in(PASSWORD) == 302
    assert fail(limit - 1) == [200] * (limit - 1)


def test_a_forged_x_forwarded_for_does_not_escape_the_lockout(staff: User) -> None:
    fail(settings.AXES_FAILURE_LIMIT)
    assert log_in(PASSWORD, **{"X-Forwarded-For": "198.51.100.9"}) == 429


def test_code_may_still_authenticate_without_a_request(staff: User) -> None:
    assert authenticate(username="operator", password=PASSWORD) == staff


def test_behind_a_trusted_proxy_the_lockout_is_per_forwarded_client(staff: User) -> None:
    one_proxy = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    with override_settings(REST_FRAMEWORK=one_proxy):
        fail(settings.AXES_FAILURE_LIMIT, address="10.0.0.1", **{"X-Forwarded-For": "192.0.2.50"})
        assert log_in(PASSWORD, address="10.0.0.1", **{"X-Forwarded-For": "192.0.2.50"}) == 429
        assert log_in(PASSWORD, address="10.0.0.1", **{"X-Forwarded-For": "192.0.2.51"}) == 302
    assert AccessAttempt.objects.filter(ip_address="192.0.2.50").exists()


def test_superusers_see_the_attempts_in_the_admin(staff: User, admin_client: Client) -> None:
    fail(2)
    page = admin_client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200
    assert b"192.0.2.1" in page.content
