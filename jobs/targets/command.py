"""Command targets: a management command the operator allow-listed, with the arguments its rule permits.

``JOBSCHEDULER_ALLOWED_COMMANDS`` maps each command a job may run to the arguments it may
take, so allowing a command never means allowing everything it can do (``purge_runs --days 0``):

- ``[]`` (or a bare name in the environment variable's short form): no arguments at all;
- a list of argument lists, ``[["--days", "30"], ["--days", "90"]]``: exactly one of them;
- an object of options, ``{"--days": {"type": "int", "min": 7, "max": 365}}``: each option at
  most once, as ``--days 30`` or ``--days=30``, no positional arguments. Option types: ``flag``
  (no value), ``int`` (``min``/``max``), ``choice`` (``choices``), ``str`` (a ``pattern`` the
  whole value must match). ``"required": true`` makes an option mandatory.

A job's arguments are checked against the rule when it is saved and again before each run,
so narrowing the setting stops jobs saved under the old one. Commands that read or replace
secrets or data wholesale (``dumpdata``, ``shell``, ``flush``...) can never be allowed: the
system check ``jobs.E001`` refuses the setting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

FIELDS = frozenset({"command", "args"})

# Commands no job may run, whatever the setting says: they print settings or data (tokens,
# password hashes), replace data wholesale, run arbitrary code, or serve the process.
NEVER_ALLOWED = frozenset(
    {
        "changepassword",
        "createsuperuser",
        "dbshell",
        "diffsettings",
        "drf_create_token",
        "dumpdata",
        "flush",
        "loaddata",
        "makemigrations",
        "migrate",
        "run_scheduler",
        "run_worker",
        "runserver",
        "shell",
        "sqlflush",
        "squashmigrations",
        "startapp",
        "startproject",
        "testserver",
    }
)

_OPTION_TYPES = frozenset({"flag", "int", "choice", "str"})


@dataclass(frozen=True)
class Option:
    name: str
    type: str
    required: bool = False
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None

    def check(self, value: str | None) -> str | None:
        """The problem with ``value`` for this option, or None."""
        if self.type == "flag":
            return f"{self.name} takes no value." if value is not None else None
        if value is None:
            return f"{self.name} needs a value."
        if self.type == "int":
            if not re.fullmatch(r"-?[0-9]{1,18}", value):
                return f"{self.name} must be a whole number."
            number = int(value)
            if self.minimum is not None and number < self.minimum:
                return f"{self.name} must be at least {self.minimum}."
            if self.maximum is not None and number > self.maximum:
                return f"{self.name} must be at most {self.maximum}."
            return None
        if self.type == "choice":
            return None if value in self.choices else f"{self.name} must be one of: {', '.join(self.choices)}."
        assert self.pattern is not None
        return None if self.pattern.fullmatch(value) else f"{self.name} must match {self.pattern.pattern!r}."

    def describe(self) -> str:
        """The option as a person reads it: ``--days N (a whole number from 7 to 365)``."""
        if self.type == "flag":
            text = self.name
        elif self.type == "int":
            low = "" if self.minimum is None else f" from {self.minimum}"
            high = "" if self.maximum is None else f" to {self.maximum}"
            text = f"{self.name} N (a whole number{low}{high})"
        elif self.type == "choice":
            text = f"{self.name} ({' or '.join(self.choices)})"
        else:
            assert self.pattern is not None
            text = f"{self.name} VALUE (matching {self.pattern.pattern})"
        return f"{text}, required" if self.required else text


@dataclass(frozen=True)
class Rule:
    """What arguments one allowed command takes: fixed argument lists, or options."""

    argvs: tuple[tuple[str, ...], ...] = ((),)
    options: Mapping[str, Option] = field(default_factory=dict)

    def describe(self) -> str:
        """What arguments the rule allows, for the admin's command chooser."""
        if self.options:
            return "options: " + "; ".join(option.describe() for option in self.options.values())
        if self.argvs == ((),):
            return "no arguments"
        return "exactly one of: " + "; ".join(" ".join(argv) or "(none)" for argv in self.argvs)

    def check(self, args: Sequence[str]) -> str | None:
        if not self.options:
            if tuple(args) in self.argvs:
                return None
            if self.argvs == ((),):
                return "This command takes no arguments here."
            allowed = "; ".join(" ".join(argv) or "(none)" for argv in self.argvs)
            return f"These arguments are not allowed; allowed: {allowed}."
        return self._check_options(args)

    def _check_options(self, args: Sequence[str]) -> str | None:
        seen: set[str] = set()
        index = 0
        while index < len(args):
            token = args[index]
            name, equals, inline = token.partition("=")
            option = self.options.get(name)
            if option is None:
                allowed = ", ".join(sorted(self.options))
                return f"Argument {token!r} is not allowed; allowed options: {allowed}."
            if name in seen:
                return f"{name} is given twice."
            seen.add(name)
            value: str | None = inline if equals else None
            if value is None and option.type != "flag":
                index += 1
                value = args[index] if index < len(args) else None
            problem = option.check(value)
            if problem:
                return problem
            index += 1
        missing = sorted(name for name, option in self.options.items() if option.required and name not in seen)
        return f"Missing required option(s): {', '.join(missing)}." if missing else None


