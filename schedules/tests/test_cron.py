"""A cron schedule's daylight saving choice (dst_gap shift/skip, dst_repeat once/twice): named
cases in four zones, one whose rules changed in tzdata's history, and properties against cronsim."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim, CronSimError
from hypothesis import HealthCheck, assume, given, settings

from schedules.kinds import KINDS, Occurrence
from schedules.tests.test_kinds import cron_expressions, elapsed_oracle, is_wall_clock, oracle, zones_and_starts

CRON = KINDS["cron"]


def schedule(expression: str, timezone: str, gap: str = "shift", repeat: str = "once") -> SimpleNamespace:
    return SimpleNamespace(
        kind="cron",
        expression=expression,
        timezone=timezone,
        dst_gap=gap,
        dst_repeat=repeat,
        interval_seconds=None,
        anchor=None,
        start_at=None,
    )


def walk(expression: str, timezone: str, after: datetime, count: int, **rules: str) -> list[Occurrence]:
    return list(itertools.islice(CRON.iter_after(schedule(expression, timezone, **rules), after), count))


def shown(occurrences: list[Occurrence], timezone: str) -> list[str]:
    """Each occurrence as local ISO 8601, marked '(moved from HH:MM)' or '(pass N)'."""
    tz = ZoneInfo(timezone)
    out = []
    for occurrence in occurrences:
        text = occurrence.at.astimezone(tz).isoformat()
        if occurrence.moved_from is not None:
            text += f" (moved from {occurrence.moved_from:%H:%M})"
        if occurrence.repeated_pass is not None:
            text += f" (pass {occurrence.repeated_pass})"
        out.append(text)
    return out


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# --- named cases: spring forward ------------------------------------------------------------

SPRING = [
    # (zone, expression, start, shift's answers, skip's answers)
    pytest.param(
        "America/New_York",  # 2026-03-08 02:00 EST -> 03:00 EDT
        "30 2 * * *",
        "2026-03-07T00:00:00-05:00",
        [
            "2026-03-07T02:30:00-05:00",
            "2026-03-08T03:00:00-04:00 (moved from 02:30)",
            "2026-03-09T02:30:00-04:00",
        ],
        ["2026-03-07T02:30:00-05:00", "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"],
        id="new-york",
    ),
    pytest.param(
        "Europe/London",  # 2026-03-29 01:00 GMT -> 02:00 BST
        "15 1 * * *",
        "2026-03-28T00:00:00+00:00",
        [
            "2026-03-28T01:15:00+00:00",
            "2026-03-29T02:00:00+01:00 (moved from 01:15)",
            "2026-03-30T01:15:00+01:00",
        ],
        ["2026-03-28T01:15:00+00:00", "2026-03-30T01:15:00+01:00", "2026-03-31T01:15:00+01:00"],
        id="london",
    ),
    pytest.param(
        "Australia/Lord_Howe",  # 2026-10-04 02:00 +10:30 -> 02:30 +11: a half-hour gap
        "15 2 * * *",
        "2026-10-03T00:00:00+10:30",
        [
            "2026-10-03T02:15:00+10:30",
            "2026-10-04T02:30:00+11:00 (moved from 02:15)",
            "2026-10-05T02:15:00+11:00",
        ],
        ["2026-10-03T02:15:00+10:30", "2026-10-05T02:15:00+11:00", "2026-10-06T02:15:00+11:00"],
        id="lord-howe",
    ),
    pytest.param(
        "America/Sao_Paulo",  # 2018-11-04 00:00 -03 -> 01:00 -02 (at midnight)
        "30 0 * * *",
        "2018-11-03T00:00:00-03:00",
        [
            "2018-11-03T00:30:00-03:00",
            "2018-11-04T01:00:00-02:00 (moved from 00:30)",
            "2018-11-05T00:30:00-02:00",
        ],
        ["2018-11-03T00:30:00-03:00", "2018-11-05T00:30:00-02:00", "2018-11-06T00:30:00-02:00"],
        id="sao-paulo-2018",
    ),
]


@pytest.mark.parametrize(("timezone", "expression", "start", "shifted", "skipped"), SPRING)
def test_a_time_the_clocks_skip_fires_at_the_jump_or_not_that_day(
    timezone: str, expression: str, start: str, shifted: list[str], skipped: list[str]
) -> None:
    assert shown(walk(expression, timezone, utc(start), 3), timezone) == shifted
    assert shown(walk(expression, timezone, utc(start), 3, gap="skip"), timezone) == skipped
    # The choice of repeat changes nothing in spring.
    assert shown(walk(expression, timezone, utc(start), 3, gap="skip", repeat="twice"), timezone) == skipped


# --- named cases: fall back -----------------------------------------------------------------

FALL = [
    # (zone, expression, start, once's answers, twice's answers)
    pytest.param(
        "America/New_York",  # 2026-11-01 02:00 EDT -> 01:00 EST
        "30 1 * * *",
        "2026-10-31T00:00:00-04:00",
        ["2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00 (pass 1)", "2026-11-02T01:30:00-05:00"],
        [
            "2026-10-31T01:30:00-04:00",
            "2026-11-01T01:30:00-04:00 (pass 1)",
            "2026-11-01T01:30:00-05:00 (pass 2)",
            "2026-11-02T01:30:00-05:00",
        ],
        id="new-york",
    ),
    pytest.param(
        "Europe/London",  # 2026-10-25 02:00 BST -> 01:00 GMT
        "15 1 * * *",
        "2026-10-24T00:00:00+01:00",
        ["2026-10-24T01:15:00+01:00", "2026-10-25T01:15:00+01:00 (pass 1)", "2026-10-26T01:15:00+00:00"],
        [
            "2026-10-24T01:15:00+01:00",
            "2026-10-25T01:15:00+01:00 (pass 1)",
            "2026-10-25T01:15:00+00:00 (pass 2)",
            "2026-10-26T01:15:00+00:00",
        ],
        id="london",
    ),
    pytest.param(
        "Australia/Lord_Howe",  # 2026-04-05 02:00 +11 -> 01:30 +10:30: half an hour repeats
        "45 1 * * *",
        "2026-04-04T00:00:00+11:00",
        ["2026-04-04T01:45:00+11:00", "2026-04-05T01:45:00+11:00 (pass 1)", "2026-04-06T01:45:00+10:30"],
        [
            "2026-04-04T01:45:00+11:00",
            "2026-04-05T01:45:00+11:00 (pass 1)",
            "2026-04-05T01:45:00+10:30 (pass 2)",  # 30 minutes later
            "2026-04-06T01:45:00+10:30",
        ],
        id="lord-howe",
    ),
    pytest.param(
        "Europe/Moscow",  # 2014-10-26 02:00 +04 -> 01:00 +03 (back from permanent summer time)
        "30 1 * * *",
        "2014-10-25T00:00:00+04:00",
        ["2014-10-25T01:30:00+04:00", "2014-10-26T01:30:00+04:00 (pass 1)", "2014-10-27T01:30:00+03:00"],
        [
            "2014-10-25T01:30:00+04:00",
            "2014-10-26T01:30:00+04:00 (pass 1)",
            "2014-10-26T01:30:00+03:00 (pass 2)",
            "2014-10-27T01:30:00+03:00",
        ],
        id="moscow-2014",
    ),
]


@pytest.mark.parametrize(("timezone", "expression", "start", "once", "twice"), FALL)
def test_a_time_the_clocks_go_back_over_fires_on_the_first_pass_or_both(
    timezone: str, expression: str, start: str, once: list[str], twice: list[str]
) -> None:
    assert shown(walk(expression, timezone, utc(start), 3), timezone) == once
    assert shown(walk(expression, timezone, utc(start), 4, repeat="twice"), timezone) == twice
    # The choice of gap changes nothing in autumn.
    assert shown(walk(expression, timezone, utc(start), 4, gap="skip", repeat="twice"), timezone) == twice


def test_tzdata_history_decides_which_days_have_a_gap_or_a_repeat() -> None:
    """Rules changed: Moscow kept summer time from 2011 to 2014, Sao Paulo dropped DST in 2019."""
    # Moscow fell back on 2010-10-31 (02:00-02:59 twice), not on 2011-10-30 (the day the old
    # rule named).
    moscow = walk("30 2 * * *", "Europe/Moscow", utc("2010-10-30T12:00:00+04:00"), 2, repeat="twice")
    assert shown(moscow, "Europe/Moscow") == [
        "2010-10-31T02:30:00+04:00 (pass 1)",
        "2010-10-31T02:30:00+03:00 (pass 2)",
    ]
    moscow_2011 = walk("30 2 * * *", "Europe/Moscow", utc("2011-10-29T12:00:00+04:00"), 2, repeat="twice")
    assert shown(moscow_2011, "Europe/Moscow") == ["2011-10-30T02:30:00+04:00", "2011-10-31T02:30:00+04:00"]
    # Sao Paulo's first Sunday of November had a midnight gap until 2018; in 2019 it had none.
    sao_paulo = walk("30 0 * * *", "America/Sao_Paulo", utc("2019-11-02T12:00:00-03:00"), 2, gap="skip")
    assert shown(sao_paulo, "America/Sao_Paulo") == ["2019-11-03T00:30:00-03:00", "2019-11-04T00:30:00-03:00"]
    # ... and its last fall-back repeated 23:00-23:59 on 2019-02-16.
    fall = walk("30 23 * * *", "America/Sao_Paulo", utc("2019-02-16T12:00:00-02:00"), 2, repeat="twice")
    assert shown(fall, "America/Sao_Paulo") == [
        "2019-02-16T23:30:00-02:00 (pass 1)",
        "2019-02-16T23:30:00-03:00 (pass 2)",
    ]


def test_skipped_days_are_reported_for_previews() -> None:
    found = CRON.skipped_between(
        schedule("30 2 * * *", "America/New_York", gap="skip"),
        utc("2026-03-01T00:00:00-05:00"),
        utc("2027-03-31T00:00:00-04:00"),
    )
    assert [(item.day, item.reason, item.wall_time) for item in found] == [
        (date(2026, 3, 8), "dst_gap", datetime(2026, 3, 8, 2, 30)),
        (date(2027, 3, 14), "dst_gap", datetime(2027, 3, 14, 2, 30)),
    ]
    assert found[0].message.startswith("02:30 is not on the clock on 2026-03-08")
    # Shifted times are not skipped, and elapsed-time expressions never are.
    after, until = utc("2026-03-01T00:00:00Z"), utc("2026-04-01T00:00:00Z")
    assert CRON.skipped_between(schedule("30 2 * * *", "America/New_York"), after, until) == []
    assert CRON.skipped_between(schedule("30 * * * *", "America/New_York", gap="skip"), after, until) == []


def test_elapsed_time_expressions_accept_only_the_default_choice() -> None:
    for expression in ("*/15 * * * *", "30 * * * *", "0 30 2 * * *"):
        errors = CRON.clean(schedule(expression, "Europe/London", gap="skip", repeat="twice"))
        assert set(errors) == {"dst_gap", "dst_repeat"}, expression
        assert "follows elapsed time" in errors["dst_gap"]
        assert CRON.clean(schedule(expression, "Europe/London")) == {}
    assert CRON.clean(schedule("30 2 * * 1-5", "Europe/London", gap="skip", repeat="twice")) == {}
    bad = CRON.clean(schedule("30 2 * * *", "Europe/London", gap="later", repeat="thrice"))
    assert bad == {
        "dst_gap": "Choose shift (fire at the jump) or skip (not that day).",
        "dst_repeat": "Choose once (the first pass) or twice (both passes).",
    }


def test_the_description_names_a_choice_other_than_debians() -> None:
    assert CRON.describe(schedule("30 2 * * *", "America/New_York")) == "At 02:30 (America/New_York)"
    assert CRON.describe(schedule("30 2 * * *", "America/New_York", gap="skip", repeat="twice")) == (
        "At 02:30 (America/New_York); not on days clocks skip its time; twice when clocks go back over its time"
    )


# --- properties against cronsim ----------------------------------------------------------------


def instants(expression: str, name: str, start: datetime, count: int, **rules: str) -> list[datetime]:
    return [occurrence.at for occurrence in walk(expression, name, start, count, **rules)]


def _valid(oracle_expression: str, start: datetime) -> bool:
    try:
        CronSim(oracle_expression, start)
    except CronSimError:
        return False
    return True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cron_expressions(), zones_and_starts())
def test_shift_and_once_agree_with_cronsim(expressions: tuple[str, str], zone_and_start: tuple[str, datetime]) -> None:
    """The defaults, asked for by name through the kind, are Debian cron's rules as cronsim runs them."""
    expression, oracle_expression = expressions
    name, start = zone_and_start
    assume(_valid(oracle_expression, start))
    assume(not (is_wall_clock(oracle_expression) and start.astimezone(ZoneInfo(name)).fold == 1))
    assert instants(expression, name, start, 5, gap="shift", repeat="once") == oracle(oracle_expression, start, name)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cron_expressions(), zones_and_starts())
