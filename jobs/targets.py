"""What a run does: the registry of Python functions and the shape of each target type.

``@task`` registers a function under a name; only registered names can be targeted.
Management commands must be allow-listed in ``JOBSCHEDULER_ALLOWED_COMMANDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_BODY_CHARS = 64 * 1024

_registry: dict[str, Callable[..., Any]] = {}


def task(name: str | Callable[..., Any] | None = None) -> Any:
    """Register a function as a python target: ``@task`` or ``@task("name")``."""

    def register(function: Callable[..., Any], task_name: str | None = None) -> Callable[..., Any]:
        key = task_name or f"{function.__module__}.{function.__qualname__}"
        _registry[key] = function
        return function

    if callable(name):
        return register(name)
    return lambda function: register(function, name)


def registered_tasks() -> dict[str, Callable[..., Any]]:
    return dict(_registry)


def allowed_commands() -> list[str]:
    return list(getattr(settings, "JOBSCHEDULER_ALLOWED_COMMANDS", []))


def clean_target(target_type: str, target: Any) -> dict[str, str]:
    """Return a message per problem with a target (under the key ``target``)."""
    if not isinstance(target, dict):
        return {"target": "Must be a JSON object."}
    cleaner = _CLEANERS.get(target_type)
    if cleaner is None:
        return {"target_type": f"Unknown target type {target_type!r}."}
    message = cleaner(target)
    return {"target": message} if message else {}


def _clean_python(target: dict[str, Any]) -> str | None:
    name = target.get("function")
    if name not in _registry:
        known = ", ".join(sorted(_registry)) or "none"
        return f"Function {name!r} is not registered with @task; registered: {known}."
    if not isinstance(target.get("kwargs", {}), dict):
        return "kwargs must be a JSON object."
    return _unknown_keys(target, {"function", "kwargs"})


def _clean_command(target: dict[str, Any]) -> str | None:
    name = target.get("command")
    if name not in allowed_commands():
        return f"Command {name!r} is not in JOBSCHEDULER_ALLOWED_COMMANDS."
    args = target.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        return "args must be a list of strings."
    return _unknown_keys(target, {"command", "args"})


def _clean_http(target: dict[str, Any]) -> str | None:
    url = target.get("url")
    if not isinstance(url, str):
        return "url is required."
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"url must be an absolute http(s) URL; got {url!r}."
    if parts.username or parts.password:
        return "url must not carry credentials; use headers."
    method = target.get("method", "POST")
    if method not in HTTP_METHODS:
        return f"method must be one of {', '.join(HTTP_METHODS)}."
    headers = target.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        return "headers must be an object of strings."
    body = target.get("body", "")
    if not isinstance(body, str) or len(body) > MAX_BODY_CHARS:
        return f"body must be a string of at most {MAX_BODY_CHARS} characters."
    return _unknown_keys(target, {"url", "method", "headers", "body"})


def _unknown_keys(target: dict[str, Any], known: set[str]) -> str | None:
    unknown = sorted(set(target) - known)
    return f"Unknown target field(s): {', '.join(unknown)}." if unknown else None


_CLEANERS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "python": _clean_python,
    "command": _clean_command,
    "http": _clean_http,
}
