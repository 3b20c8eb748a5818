"""How runs look in the admin: status badges, durations, shortened fire keys, a job's strip of recent runs.

Colour is never the only signal: every badge and strip cell carries its status as text and a
symbol (jobs/static/jobs/admin.css colours them with the admin's own variables, so dark mode
works).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from jobs.models import Run

# A symbol per status, beside its name (a shape for those who cannot tell the colours apart).
SYMBOLS: dict[str, str] = {
    Run.Status.PENDING: "…",
    Run.Status.RUNNING: "▶",
    Run.Status.SUCCEEDED: "✓",
    Run.Status.FAILED: "✗",
    Run.Status.TIMED_OUT: "◔",  # a clock face, in the fonts admins have
    Run.Status.SKIPPED: "↷",
    Run.Status.MISSED: "∅",
}


def status_label(status: str) -> str:
    return str(Run.Status(status).label) if status in Run.Status.values else status


def status_badge(status: str) -> SafeString:
    """The status as a badge: symbol and name, coloured by the stylesheet."""
    return format_html(
        '<span class="run-status run-status-{}"><span aria-hidden="true">{}</span> {}</span>',
        status,
        SYMBOLS.get(status, "?"),
        status_label(status),
    )


def human_duration(span: timedelta | None) -> str:
    """``12 ms``, ``3.4 s``, ``2 min 5 s``, ``1 h 2 min``; an em dash for none."""
    if span is None:
        return "—"
    seconds = span.total_seconds()
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    if seconds < 1:
        return f"{sign}{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{sign}{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{sign}{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours} h {minutes} min"


def lag(run: Run) -> timedelta | None:
    """Dispatch time minus nominal time (SPEC: lag)."""
    return run.dispatched_at - run.nominal_time if run.dispatched_at and run.nominal_time else None


def duration(run: Run) -> timedelta | None:
    return run.finished_at - run.started_at if run.finished_at and run.started_at else None


def short_fire_key(fire_key: str) -> SafeString:
    """The fire key shortened to its ends, whole in the title (and in the run's page)."""
    shown = fire_key if len(fire_key) <= 20 else f"{fire_key[:6]}…{fire_key[-12:]}"
    return format_html('<code class="fire-key" title="{}">{}</code>', fire_key, shown)


def run_strip(runs: Sequence[Run]) -> SafeString:
    """A job's recent runs, newest first, as a strip of status cells linking to each run, after a
    count by status in words."""
    if not runs:
        return format_html("<p>{}</p>", "No runs yet.")
    counts = Counter(run.status for run in runs)
    summary = ", ".join(f"{count} {status_label(status).lower()}" for status, count in counts.most_common())
    cells = format_html_join(
        "",
        '<li><a class="run-cell run-status-{}" href="{}" title="{}"><span aria-hidden="true">{}</span>'
        '<span class="visually-hidden">{}</span></a></li>',
        (
            (
                run.status,
                reverse("admin:jobs_run_change", args=[run.pk]),
                title,
                SYMBOLS.get(run.status, "?"),
                title,
            )
            for run in runs
            for title in [_cell_title(run)]
        ),
    )
    return format_html(
        '<p class="run-strip-summary">Last {} runs, newest first: {}.</p>'
        '<ol class="run-strip" aria-label="Last {} runs, newest first">{}</ol>',
        len(runs),
        summary,
        len(runs),
        cells,
    )


def _cell_title(run: Run) -> str:
    when = f"{run.nominal_time:%Y-%m-%d %H:%M:%S} UTC" if run.nominal_time else "no nominal time"
    return f"{status_label(run.status)}, {when}, attempt {run.attempt}"