def test_skip_and_twice_fire_whenever_the_clock_shows_a_matching_time(
    expressions: tuple[str, str], zone_and_start: tuple[str, datetime]
) -> None:
    """skip + twice on a wall-clock expression is elapsed time: every instant whose wall time
    matches, none in a gap and both passes of a repeat (cronsim on each stretch of one offset)."""
    expression, oracle_expression = expressions
    name, start = zone_and_start
    assume(_valid(oracle_expression, start) and is_wall_clock(oracle_expression))
    expected = elapsed_oracle(oracle_expression, start, name)
    assert instants(expression, name, start, 5, gap="skip", repeat="twice") == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cron_expressions(), zones_and_starts())
def test_each_choice_adds_or_removes_only_its_own_occurrences(
    expressions: tuple[str, str], zone_and_start: tuple[str, datetime]
) -> None:
    """skip = shift without the moved ones; twice = once plus the second passes; and walking
    one croniter (iter_after) agrees with asking next_after step by step under every choice."""
    expression, oracle_expression = expressions
    name, start = zone_and_start
    assume(_valid(oracle_expression, start))
    base = walk(expression, name, start, 12)
    assume(base)
    until = base[-1].at
    within = {
        (gap, repeat): [o for o in walk(expression, name, start, 40, gap=gap, repeat=repeat) if o.at <= until]
        for gap in ("shift", "skip")
        for repeat in ("once", "twice")
    }
    assert within["shift", "once"] == base
    assert within["skip", "once"] == [o for o in base if o.moved_from is None]
    second_passes = [o for o in within["skip", "twice"] if o.repeated_pass == 2]
    assert [o.at for o in within["shift", "twice"]] == sorted([o.at for o in base] + [o.at for o in second_passes])
    for (gap, repeat), found in within.items():
        rules = schedule(expression, name, gap=gap, repeat=repeat)
        stepped, moment = [], start
        for _ in found:
            occurrence = CRON.next_after(rules, moment)
            assert occurrence is not None
            stepped.append(occurrence)
            moment = occurrence.at
        assert stepped == found, (gap, repeat)


def test_occurrences_strictly_after_a_second_pass_under_twice() -> None:
    """Asked from inside the second pass, twice answers what is left of it, then the next day."""
    start = utc("2026-11-01T01:10:00-05:00")  # New York's second 01:10
    assert shown(walk("30 1 * * *", "America/New_York", start, 2, repeat="twice"), "America/New_York") == [
        "2026-11-01T01:30:00-05:00 (pass 2)",
        "2026-11-02T01:30:00-05:00",
    ]
    assert shown(walk("30 1 * * *", "America/New_York", start, 1), "America/New_York") == ["2026-11-02T01:30:00-05:00"]
