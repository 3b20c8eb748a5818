"""Bounds on durations and counts, enforced in the models' validation (API, admin and services alike).

They keep times computed from them representable (a preview of 1000 occurrences after the
latest allowed time ends before the year 9999), every number inside a BSON int64 and a Lua
double exactly, and ``timedelta`` arithmetic in the engine from overflowing.
"""

from __future__ import annotations

from typing import Any

MAX_DURATION_SECONDS = 5 * 366 * 86_400
MAX_COUNT = 2**31 - 1


def out_of_bounds(values: dict[str, Any], maximum: int) -> dict[str, str]:
    """A message for each named value that is set and above ``maximum`` (or below 0)."""
    return {
        name: f"Must be between 0 and {maximum}."
        for name, value in values.items()
        if value is not None and not 0 <= value <= maximum
    }
