"""What each panel of the dashboard shows, prepared from an Overview: the templates' context and the JSON figures.

The page and its JSON endpoint render the same panel templates from the same context, so a
refresh shows exactly what a reload would.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone

from dashboard import charts
from dashboard.overview import Overview
from dashboard.selectors import Process, RunCounts
from jobs.models import Run
from jobscheduler.activity import LAG_BUCKETS_MS

PANELS = ("warnings", "processes", "due", "runs", "failures", "upcoming")
STATUS_LABELS = dict(Run.Status.choices)
TIMELINE_HOURS = 24
REFRESH_SECONDS = 5  # how often the page polls the JSON endpoint
FIGURE_TIMES = 24  # occurrences of each upcoming schedule listed in the JSON figures


def duration_text(seconds: float) -> str:
    """A short human duration: 4.2 s, 12 min, 3 h 5 min, 2 d 4 h."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def rate_text(rate: float | None) -> str:
    if rate is None:
        return "no runs"
    return f"{rate * 100:.1f}%" if rate < 0.1 else f"{rate * 100:.0f}%"


def lag_text(ms: int | None, *, last_bucket: bool = False) -> str:
    if ms is None:
        return "no fires"
    bound = f"{ms:,} ms" if ms < 1000 else f"{ms / 1000:g} s"
    return f"over {bound}" if last_bucket else f"≤ {bound}"


def _relative(moment: datetime, now: datetime) -> str:
    seconds = (moment - now).total_seconds()
    return f"in {duration_text(seconds)}" if seconds >= 0 else f"{duration_text(-seconds)} ago"


def _process_rows(processes: list[Process] | None, now: datetime) -> list[dict[str, Any]] | None:
    if processes is None:
        return None
    return [
        {
            "process": process,
            "beat_text": f"{duration_text(process.beat_age_seconds)} ago",
            "uptime_text": duration_text((now - process.started).total_seconds()) if process.started else "?",
        }
        for process in processes
    ]


def _runs_context(runs: RunCounts) -> dict[str, Any]:
    statuses = runs.statuses
    totals = [sum(minute.values()) for minute in runs.per_minute]
    peak = max(totals, default=0)
    in_words = ", ".join(
        f"{runs.last_day[status]:,} {STATUS_LABELS.get(status, status).lower()}" for status in statuses
    )
    label = "Attempts ended per minute over the last 24 hours, stacked by status"
    if peak:
        busiest = runs.first_minute + timedelta(minutes=totals.index(peak))
        label += f": {in_words} in all; the busiest minute was {charts.clock_text(busiest)} with {peak:,}."
    else:
        label += ": none."
    label += " The figures by hour are in the table that follows."
    hours = []
    for start in range(0, len(runs.per_minute), 60):
        chunk = runs.per_minute[start : start + 60]
        begin = runs.first_minute + timedelta(minutes=start)
        counts = [sum(minute.get(status, 0) for minute in chunk) for status in statuses]
        hours.append(
            {"start": begin, "end": begin + timedelta(minutes=len(chunk)), "counts": counts, "total": sum(counts)}
        )
    return {
        "chart": charts.runs_chart(runs.first_minute, runs.per_minute, statuses, label),
        "legend": [
            {
                "status": status,
                "label": STATUS_LABELS.get(status, status),
                "hour": runs.last_hour.get(status, 0),
                "day": runs.last_day.get(status, 0),
            }
            for status in statuses
        ],
        "status_labels": [STATUS_LABELS.get(status, status) for status in statuses],
        "hours": hours,
        "failure_rate_hour": rate_text(runs.failure_rate_hour),
        "failure_rate_day": rate_text(runs.failure_rate_day),
        "total_hour": sum(runs.last_hour.values()),
        "total_day": sum(runs.last_day.values()),
    }