def _option(name: str, spec: Any) -> Option:
    if not isinstance(name, str) or not re.fullmatch(r"--?[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise ImproperlyConfigured(f"option names look like --name, not {name!r}")
    if not isinstance(spec, dict) or spec.get("type") not in _OPTION_TYPES:
        raise ImproperlyConfigured(f"option {name}: give {{'type': one of {sorted(_OPTION_TYPES)}}}")
    kind = spec["type"]
    unknown = set(spec) - {"type", "required", "min", "max", "choices", "pattern"}
    if unknown:
        raise ImproperlyConfigured(f"option {name}: unknown key(s) {sorted(unknown)}")
    choices = spec.get("choices", [])
    if kind == "choice" and not (choices and all(isinstance(choice, str) for choice in choices)):
        raise ImproperlyConfigured(f"option {name}: a choice option needs a list of string choices")
    if kind == "str" and not isinstance(spec.get("pattern"), str):
        raise ImproperlyConfigured(f"option {name}: a str option needs a pattern its values must match")
    for bound in ("min", "max"):
        if bound in spec and not (kind == "int" and isinstance(spec[bound], int)):
            raise ImproperlyConfigured(f"option {name}: {bound} is an integer bound of an int option")
    try:
        pattern = re.compile(spec["pattern"]) if kind == "str" else None
    except re.error as error:
        raise ImproperlyConfigured(f"option {name}: bad pattern ({error})") from error
    return Option(
        name=name,
        type=kind,
        required=bool(spec.get("required", False)),
        minimum=spec.get("min"),
        maximum=spec.get("max"),
        choices=tuple(choices),
        pattern=pattern,
    )


def _rule(command: str, spec: Any) -> Rule:
    if spec is None or spec == []:
        return Rule()
    if isinstance(spec, dict):
        return Rule(argvs=(), options={name: _option(name, value) for name, value in spec.items()})
    if isinstance(spec, list) and all(
        isinstance(argv, list) and all(isinstance(arg, str) for arg in argv) for argv in spec
    ):
        return Rule(argvs=tuple(tuple(argv) for argv in spec))
    raise ImproperlyConfigured(
        f"JOBSCHEDULER_ALLOWED_COMMANDS[{command!r}]: give [] (no arguments), a list of argument lists, "
        "or an object of options"
    )


def parse_allowed(value: Any) -> dict[str, Rule]:
    """The rules of a ``JOBSCHEDULER_ALLOWED_COMMANDS`` value (raises ImproperlyConfigured)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError as error:
                raise ImproperlyConfigured(f"JOBSCHEDULER_ALLOWED_COMMANDS is not valid JSON: {error}") from error
        else:
            value = [name.strip() for name in text.split(",") if name.strip()]
    if isinstance(value, (list, tuple)):  # names only: each allowed without arguments
        value = dict.fromkeys(value)
    if not isinstance(value, dict):
        raise ImproperlyConfigured("JOBSCHEDULER_ALLOWED_COMMANDS must map command names to argument rules")
    forbidden = sorted(set(value) & NEVER_ALLOWED)
    if forbidden:
        raise ImproperlyConfigured(
            f"JOBSCHEDULER_ALLOWED_COMMANDS names {', '.join(forbidden)}, which no job may run "
            "(they expose secrets or replace data wholesale)"
        )
    return {str(name): _rule(str(name), spec) for name, spec in value.items()}


def allowed_rules() -> dict[str, Rule]:
    return parse_allowed(getattr(settings, "JOBSCHEDULER_ALLOWED_COMMANDS", {}))


def allowed_commands() -> list[str]:
    return sorted(allowed_rules())


def clean(target: dict[str, Any]) -> str | None:
    """The problem with a command target under today's setting, or None; checked on save and on run."""
    name = target.get("command")
    args = target.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        return "args must be a list of strings."
    try:
        rules = allowed_rules()
    except ImproperlyConfigured as error:
        return f"Command targets are misconfigured: {error}"
    rule = rules.get(name) if isinstance(name, str) else None
    if rule is None:
        return f"Command {name!r} is not in JOBSCHEDULER_ALLOWED_COMMANDS."
    problem = rule.check(args)
    return f"Command {name!r}: {problem}" if problem else None
