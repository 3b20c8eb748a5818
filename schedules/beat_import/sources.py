"""Where celery beat entries come from: django-celery-beat's tables, or a ``beat_schedule`` dict.

The tables are read in plain SQL through a Django database alias, so django-celery-beat need
not be installed here: only the database driver (SQLite is built in; PostgreSQL needs psycopg,
which requirements.txt pins). Columns are looked up first, so tables of older
django-celery-beat versions (without ``headers``, ``expire_seconds``, clocked schedules or a
crontab time zone) are read too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connections
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import import_string

from schedules.beat_import.entries import BeatEntry, Clocked, Crontab, Interval, Solar, Timing, Unreadable

TASKS = "django_celery_beat_periodictask"
INTERVALS = "django_celery_beat_intervalschedule"
CRONTABS = "django_celery_beat_crontabschedule"
CLOCKED = "django_celery_beat_clockedschedule"
SOLAR = "django_celery_beat_solarschedule"
TASK_COLUMNS = (
    "name",
    "task",
    "args",
    "kwargs",
    "queue",
    "exchange",
    "routing_key",
    "headers",
    "priority",
    "expires",
    "expire_seconds",
    "one_off",
    "start_time",
    "enabled",
    "last_run_at",
    "description",
    "interval_id",
    "crontab_id",
    "clocked_id",
    "solar_id",
)
PERIOD_SECONDS = {"days": 86_400, "hours": 3600, "minutes": 60, "seconds": 1, "microseconds": 1e-6}
# beat_schedule options a celery target carries (jobs.targets.celery); others are reported.
CARRIED_OPTIONS = ("queue", "exchange", "routing_key", "priority", "headers")


class SourceError(Exception):
    """The source cannot be read at all; the message says why."""


# --- django-celery-beat's tables -------------------------------------------------------------


def alias_for_url(url: str, alias: str = "celery_beat") -> str:
    """Add a database alias for ``url`` (``sqlite:///relative.db``, ``sqlite:////absolute.db``,
    ``postgres://user:password@host:port/name``) for this process; ``drop_alias`` removes it."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        config: dict[str, Any] = {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    elif parts.scheme in ("postgres", "postgresql"):
        config = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    else:
        raise SourceError(
            f"--database-url takes sqlite:// and postgres:// URLs, not {parts.scheme or 'none'}://; "
            "name another database as an alias in DATABASES (--database)."
        )
    drop_alias(alias)
    configured = connections.configure_settings({"default": settings.DATABASES["default"], alias: config})
    connections.settings[alias] = configured[alias]
    return alias


def drop_alias(alias: str) -> None:
    """Close and forget an alias ``alias_for_url`` added."""
    if alias in connections.settings:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]


def from_database(alias: str, *, naive_timezone: str = "UTC") -> list[BeatEntry]:
    """Every periodic task in django-celery-beat's tables on database ``alias``, by name.

    Datetimes stored without a zone (a project with ``USE_TZ = False``) are read in ``naive_timezone``.
    """
    if alias not in connections.settings:
        raise SourceError(f"No database alias {alias!r} in DATABASES.")
    connection = connections[alias]
    zone = ZoneInfo(naive_timezone)
    try:
        if connection.connection is None:
            connection.connect()  # here, so that a wrong URL or a missing driver fails with this message
        with connection.cursor() as cursor:
            tables = set(connection.introspection.table_names(cursor))
            if TASKS not in tables:
                raise SourceError(f"No django-celery-beat tables ({TASKS}) in database {alias!r}.")
            tasks = _rows(connection, cursor, TASKS, TASK_COLUMNS, tables)
            intervals = _by_id(_rows(connection, cursor, INTERVALS, ("id", "every", "period"), tables))
            crontab_columns = ("id", "minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone")
            crontabs = _by_id(_rows(connection, cursor, CRONTABS, crontab_columns, tables))
            clocked = _by_id(_rows(connection, cursor, CLOCKED, ("id", "clocked_time"), tables))
            solar = _by_id(_rows(connection, cursor, SOLAR, ("id", "event", "latitude", "longitude"), tables))
    except SourceError:
        raise
    except Exception as error:
        raise SourceError(f"Cannot read database {alias!r}: {error}") from error
    entries = []
    for row in sorted(tasks, key=lambda row: row["name"]):
        options = {name: row[name] for name in ("queue", "exchange", "routing_key") if row[name]}
        if row["priority"] is not None:
            options["priority"] = row["priority"]
        headers = _json(row["headers"], {})
        if headers:
            options["headers"] = headers
        if row["expire_seconds"] is not None:
            options["expires"] = row["expire_seconds"]
        entries.append(
            BeatEntry(
                name=row["name"],
                task=row["task"] or "",
                timing=_timing(row, intervals, crontabs, clocked, solar, zone),
                args=_json(row["args"], []),
                kwargs=_json(row["kwargs"], {}),
                options=options,
                enabled=bool(row["enabled"]) if row["enabled"] is not None else True,
                one_off=bool(row["one_off"]),
                start_time=_moment(row["start_time"], zone),
                expires=_moment(row["expires"], zone),
                last_run_at=_moment(row["last_run_at"], zone),
                description=row["description"] or "",
            )
        )
    return entries


def _rows(connection: Any, cursor: Any, table: str, columns: tuple[str, ...], tables: set[str]) -> list[dict[str, Any]]:
    """The table's rows as dicts of ``columns``; a column (or table) it lacks reads as None."""
    if table not in tables:
        return []
    present = {column.name for column in connection.introspection.get_table_description(cursor, table)}
    chosen = [column for column in columns if column in present]
    quote = connection.ops.quote_name
    cursor.execute(f"SELECT {', '.join(quote(c) for c in chosen)} FROM {quote(table)}")  # noqa: S608 (names, not input)
    return [{**dict.fromkeys(columns), **dict(zip(chosen, row, strict=True))} for row in cursor.fetchall()]


