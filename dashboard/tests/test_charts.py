"""The server-side SVG charts: well-formed, drawn to scale, described in words."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from dashboard import charts

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2027, 3, 1, 10, 30, tzinfo=UTC)


def parse(svg: str) -> ET.Element:
    # Our own output, not untrusted input.
    return ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))  # noqa: S314


def rectangles(path: ET.Element) -> list[tuple[float, float, float]]:
    """(x, top, height) of each 1-unit bar in a path of "M{x} {y}h1v{h}h-1z" commands."""
    return [
        (float(x), float(y), float(h))
        for x, y, h in re.findall(r"M([\d.]+) ([\d.]+)h1v([\d.]+)h-1z", path.get("d", ""))
    ]


@pytest.mark.parametrize(("value", "ceiling"), [(0, 1), (1, 1), (3, 5), (7, 10), (10, 10), (11, 20), (4200, 5000)])
def test_nice_ceiling(value: float, ceiling: int) -> None:
    assert charts.nice_ceiling(value) == ceiling


def test_the_runs_chart_stacks_each_status_on_the_ones_below_to_scale() -> None:
    minutes: list[dict[str, int]] = [{} for _ in range(60)]
    minutes[10] = {"succeeded": 6, "failed": 2}
    minutes[59] = {"failed": 1}
    label = 'Runs <per> minute & "more"'
    svg = parse(charts.runs_chart(START, minutes, ["succeeded", "failed"], label))
    assert svg.get("role") == "img" and svg.get("aria-label") == label  # escaped in, read back whole
    paths = {path.get("class"): path for path in svg.iter(f"{SVG}path")}
    (ok,) = rectangles(paths["dash-fill dash-s-succeeded"])
    failed = rectangles(paths["dash-fill dash-s-failed"])
    base = charts.TOP + charts.PLOT_HEIGHT
    scale = charts.PLOT_HEIGHT / 10  # peak 8: the axis goes to 10
    assert ok == (charts.LEFT + 10, pytest.approx(base - 6 * scale), pytest.approx(6 * scale))
    assert failed[0] == (charts.LEFT + 10, pytest.approx(base - 8 * scale), pytest.approx(2 * scale))  # on top
    assert failed[1] == (charts.LEFT + 59, pytest.approx(base - scale), pytest.approx(scale))
    labels = [text.text for text in svg.iter(f"{SVG}text")]
    assert labels[:5] == ["0", "2.5", "5", "7.5", "10"]


def test_the_time_axis_marks_every_third_hour_in_local_time() -> None:
    with timezone.override("America/New_York"):  # 10:30 UTC is 05:30 there
        svg = parse(charts.runs_chart(START, [{} for _ in range(24 * 60)], [], "none"))
    times = [text.text for text in svg.iter(f"{SVG}text") if ":" in (text.text or "")]
    assert times == ["06:00", "09:00", "12:00", "15:00", "18:00", "21:00", "00:00", "03:00"]
    assert not list(svg.iter(f"{SVG}path"))  # nothing ended: no bars


def test_a_timeline_strip_has_a_tick_per_occurrence_and_a_band_for_the_rest() -> None:
    times = [START + timedelta(hours=1), START + timedelta(hours=2, minutes=30)]
    svg = parse(charts.timeline_strip(START, 24, times, more=False))
    assert svg.get("aria-hidden") == "true"  # the table row says it in words
    (ticks,) = [path for path in svg.iter(f"{SVG}path") if path.get("class") == "dash-tick"]
    assert ticks.get("d") == "M60.0 2v14M150.0 2v14"
    assert not [rect for rect in svg.iter(f"{SVG}rect") if rect.get("class") == "dash-band"]
    dense = parse(charts.timeline_strip(START, 24, times, more=True))
    (band,) = [rect for rect in dense.iter(f"{SVG}rect") if rect.get("class") == "dash-band"]
    assert float(band.get("x", "")) == 150.0 and float(band.get("width", "")) == 24 * 60 - 150


def test_timeline_hours_fall_on_the_clock() -> None:
    marks = charts.timeline_hours(START, 24)  # 10:30 UTC: the first mark is 12:00, 1.5 hours in
    assert marks[0] == (round(1.5 / 24 * 100, 2), "12:00")
    assert [label for _, label in marks] == ["12:00", "15:00", "18:00", "21:00", "00:00", "03:00", "06:00", "09:00"]
