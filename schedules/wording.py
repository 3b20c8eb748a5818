"""Cron expressions in words ("At 02:30, Monday through Friday"), from cron-descriptor.

The admin and the API show these beside the expression. The words are made from what
schedules.kinds parsed (each field's values, by Debian cron's grammar), written back in the
plainest cron syntax (``*``, ``a-b``, ``*/n``, lists): cron-descriptor words those well, while
it misreads some of what Debian cron accepts (``17,*``, ``SUN-THU/9``, ``15/61``). How the two
day fields combine is ours too: either one matching (both restricted), or both (one of them
written with a leading ``*``). English with 24-hour times whatever the machine's locale;
cached, since the library loads its message catalogue for every expression.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import pairwise

from cron_descriptor import CasingTypeEnum, ExpressionDescriptor, FormatException, Options

# (lowest, highest) value of each field, seconds first; day of week 0-6 (Sunday is 0).
_BOUNDS = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


@lru_cache(maxsize=4096)
def cron_in_words(fields: str, *, either_day: bool) -> str | None:
    """Words for a parsed cron expression, or None when the library cannot word it.

    ``fields`` holds 5 or 6 fields (seconds first), each ``*`` or a sorted list of the values
    it matches; ``either_day`` says a day matches when day-of-month or day-of-week does.
    """
    parts = fields.split()
    bounds = _BOUNDS if len(parts) == 6 else _BOUNDS[1:]
    plain = " ".join(_plainest(part, low, high) for part, (low, high) in zip(parts, bounds, strict=True))
    options = Options()
    options.use_24hour_time_format = True
    options.locale_code = "en_US"
    descriptor = ExpressionDescriptor(plain, options)
    try:
        time = descriptor.get_time_of_day_description()
        month_day = descriptor.get_day_of_month_description()
        week_day = descriptor.get_day_of_week_description()
        month = descriptor.get_month_description()
    except (FormatException, ValueError, IndexError, KeyError):
        return None
    if parts[-3] != "*" and parts[-1] != "*":  # day of month and day of week both restricted
        days = _bare_days(week_day)
        week_day = f", or on {days}" if either_day else f", and only if it is {days}"
    text = descriptor.transform_verbosity(f"{time}{month_day}{week_day}{month}", use_verbose_format=False)
    return ExpressionDescriptor.transform_case(text, CasingTypeEnum.Sentence)


def _bare_days(week_day: str) -> str:
    """ "Monday through Friday" from ", Monday through Friday", ", only on Monday" or ", or on Monday"."""
    text = week_day.removeprefix(", ")
    for lead in ("only on ", "or on "):
        text = text.removeprefix(lead)
    return text


def _plainest(part: str, low: int, high: int) -> str:
    """A field's values in the plainest cron syntax: ``*``, ``*/n``, ``a-b/n``, or a list with ranges."""
    if part == "*":
        return part
    values = [int(value) for value in part.split(",")]
    step = values[1] - values[0] if len(values) >= 3 else 0
    if step > 1 and all(later - earlier == step for earlier, later in pairwise(values)):
        if values[0] == low and values[-1] + step > high:
            return f"*/{step}"
        return f"{values[0]}-{values[-1]}/{step}"
    runs: list[list[int]] = [[values[0]]]
    for value in values[1:]:
        if value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ",".join(f"{run[0]}-{run[-1]}" if len(run) >= 3 else ",".join(map(str, run)) for run in runs)
