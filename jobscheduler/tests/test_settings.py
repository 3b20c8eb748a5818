"""Settings read from the environment: production HTTPS, the proxy in front, and `check --deploy`.

Settings are read once per process, so each environment is tried in a fresh one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]
# What an operator sets for production behind a TLS-terminating proxy (the README's example).
PRODUCTION = {
    "DJANGO_SECRET_KEY": "k3Zx9-production-like-secret-key-of-more-than-fifty-characters-qW7",
    "DJANGO_ALLOWED_HOSTS": "jobs.example.com",
    "JOBSCHEDULER_SECURE_SSL_REDIRECT": "1",
    "JOBSCHEDULER_HSTS_SECONDS": "31536000",
    "JOBSCHEDULER_HSTS_INCLUDE_SUBDOMAINS": "1",
    "JOBSCHEDULER_HSTS_PRELOAD": "1",
    "JOBSCHEDULER_PROXY_SSL_HEADER": "X-Forwarded-Proto",
    "JOBSCHEDULER_TRUSTED_PROXY_COUNT": "1",
}
PROBE = """
import json
import django
django.setup()
from django.conf import settings
names = ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
         "SECURE_PROXY_SSL_HEADER", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_REDIRECT_EXEMPT",
         "AXES_FAILURE_LIMIT", "AXES_COOLOFF_TIME")
print(json.dumps({**{name: getattr(settings, name, None) for name in names},
                  "NUM_PROXIES": settings.REST_FRAMEWORK["NUM_PROXIES"]}, default=str))
"""


def environment(**overrides: str) -> dict[str, str]:
    """This process's environment without debugging or the demo, plus ``overrides``."""
    env = {name: value for name, value in os.environ.items() if name not in ("JOBSCHEDULER_DEMO", "DJANGO_DEBUG")}
    env = {name: value for name, value in env.items() if name not in PRODUCTION}
    return {**env, "DJANGO_SETTINGS_MODULE": "jobscheduler.settings", **overrides}


def read_settings(**overrides: str) -> dict[str, object]:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=environment(**overrides), capture_output=True, text=True
    )
    assert probe.returncode == 0, probe.stderr
    return json.loads(probe.stdout)


def check_deploy(**overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment(**overrides),
        capture_output=True,
        text=True,
    )


def test_check_deploy_is_clean_in_a_production_like_environment() -> None:
    result = check_deploy(**PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_warns_without_the_https_settings() -> None:
    result = check_deploy(DJANGO_SECRET_KEY=PRODUCTION["DJANGO_SECRET_KEY"])
    assert result.returncode != 0
    assert "security.W004" in result.stderr  # no HSTS
    assert "security.W008" in result.stderr  # no SSL redirect


def test_production_https_settings_come_from_the_environment() -> None:
    seen = read_settings(**{**PRODUCTION, "JOBSCHEDULER_HSTS_PRELOAD": "yes"})
    assert seen["SECURE_SSL_REDIRECT"] is True
    assert seen["SECURE_HSTS_SECONDS"] == 31536000
    assert seen["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert seen["SECURE_HSTS_PRELOAD"] is True
    assert seen["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert seen["SESSION_COOKIE_SECURE"] is True and seen["CSRF_COOKIE_SECURE"] is True
    assert seen["NUM_PROXIES"] == 1


def test_by_default_no_proxy_is_trusted_and_nothing_is_forced() -> None:
    seen = read_settings(DJANGO_SECRET_KEY=PRODUCTION["DJANGO_SECRET_KEY"])
    assert seen["NUM_PROXIES"] == 0
    assert seen["SECURE_PROXY_SSL_HEADER"] is None
    assert seen["SECURE_SSL_REDIRECT"] is False
    assert seen["SECURE_HSTS_SECONDS"] == 0
    assert seen["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False and seen["SECURE_HSTS_PRELOAD"] is False
    assert seen["SESSION_COOKIE_SECURE"] is True and seen["CSRF_COOKIE_SECURE"] is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JOBSCHEDULER_TRUSTED_PROXY_COUNT", "-1"),
        ("JOBSCHEDULER_PROXY_SSL_HEADER", "X Forwarded Proto"),
        ("JOBSCHEDULER_HSTS_SECONDS", "a year"),
        ("JOBSCHEDULER_WEBHOOK_ALLOWED_PORTS", "443,https"),
    ],
)
def test_bad_values_stop_the_process_with_the_variable_named(name: str, value: str) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=environment(DJANGO_SECRET_KEY="x", **{name: value}),
        capture_output=True,
        text=True,
    )
    assert probe.returncode != 0
    assert name in probe.stderr


def test_behind_a_proxy_https_is_seen_through_its_header(client) -> None:
    with override_settings(SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        assert client.get("/healthz", HTTP_X_FORWARDED_PROTO="https").status_code == 200
        redirected = client.get("/api/", HTTP_X_FORWARDED_PROTO="http")
        assert redirected.status_code == 301
        assert redirected["Location"].startswith("https://")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_scrapes_over_plain_http_are_not_redirected(client, db, path: str) -> None:
    with override_settings(SECURE_SSL_REDIRECT=True, JOBSCHEDULER_METRICS_TOKEN=""):
        assert client.get(path).status_code == 200


MONGO_PROBE = """
import json
import django
django.setup()
from django.conf import settings
print(json.dumps({"options": settings.DATABASES["default"]["OPTIONS"],
                  "ttl": settings.JOBSCHEDULER_RUN_RETENTION_TTL, "days": settings.JOBSCHEDULER_RUN_RETENTION_DAYS}))
"""


def mongo_settings(**overrides: str) -> dict[str, Any]:
    # Without what devtools.pytest_servers sets for the tests (retryable writes and the TTL off).
    env = {
        name: value
        for name, value in environment(DJANGO_SECRET_KEY="x", **overrides).items()
        if name not in ("MONGODB_RETRY_WRITES", "JOBSCHEDULER_RUN_RETENTION_TTL") or name in overrides
    }
    probe = subprocess.run([sys.executable, "-c", MONGO_PROBE], cwd=ROOT, env=env, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    return json.loads(probe.stdout)


def test_mongodb_concerns_default_to_majority_and_retryable_writes_to_the_uris_choice() -> None:
    found = mongo_settings()
    assert {key: found["options"].get(key) for key in ("w", "wTimeoutMS", "readConcernLevel")} == {
        "w": "majority",
        "wTimeoutMS": 10_000,
        "readConcernLevel": "majority",
    }
    assert "retryWrites" not in found["options"]  # pymongo's default (on), or the URI's retryWrites
    assert (found["ttl"], found["days"]) == (False, 30)  # no run is deleted unless asked


def test_mongodb_concerns_and_retention_from_the_environment() -> None:
    found = mongo_settings(
        MONGODB_WRITE_CONCERN="1",
        MONGODB_READ_CONCERN="local",
        MONGODB_RETRY_WRITES="0",
        JOBSCHEDULER_RUN_RETENTION_DAYS="7",
        JOBSCHEDULER_RUN_RETENTION_TTL="1",
    )
    assert (found["options"]["w"], found["options"]["readConcernLevel"], found["options"]["retryWrites"]) == (
        1,
        "local",
        False,
    )
    assert (found["ttl"], found["days"]) == (True, 7)
    assert mongo_settings(MONGODB_RETRY_WRITES="1")["options"]["retryWrites"] is True