def context(overview: Overview) -> dict[str, Any]:
    """The panels' template context."""
    now = overview.generated_at
    lag = overview.lag
    marks = charts.timeline_hours(now, TIMELINE_HOURS)
    due = overview.due
    return {
        "next_due_text": _relative(due.next_due_at, now) if due is not None and due.next_due_at else "",
        "overview": overview,
        "schedulers": _process_rows(overview.schedulers, now),
        "workers": _process_rows(overview.workers, now),
        "lag_p50": lag_text(lag.p50_ms) if lag else "",
        "lag_p99": lag_text(lag.p99_ms, last_bucket=lag.p99_ms == LAG_BUCKETS_MS[-1]) if lag else "",
        "runs": _runs_context(overview.runs) if overview.runs is not None else None,
        "timeline_marks": marks,
        "upcoming": [
            {
                "row": row,
                "strip": charts.timeline_strip(now, TIMELINE_HOURS, row.times, row.more, [mark for mark, _ in marks]),
            }
            for row in overview.upcoming or []
        ],
        "status_labels": STATUS_LABELS,
    }


def render(overview: Overview, request: HttpRequest) -> dict[str, str]:
    """Each panel's inner HTML, by the id of the element it fills."""
    values = context(overview)
    return {f"dash-{name}": render_to_string(f"dashboard/panels/{name}.html", values, request) for name in PANELS}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def figures(overview: Overview) -> dict[str, Any]:
    """The figures behind the panels, as JSON (for scripts and tests; the page uses the HTML)."""
    due = overview.due
    lag = overview.lag
    runs = overview.runs

    def processes(found: list[Process] | None) -> list[dict[str, Any]] | None:
        if found is None:
            return None
        return [
            {
                "name": process.name,
                "host": process.host,
                "pid": process.pid,
                "version": process.version,
                "last_beat_seconds_ago": round(process.beat_age_seconds, 3),
                "started": _iso(process.started),
                "in_flight": process.in_flight,
                "capacity": process.capacity,
                "done": process.done,
                "queues": list(process.queues),
            }
            for process in found
        ]

    return {
        "generated_at": _iso(overview.generated_at),
        "redis_ok": overview.redis_ok,
        "mongodb_ok": overview.mongodb_ok,
        "warnings": [{"level": notice.level, "text": notice.text, "hint": notice.hint} for notice in overview.notices],
        "schedulers": processes(overview.schedulers),
        "workers": processes(overview.workers),
        "due_index": None
        if due is None
        else {
            "scheduled": due.scheduled,
            "needing_python": due.needing_python,
            "due_now": due.due_now,
            "next_due_at": _iso(due.next_due_at),
            "in_streams": due.in_streams,
            "mirror_intact": due.mirror_intact,
        },
        "dispatch_lag": None
        if lag is None
        else {"fires_last_hour": lag.count, "p50_ms": lag.p50_ms, "p99_ms": lag.p99_ms},
        "runs": None
        if runs is None
        else {
            "first_minute": _iso(runs.first_minute),
            "per_minute": {status: [minute.get(status, 0) for minute in runs.per_minute] for status in runs.statuses},
            "last_hour": runs.last_hour,
            "last_day": runs.last_day,
            "failure_rate_last_hour": runs.failure_rate_hour,
            "failure_rate_last_day": runs.failure_rate_day,
        },
        "latest_failures": None
        if overview.failures is None
        else [
            {
                "run": failure.run_id,
                "job": failure.job_id,
                "job_name": failure.job_name,
                "schedule": failure.schedule_id or None,
                "fire_key": failure.fire_key,
                "attempt": failure.attempt,
                "status": failure.status,
                "ended_at": _iso(failure.ended_at),
                "error": failure.error,
            }
            for failure in overview.failures
        ],
        "paused_by_service": None
        if overview.paused is None
        else {
            "total": overview.paused_total,
            "schedules": [
                {
                    "schedule": paused.schedule_id,
                    "job": paused.job_id,
                    "job_name": paused.job_name,
                    "description": paused.description,
                    "reason": paused.reason,
                    "paused_at": _iso(paused.paused_at),
                }
                for paused in overview.paused
            ],
        },
        "upcoming": None
        if overview.upcoming is None
        else [
            {
                "schedule": row.schedule_id,
                "job": row.job_id,
                "job_name": row.job_name,
                "description": row.description,
                "due_at": _iso(row.due_at),
                # The first few times (the page draws them all): the JSON is polled often.
                "times": [_iso(moment) for moment in row.times[:FIGURE_TIMES]],
                "count": len(row.times),
                "more": row.more,
            }
            for row in overview.upcoming
        ],
    }


def updated_text(overview: Overview) -> str:
    return f"Updated at {timezone.localtime(overview.generated_at).strftime('%H:%M:%S')}"
