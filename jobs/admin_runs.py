"""Runs in the admin as an operations log: status first, read-only, each run with its attempts and "run again".

Every query of a filtered list and of a run's page answers from an index
(jobs/tests/test_admin_queries.py explains them): a page's jobs and schedules come by id in
one query each (no $lookup join), the filters are one condition each (status; nominal time;
one job), search is by exact fire key, and a run's attempts are found by fire key.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from jobs import selectors, services
from jobs.admin_display import duration, human_duration, lag, short_fire_key, status_badge
from jobs.admin_paging import RunsPaginator
from jobs.models import Run
from jobscheduler.admin_tools import admin_user


class NominalTimeFilter(admin.SimpleListFilter):
    """Runs whose nominal time lies in the last hour, day, week or month (the nominal-time index)."""

    title = "nominal time"
    parameter_name = "nominal"
    SPANS = {
        "1h": ("Last hour", timedelta(hours=1)),
        "24h": ("Last 24 hours", timedelta(days=1)),
        "7d": ("Last 7 days", timedelta(days=7)),
        "30d": ("Last 30 days", timedelta(days=30)),
    }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _) in self.SPANS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        span = self.SPANS.get(self.value() or "")
        return queryset.filter(nominal_time__gte=timezone.now() - span[1]) if span else queryset


class RunChangeList(ChangeList):
    """The runs list: a page's jobs and schedules are read after the page, by id, one query each."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.result_list = selectors.with_jobs_and_schedules(list(self.result_list))


def _pre(text: str, css: str) -> SafeString:
    return format_html('<pre class="run-text {}">{}</pre>', css, text) if text else format_html("{}", "—")


