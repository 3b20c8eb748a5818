"""The OpenAPI schema and the docs page: valid, complete, and served without any CDN."""

from __future__ import annotations

import re

import pytest
import yaml
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client, override_settings
from drf_spectacular.validation import validate_schema


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    cache.delete_pattern("throttle_*")  # type: ignore[attr-defined]


@pytest.fixture
def client(client: Client, user: User) -> Client:
    """A logged-in browser: the schema and docs are for signed-in users by default."""
    client.force_login(user)
    return client


def test_schema_is_valid_openapi_with_every_path(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/jobs/",
        "/api/jobs/{id}/",
        "/api/jobs/{id}/run/",
        "/api/schedules/",
        "/api/schedules/{id}/",
        "/api/schedules/{id}/pause/",
        "/api/schedules/{id}/resume/",
        "/api/schedules/{id}/preview/",
        "/api/schedules/preview/",
        "/api/runs/",
        "/api/runs/{id}/",
    ):
        assert path in schema["paths"], path
    components = schema["components"]["schemas"]
    # Ids are strings (ObjectIds), never the integers DRF would guess.
    for name in ("Job", "Schedule", "Run"):
        assert components[name]["properties"]["id"]["type"] == "string"
    assert components["Schedule"]["properties"]["job"]["type"] == "string"
    assert components["Run"]["properties"]["schedule"]["type"] == "string"
    assert components["Job"]["properties"]["secret"]["writeOnly"] is True
    # A schedule in words: read-only, documented with examples.
    description = components["Schedule"]["properties"]["description"]
    assert description["type"] == "string" and description["readOnly"] is True
    assert "At 02:30, Monday through Friday" in description["description"]
    parameter = schema["paths"]["/api/jobs/{id}/"]["get"]["parameters"][0]
    assert parameter["schema"]["type"] == "string"


def test_schema_yaml_is_served_too(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert yaml.safe_load(response.content)["info"]["title"] == "jobscheduler API"


def test_schema_generates_without_warnings(tmp_path):
    # --fail-on-warn turns any field or path drf-spectacular cannot type into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))


def test_docs_page_loads_only_local_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert not re.search(r"https?://", html), "the docs page must not reference external URLs"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui-bundle" in asset for asset in assets)
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not a packaged static file"


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_schema_and_docs_need_a_login_by_default(path):
    assert settings.JOBSCHEDULER_PUBLIC_API_DOCS is False
    response = Client().get(path)
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_schema_and_docs_answer_a_token(path, api):
    assert api.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_schema_and_docs_can_be_public(path, db):
    with override_settings(JOBSCHEDULER_PUBLIC_API_DOCS=True):
        assert Client().get(path).status_code == 200
