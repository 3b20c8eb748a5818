"""A team's django-celery-beat database: its tables and an entry of every schedule type.

The tables are django-celery-beat 2.9.0's, as its migrations leave them (dumped from databases
it migrated, in django_celery_beat/); the rows are written as its models store them (JSON as
text, datetimes in UTC: naive text in SQLite, ``timestamptz`` in PostgreSQL). django-celery-beat
itself is not a test dependency: it pins cron-descriptor<2, which the project's newer pin
excludes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SCHEMAS = Path(__file__).resolve().parent / "django_celery_beat"
LAST_RUN = datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)


class Database:
    """A DB-API connection to the sample database with the placeholder and values its driver takes."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.sqlite = parts.scheme == "sqlite"
        if self.sqlite:
            self.connection: Any = sqlite3.connect(parts.path[1:])
        else:
            import psycopg

            dsn = f"host={parts.hostname} port={parts.port or 5432} user={parts.username} dbname={parts.path[1:]}"
            self.connection = psycopg.connect(dsn)

    def schema(self) -> str:
        return (SCHEMAS / ("sqlite.sql" if self.sqlite else "postgresql.sql")).read_text()

    def value(self, value: Any) -> Any:
        if self.sqlite and isinstance(value, datetime):  # as Django's SQLite backend stores it
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
        return value

    def execute(self, sql: str, values: tuple[Any, ...] = ()) -> None:
        if self.sqlite:
            self.connection.execute(sql.replace("%s", "?"), tuple(self.value(value) for value in values))
        else:
            self.connection.execute(sql, values)

    def insert(self, table: str, **row: Any) -> None:
        columns = ", ".join(row)
        marks = ", ".join(["%s"] * len(row))
        self.execute(f"INSERT INTO django_celery_beat_{table} ({columns}) VALUES ({marks})", tuple(row.values()))  # noqa: S608


@contextlib.contextmanager
def database(url: str) -> Iterator[Database]:
    db = Database(url)
    try:
        yield db
        db.connection.commit()
    finally:
        db.connection.close()


def task(db: Database, name: str, task: str, **fields: Any) -> None:
    row: dict[str, Any] = {
        "name": name,
        "task": task,
        "args": "[]",
        "kwargs": "{}",
        "headers": "{}",
        "enabled": True,
        "one_off": False,
        "total_run_count": 0,
        "date_changed": datetime.now(UTC),
        "description": "",
    }
    row.update(fields)
    db.insert("periodictask", **row)


def create(url: str) -> None:
    """django-celery-beat's tables, and the team's entries: every schedule type, and a few
    that cannot be imported."""
    with database(url) as db:
        if db.sqlite:
            db.connection.executescript(db.schema())
        else:
            db.connection.execute(db.schema())
        for ident, every, period in (
            (1, 30, "seconds"),
            (2, 2, "hours"),
            (3, 10, "minutes"),
            (4, 500_000, "microseconds"),
        ):
            db.insert("intervalschedule", id=ident, every=every, period=period)
        crontabs = (
            (1, "30", "2", "*", "*", "*", "Europe/Paris"),
            (2, "0", "9", "mon-fri", "*", "*", "America/New_York"),
            (3, "0", "8", "1", "1-7", "*", "UTC"),
        )
        for ident, minute, hour, dow, dom, month, zone in crontabs:
            db.insert(
                "crontabschedule",
                id=ident,
                minute=minute,
                hour=hour,
                day_of_week=dow,
                day_of_month=dom,
                month_of_year=month,
                timezone=zone,
            )
        db.insert("clockedschedule", id=1, clocked_time=datetime(2031, 1, 1, 12, 0, tzinfo=UTC))
        db.insert("solarschedule", id=1, event="sunset", latitude=48.8566, longitude=2.3522)
        task(
            db,
            "ping every 30s",
            "proj.tasks.ping",
            interval_id=1,
            args="[1, 2]",
            kwargs='{"source": "beat"}',
            queue="fast",
            priority=5,
            headers='{"team": "ops"}',
            expire_seconds=20,
            last_run_at=LAST_RUN,
            description="Pings the upstream.",
        )
        task(db, "cleanup every 2h", "proj.tasks.cleanup", interval_id=2, enabled=False)
        task(
            db,
            "nightly report",
            "proj.tasks.report",
            crontab_id=1,
            kwargs='{"kind": "daily"}',
            exchange="reports",
            routing_key="reports.daily",
            start_time=datetime(2026, 2, 1, tzinfo=UTC),
            expires=datetime(2032, 1, 1, tzinfo=UTC),
        )
        task(db, "weekday digest", "proj.tasks.digest", crontab_id=2)
        task(db, "first monday", "proj.tasks.billing", crontab_id=3)
        task(db, "new year", "proj.tasks.greet", clocked_id=1, one_off=True)
        task(db, "lights at sunset", "proj.tasks.lights", solar_id=1)
        task(db, "warm up once", "proj.tasks.warm", interval_id=3, one_off=True)
        task(db, "too fast", "proj.tasks.tick", interval_id=4)
        task(db, "broken args", "proj.tasks.ping", interval_id=1, args="not json")


def edit(url: str) -> None:
    """What a team changes in beat's admin between two imports."""
    with database(url) as db:
        db.insert("intervalschedule", id=5, every=45, period="seconds")
        db.execute(
            "UPDATE django_celery_beat_periodictask SET interval_id = 5, last_run_at = %s WHERE name = %s",
            (datetime.now(UTC), "ping every 30s"),
        )
        db.execute("UPDATE django_celery_beat_periodictask SET enabled = %s WHERE name = %s", (False, "weekday digest"))
        db.execute(
            "UPDATE django_celery_beat_periodictask SET enabled = %s, expires = %s WHERE name = %s",
            (True, datetime.now(UTC) + timedelta(days=400), "cleanup every 2h"),
        )