def _by_id(rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {row["id"]: row for row in rows}


def _timing(
    row: dict[str, Any],
    intervals: dict[Any, dict[str, Any]],
    crontabs: dict[Any, dict[str, Any]],
    clocked: dict[Any, dict[str, Any]],
    solar: dict[Any, dict[str, Any]],
    zone: ZoneInfo,
) -> Timing:
    for column, found in (("interval_id", intervals), ("crontab_id", crontabs), ("clocked_id", clocked)):
        if row[column] is not None and row[column] not in found:
            return Unreadable(f"its {column.removesuffix('_id')} schedule (id {row[column]}) is missing")
    if row["interval_id"] is not None:
        interval = intervals[row["interval_id"]]
        if interval["period"] not in PERIOD_SECONDS:
            return Unreadable(f"an interval in unknown units {interval['period']!r}")
        return Interval(interval["every"] * PERIOD_SECONDS[interval["period"]])
    if row["crontab_id"] is not None:
        cron = crontabs[row["crontab_id"]]
        minute, hour, day_of_month, month_of_year, day_of_week = (
            str(cron[name]) for name in ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
        )
        return Crontab(minute, hour, day_of_month, month_of_year, day_of_week, str(cron["timezone"] or "UTC"))
    if row["clocked_id"] is not None:
        at = _moment(clocked[row["clocked_id"]]["clocked_time"], zone)
        return Clocked(at) if at is not None else Unreadable("a clocked schedule without a time")
    if row["solar_id"] is not None:
        sun = solar.get(row["solar_id"])
        if sun is None:
            return Unreadable(f"its solar schedule (id {row['solar_id']}) is missing")
        return Solar(str(sun["event"]), float(sun["latitude"]), float(sun["longitude"]))
    return Unreadable("no schedule is set")


def _json(text: Any, empty: Any) -> Any:
    """A JSON column's value; text that is not JSON is returned as it is (translate refuses it)."""
    if text is None or text == "":
        return empty
    if not isinstance(text, str):
        return text  # a json/jsonb column, decoded by the driver
    try:
        return json.loads(text)
    except ValueError:
        return text


def _moment(value: Any, zone: ZoneInfo) -> datetime | None:
    if value is None or value == "":
        return None
    moment = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        return None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


# --- a beat_schedule dict ---------------------------------------------------------------------


def from_module(path: str, *, timezone: str | None = None) -> list[BeatEntry]:
    """The entries of a ``beat_schedule``: ``path`` names a Celery app (its ``conf.beat_schedule``)
    or the dict itself (``proj.celery:app``, ``proj.settings.CELERY_BEAT_SCHEDULE``).

    Crontabs are in ``timezone``, else the app's ``timezone``, else UTC (Celery's default).
    """
    try:
        found = import_string(path.replace(":", "."))
    except ImportError as error:
        raise SourceError(f"Cannot import {path!r}: {error}") from error
    conf = getattr(found, "conf", None)
    if conf is not None and isinstance(getattr(conf, "beat_schedule", None), Mapping):
        schedule, zone = conf.beat_schedule, timezone or conf.timezone or "UTC"
    elif isinstance(found, Mapping):
        schedule, zone = found, timezone or "UTC"
    else:
        raise SourceError(f"{path!r} is neither a Celery app nor a beat_schedule dict.")
    return [_module_entry(str(name), spec, str(zone)) for name, spec in sorted(schedule.items())]


def _module_entry(name: str, spec: Any, zone: str) -> BeatEntry:
    if not isinstance(spec, Mapping):
        return BeatEntry(name=name, task="", timing=Unreadable("the entry is not a dict"))
    options: dict[str, Any] = {}
    expires = None
    for key, value in dict(spec.get("options") or {}).items():
        if key == "expires" and isinstance(value, datetime):
            expires = value
        elif key in (*CARRIED_OPTIONS, "expires"):
            options[key] = value
        else:
            options.setdefault("unsupported", []).append(key)
    return BeatEntry(
        name=name,
        task=str(spec.get("task") or ""),
        timing=_module_timing(spec.get("schedule"), zone),
        args=list(spec["args"]) if isinstance(spec.get("args"), list | tuple) else spec.get("args", []),
        kwargs=spec.get("kwargs", {}),
        options=options,
        expires=expires,
    )


def _module_timing(value: Any, zone: str) -> Timing:
    from celery.schedules import crontab, schedule, solar

    if isinstance(value, bool) or value is None:
        return Unreadable("no schedule is set")
    if isinstance(value, int | float):
        return Interval(float(value))
    if isinstance(value, timedelta):
        return Interval(value.total_seconds())
    if isinstance(value, crontab):
        return Crontab(
            _cron_field(value._orig_minute),
            _cron_field(value._orig_hour),
            _cron_field(value._orig_day_of_month),
            _cron_field(value._orig_month_of_year),
            _cron_field(value._orig_day_of_week),
            zone,
        )
    if isinstance(value, solar):
        return Solar(str(value.event), float(value.lat), float(value.lon))
    if type(value) is schedule:
        return Interval(value.run_every.total_seconds())
    return Unreadable(f"a {type(value).__module__}.{type(value).__qualname__} schedule")


def _cron_field(value: Any) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(item) for item in sorted(value))
    return str(value)
