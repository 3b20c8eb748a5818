"""Readers for the files in deploy/ that test_deploy checks: systemd units, the environment file
template, and the environment variables a Python module reads (found in its source).

Strict on purpose: a line these readers do not understand is an error, not something skipped.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
ENV_TEMPLATE = DEPLOY / "jobscheduler.env"
CRONTAB = DEPLOY / "cron.d" / "jobscheduler"

# Where the units, the crontab and the README's install steps put things.
INSTALL_DIR = "/opt/jobscheduler"
PYTHON = f"{INSTALL_DIR}/.venv/bin/python"
GUNICORN = f"{INSTALL_DIR}/.venv/bin/gunicorn"
MANAGE = f"{INSTALL_DIR}/manage.py"
ENV_FILE = "/etc/jobscheduler/jobscheduler.env"
USER = "jobscheduler"

# The directives the units may use, by section: systemd's names (test_deploy checks this list
# against systemd's own where systemd is installed), so a misspelt one fails without systemd too.
KNOWN_DIRECTIVES = {
    "Unit": {"Description", "Documentation", "After", "Before", "Wants", "Requires", "PartOf", "BindsTo", "Conflicts"},
    "Service": {
        "Type",
        "NotifyAccess",
        "User",
        "Group",
        "WorkingDirectory",
        "EnvironmentFile",
        "Environment",
        "ExecStartPre",
        "ExecStart",
        "ExecReload",
        "ExecStop",
        "RuntimeDirectory",
        "KillMode",
        "KillSignal",
        "TimeoutStartSec",
        "TimeoutStopSec",
        "Restart",
        "RestartSec",
        "SyslogIdentifier",
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "RestrictAddressFamilies",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "LockPersonality",
        "SystemCallArchitectures",
        "SystemCallFilter",
        "CapabilityBoundingSet",
        "ReadWritePaths",
        "UMask",
    },
    "Timer": {"OnCalendar", "OnBootSec", "OnUnitActiveSec", "AccuracySec", "RandomizedDelaySec", "Persistent", "Unit"},
    "Install": {"WantedBy", "RequiredBy", "Also"},
}
EXEC_KEYS = ("ExecStartPre", "ExecStart", "ExecReload", "ExecStop")


@dataclass
class Unit:
    path: Path
    sections: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    def values(self, section: str, key: str) -> list[str]:
        return [value for name, value in self.sections.get(section, []) if name == key]

    def names(self, section: str, key: str) -> list[str]:
        """The units a list-valued directive names (WantedBy=, PartOf=, ...), space-separated."""
        return [name for value in self.values(section, key) for name in value.split()]

    def value(self, section: str, key: str, default: str | None = None) -> str | None:
        """The setting in force: for a directive set twice, systemd takes the last."""
        found = self.values(section, key)
        return found[-1] if found else default

    def commands(self) -> list[list[str]]:
        """Every Exec*= command line as argv (systemd's prefixes such as '-' dropped)."""
        return [shlex.split(value.lstrip("-@:+!")) for key in EXEC_KEYS for value in self.values("Service", key)]


def parse_unit(path: Path) -> Unit:
    """Read a unit file as systemd does, refusing what systemd would ignore with a warning."""
    unit = Unit(path)
    section: str | None = None
    lines = path.read_text().split("\n")
    number = 0
    while number < len(lines):
        line = lines[number].strip()
        number += 1
        while line.endswith("\\") and number < len(lines):  # a continued line
            line = line[:-1].rstrip() + " " + lines[number].strip()
            number += 1
        if not line or line[0] in "#;":
            continue
        if match := re.fullmatch(r"\[([A-Za-z]+)\]", line):
            section = match[1]
            if section not in KNOWN_DIRECTIVES or section in unit.sections:
                raise ValueError(f"{path.name}:{number}: unknown or repeated section [{section}]")
            unit.sections[section] = []
            continue
        match = re.fullmatch(r"([A-Za-z]+)=(.*)", line)
        if match is None or section is None:
            raise ValueError(f"{path.name}:{number}: not a directive in a section: {line!r}")
        if match[1] not in KNOWN_DIRECTIVES[section]:
            raise ValueError(f"{path.name}:{number}: unknown directive {match[1]} in [{section}]")
        unit.sections[section].append((match[1], match[2].strip()))
    return unit


def units() -> dict[str, Unit]:
    return {path.name: parse_unit(path) for path in sorted(UNITS.iterdir())}


_TIMESPAN_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


def timespan_seconds(text: str) -> float:
    """A systemd time span ("330", "5s", "1min 30s") in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text)
    if not parts or re.sub(r"[\d.\sa-z]", "", text):
        raise ValueError(f"not a time span: {text!r}")
    return sum(float(amount) * _TIMESPAN_UNITS[unit or "s"] for amount, unit in parts)


# --- The environment file template ----------------------------------------------------------------

_VARIABLE = re.compile(r"(#?)([A-Z][A-Z0-9_]*)=(.*)")


@dataclass
class Variable:
    name: str
    value: str  # quotes removed
    is_set: bool  # NAME=value; False for #NAME=default
    line: int


def parse_env_template(text: str) -> list[Variable]:
    """The template's variables. Every line is blank, a comment ('# ...'), NAME=value or
    #NAME=default, and every variable has a comment line right above it (or its own group's)."""
    variables = []
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        match = _VARIABLE.fullmatch(line)
        if match is None:
            if line and not line.startswith("# ") and line != "#":
                raise ValueError(f"line {number}: neither a comment nor NAME=value: {line!r}")
            continue
        above = lines[number - 2] if number > 1 else ""
        if not above.startswith("# "):
            raise ValueError(f"line {number}: {match[2]} has no comment right above it")
        raw = match[3]
        if raw[:1] == "'" and raw[-1:] == "'" and len(raw) > 1:
            value = raw[1:-1]
        elif re.search(r"\s|['\"]", raw):
            raise ValueError(f"line {number}: quote the value of {match[2]} in single quotes")
        else:
            value = raw
        if re.search(r"[$`\\]", value):
            raise ValueError(f"line {number}: $, ` and \\ read differently in sh and systemd")
        variables.append(Variable(match[2], value, is_set=not match[1], line=number))
    return variables


# --- Environment variables read by Python source -----------------------------------------------

NO_DEFAULT = object()  # read without a default, or with one that is not a literal


def environment_reads(source: str) -> dict[str, list[object]]:
    """The environment variables a module reads, each with the literal default of each read.

    A read is ``os.environ.get("X", ...)``, ``os.environ["X"]``, ``"X" in os.environ``, or a
    call of any function with "env" in its name whose first argument is a variable's name
    (``os.getenv("X")``, the settings' ``env_bool("X")``, a helper such as ``_env_flag("X")``).
    Writes (``os.environ["X"] = ...``, ``setdefault``) are not reads.
    """
    reads: dict[str, list[object]] = {}
    for node in ast.walk(ast.parse(source)):
        name, default = _read_in(node)
        if name is not None:
            reads.setdefault(name, []).append(default)
    return reads


def _read_in(node: ast.AST) -> tuple[str | None, object]:
    if isinstance(node, ast.Call) and node.args and _variable_name(node.args[0]):
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        owner = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
        if (owner.endswith("environ") and called == "get") or "env" in called.lower():
            given = node.args[1] if len(node.args) > 1 else None
            given = next((k.value for k in node.keywords if k.arg == "default"), given)
            return _variable_name(node.args[0]), _literal(given)
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
        return _variable_name(node.slice), NO_DEFAULT
    if (
        isinstance(node, ast.Compare)
        and isinstance(node.ops[0], ast.In | ast.NotIn)
        and _is_environ(node.comparators[0])
    ):
        return _variable_name(node.left), NO_DEFAULT
    return None, NO_DEFAULT


def _variable_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"[A-Z][A-Z0-9_]*", node.value):
        return node.value
    return None


def _is_environ(node: ast.AST) -> bool:
    return ast.unparse(node).endswith("environ")


def _literal(node: ast.AST | None) -> object:
    if node is None:
        return NO_DEFAULT
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return NO_DEFAULT
    return NO_DEFAULT if value is None else value


def reads_of(paths: list[Path]) -> dict[str, list[object]]:
    reads: dict[str, list[object]] = {}
    for path in paths:
        for name, defaults in environment_reads(path.read_text()).items():
            reads.setdefault(name, []).extend(defaults)
    return reads