class RunAdmin(admin.ModelAdmin):
    """Run history: written by the engine only, so the admin can look but not touch."""

    list_display = (
        "status_badge",
        "job_name",
        "schedule_name",
        "nominal_time",
        "duration_text",
        "attempt",
        "lag_text",
        "trigger",
        "fire_key_short",
    )
    list_display_links = ("nominal_time",)
    list_filter = ("status", NominalTimeFilter)
    search_fields = ("fire_key",)
    search_help_text = "An exact fire key (from a log line, or a webhook's webhook-id header)."
    # No count of every run beside the filtered count, and no counts per filter choice: on a
    # million runs each is a full scan.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    # Unfiltered: MongoDB's estimate of the total, and the first pages read from a window of
    # recent runs by index (jobs.admin_paging; docs/dashboard-benchmark.md).
    paginator = RunsPaginator
    # The (nominal_time, _id) index serves this order; sorting by other columns would not.
    ordering = ("-nominal_time", "-pk")
    sortable_by = ("nominal_time",)
    fieldsets = (
        (None, {"fields": ("status_badge", "job_name", "schedule_name", "trigger", "attempt", "fire_key", "worker")}),
        (
            "Times (UTC)",
            {"fields": ("nominal_time", "dispatched_at", "started_at", "finished_at", "lag_text", "duration_text")},
        ),
        ("Outcome", {"fields": ("error_text", "output_text", "exception_class", "return_value_text", "task_text")}),
        ("Attempts of this occurrence", {"fields": ("attempts",)}),
    )

    class Media:
        css = {"all": ("jobs/admin.css",)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Run]:
        return selectors.runs_visible_to(admin_user(request))

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return RunChangeList

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Run], search_term: str) -> Any:
        term = search_term.strip()
        return (queryset.filter(fire_key=term), False) if term else (queryset, False)

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # The job page links to its runs as ?job__exact=<id> (the job index answers it).
        return lookup == "job__exact" or super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    # --- columns and fields -----------------------------------------------------------------

    @admin.display(description="Status", ordering="status")
    def status_badge(self, run: Run) -> SafeString:
        return status_badge(run.status)

    @admin.display(description="Job")
    def job_name(self, run: Run) -> SafeString:
        return format_html('<a href="{}">{}</a>', reverse("admin:jobs_job_change", args=[run.job_id]), run.job.name)

    @admin.display(description="Schedule")
    def schedule_name(self, run: Run) -> SafeString:
        if run.schedule_id is None or run.schedule is None:
            return format_html("{}", "Manual" if run.fire_key.startswith(Run.MANUAL_PREFIX) else "— (deleted)")
        url = reverse("admin:schedules_schedule_change", args=[run.schedule_id])
        return format_html('<a href="{}">{}</a>', url, run.schedule.describe())

    @admin.display(description="Duration")
    def duration_text(self, run: Run) -> str:
        if run.status == Run.Status.RUNNING and run.started_at:
            return f"running for {human_duration(timezone.now() - run.started_at)}"
        return human_duration(duration(run))

    @admin.display(description="Lag")
    def lag_text(self, run: Run) -> str:
        return human_duration(lag(run))

    @admin.display(description="Fire key")
    def fire_key_short(self, run: Run) -> SafeString:
        return short_fire_key(run.fire_key)

    @admin.display(description="Error")
    def error_text(self, run: Run) -> SafeString:
        return _pre(run.error, "run-error")

    @admin.display(description="Output")
    def output_text(self, run: Run) -> SafeString:
        return _pre(run.output, "run-output")

    @admin.display(description="Return value")
    def return_value_text(self, run: Run) -> SafeString:
        shown = json.dumps(run.return_value, indent=2, ensure_ascii=False) if run.return_value is not None else ""
        return _pre(shown, "run-return")

    @admin.display(description="Enqueued Task")
    def task_text(self, run: Run) -> SafeString:
        shown = json.dumps(run.target, indent=2, ensure_ascii=False) if run.target else ""
        return _pre(shown, "run-task") if shown else format_html("{}", "— (the job's own target)")

    @admin.display(description="Attempts")
    def attempts(self, run: Run) -> SafeString:
        rows = []
        for attempt in selectors.attempts_of(run.fire_key):
            current = attempt.pk == run.pk
            rows.append(
                (
                    reverse("admin:jobs_run_change", args=[attempt.pk]),
                    "page" if current else "false",
                    attempt.attempt,
                    status_badge(attempt.status),
                    human_duration(duration(attempt)),
                    " (this one)" if current else "",
                )
            )
        return format_html(
            '<ol class="run-attempts">{}</ol>',
            format_html_join("", '<li><a href="{}" aria-current="{}">Attempt {}</a> {} {}{}</li>', rows),
        )

    # --- the run's page: "Run again" and "Open the job" -------------------------------------

    def get_urls(self) -> list[URLPattern]:
        again = path(
            "<path:object_id>/run-again/",
            self.admin_site.admin_view(require_POST(self.run_again_view)),
            name="jobs_run_run_again",
        )
        return [again, *super().get_urls()]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        run = self.get_object(request, object_id)
        if run is not None:
            extra_context = {
                **(extra_context or {}),
                "job_url": reverse("admin:jobs_job_change", args=[run.job_id]),
                "run_again_url": reverse("admin:jobs_run_run_again", args=[run.pk]),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def run_again_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A new manual run like this one (services.run_again); then its page."""
        run = self.get_object(request, object_id)
        if run is None:
            raise Http404
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        try:
            fire_key = services.run_again(run, user=admin_user(request))
        except (PermissionDenied, ValidationError) as error:
            self.message_user(request, f"Not run again: {error}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:jobs_run_change", args=[run.pk]))
        self.message_user(request, f"Started a new run: {fire_key}", messages.SUCCESS)
        started = selectors.attempts_of(fire_key)
        if started:
            return HttpResponseRedirect(reverse("admin:jobs_run_change", args=[started[0].pk]))
        return HttpResponseRedirect(reverse("admin:jobs_run_changelist") + f"?q={fire_key}")
