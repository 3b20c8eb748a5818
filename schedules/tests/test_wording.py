"""Schedules in words: cron expressions through cron-descriptor, fixed and one-off schedules."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedules.kinds import AtKind, CronKind, FixedKind, parse_cron
from schedules.models import Schedule
from schedules.tests.test_kinds import cron_expressions
from schedules.wording import cron_in_words


def cron(expression: str, timezone: str = "UTC") -> str:
    return CronKind().describe(SimpleNamespace(expression=expression, timezone=timezone, dst_gap="", dst_repeat=""))


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("30 2 * * 1-5", "At 02:30, Monday through Friday"),
        ("0 9 * * MON-FRI", "At 09:00, Monday through Friday"),
        ("*/5 * * * *", "Every 5 minutes"),
        ("@daily", "At 00:00"),
        ("@hourly", "Every hour"),
        ("@weekly", "At 00:00, only on Sunday"),
        ("5 4 * * 7", "At 04:05, only on Sunday"),  # 7 is Sunday too
        ("15 30 2 * * 1-5", "At 02:30:15, Monday through Friday"),  # seconds first
        ("*/10 * * * * *", "Every 10 seconds"),
        ("0 9 * 1-3,6 *", "At 09:00, only in January through March and June"),
        # Both day fields restricted: either matches (Debian cron), said as "or".
        ("0 0 1 * MON", "At 00:00, on day 1 of the month, or on Monday"),
        ("0 9 1,15 * 1-5", "At 09:00, on day 1 and 15 of the month, or on Monday through Friday"),
        # One written with a leading '*': both must match.
        ("0 9 */2 * 1", "At 09:00, every 2 days, and only if it is Monday"),
        # A day field matching every day makes the other irrelevant.
        ("0 9 1-31 * 1", "At 09:00"),
        # Read by Debian cron's grammar first, where cron-descriptor alone misreads them.
        ("17,* * * * *", "Every minute"),
        ("0 9 * * SUN-THU/9", "At 09:00, only on Sunday"),
        ("15/61 * * * *", "At 15 minutes past the hour"),
    ],
)
def test_cron_expressions_in_words(expression: str, words: str) -> None:
    assert cron(expression, "Europe/London") == f"{words} (Europe/London)"


@settings(max_examples=200, deadline=None)
@given(cron_expressions())
def test_every_expression_the_service_accepts_has_words(expressions: tuple[str, str]) -> None:
    expression, _ = expressions
    try:
        parsed = parse_cron(expression)
    except ValueError:
        return
    words = cron_in_words(parsed.fields, either_day=parsed.day_or)
    assert words, expression
    # Plain words: none of the expression's syntax leaks through.
    assert not set(words) & set("*/?#"), (expression, words)


def test_fixed_and_one_off_schedules_in_words() -> None:
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    assert FixedKind().describe(SimpleNamespace(interval_seconds=300, anchor=anchor)) == "Every 5 minutes"
    at = SimpleNamespace(anchor=datetime(2026, 7, 1, 7, 30, tzinfo=UTC), timezone="Europe/Paris")
    assert AtKind().describe(at) == "Once, at 2026-07-01 09:30 (Europe/Paris)"
    at.anchor = datetime(2026, 7, 1, 7, 30, 15, tzinfo=UTC)
    assert AtKind().describe(at) == "Once, at 2026-07-01 09:30:15 (Europe/Paris)"


@given(st.sampled_from(["61 * * * *", "every day", "", "* * * *"]))
def test_what_the_service_refuses_is_not_described(expression: str) -> None:
    schedule = Schedule(kind="cron", expression=expression, timezone="UTC")
    assert schedule.describe() == "Invalid cron schedule"


def test_jitter_is_part_of_the_description() -> None:
    schedule = Schedule(kind="cron", expression="0 9 * * MON-FRI", timezone="Europe/Paris", jitter_seconds=30)
    assert schedule.describe() == "At 09:00, Monday through Friday (Europe/Paris), jitter up to 30s"
