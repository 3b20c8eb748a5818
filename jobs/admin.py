"""Jobs in the admin, edited by target type, with their recent runs (the schedules app adds schedules inline).

Writes go through jobs.services; who sees what comes from jobs.selectors, as in the API:
staff see their own jobs, superusers everyone's. The form is jobs.admin_forms; the runs'
pages are jobs.admin_runs.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from jobs import selectors, services
from jobs.admin_display import run_strip
from jobs.admin_forms import JobForm, secret_status
from jobs.admin_runs import RunAdmin
from jobs.models import Job, Run
from jobscheduler.admin_tools import (
    DeclaredInCodeFilter,
    admin_user,
    declared_in_code_notice,
    editable_values,
    take_saved_state,
)

STRIP_RUNS = 50
# Set on the request by save_model when it generated a webhook job's secret, for response_add
# to show it that once (never stored anywhere it could be read back from).
_NEW_SECRET = "_jobscheduler_new_secret"  # noqa: S105 (an attribute name)

__all__ = ["JobAdmin", "RunAdmin", "run_now_each"]


def run_now_each(model_admin: admin.ModelAdmin, request: HttpRequest, runs: list[tuple[Job, Any]]) -> None:
    """The "Run now" action of jobs and schedules: one manual run each, through the service."""
    keys = []
    for job, schedule in runs:
        try:
            keys.append(services.run_now(job, schedule=schedule, user=admin_user(request)))
        except (PermissionDenied, ValidationError) as error:
            model_admin.message_user(request, f"{job}: {error}", messages.ERROR)
    if keys:
        shown = ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else "")
        model_admin.message_user(
            request, f"Started {len(keys)} run{'s' if len(keys) != 1 else ''}: {shown}", messages.SUCCESS
        )


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    form = JobForm
    list_display = ("name", "owner", "target_type", "what", "enabled", "in_code", "updated_at")
    list_filter = ("target_type", "enabled", DeclaredInCodeFilter)
    search_fields = ("name", "description")
    list_select_related = ("owner",)
    readonly_fields = ("created_at", "updated_at", "signing_secret", "recent_runs")
    actions = ("run_now",)

    class Media:
        css = {"all": ("jobs/admin.css",)}
        js = ("jobs/job_form.js",)

    @admin.display(description="In code", boolean=True)
    def in_code(self, job: Job) -> bool:
        return bool(job.code_key)

    @admin.display(description="What it runs")
    def what(self, job: Job) -> str:
        target = job.target if isinstance(job.target, dict) else {}
        if job.target_type == Job.TargetType.HTTP:
            return f"{target.get('method', 'POST')} {target.get('url', '')}"
        if job.target_type == Job.TargetType.COMMAND:
            return " ".join([str(target.get("command", "")), *map(str, target.get("args") or [])])
        return str(target.get("task") or target.get("function") or "")

    @admin.display(description="Declared in code")
    def declared_in_code(self, job: Job) -> Any:
        return declared_in_code_notice(job.code_key, "Enabled")

    @admin.display(description="Signing secret")
    def signing_secret(self, job: Job) -> SafeString:
        if job.pk is None:
            return format_html("{}", "Saving a webhook job with no secret of your own generates one, shown once.")
        if job.target_type != Job.TargetType.HTTP or job.code_key:
            return secret_status(job)
        return format_html(
            '{} <a class="button" id="generate-secret" href="{}">Generate a new secret…</a>',
            secret_status(job),
            reverse("admin:jobs_job_secret", args=[job.pk]),
        )

    @admin.display(description=f"Last {STRIP_RUNS} runs")
    def recent_runs(self, job: Job) -> SafeString:
        if job.pk is None:
            return format_html("{}", "-")
        strip = run_strip(selectors.recent_runs_of_job(job.pk, STRIP_RUNS))
        every = reverse("admin:jobs_run_changelist") + f"?job__exact={job.pk}"
        return format_html('{}<p><a href="{}">All runs of this job</a></p>', strip, every)

    @admin.action(description="Run now (schedules do not move)")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        run_now_each(self, request, [(job, None) for job in queryset])

    def get_fieldsets(self, request: HttpRequest, obj: Job | None = None) -> Any:
        first: tuple[str, ...] = ("name", "description", "enabled")
        if admin_user(request).is_superuser or obj is not None:
            first = ("name", "owner", "description", "enabled")
        execution = ("timeout_seconds", "max_attempts", "retry_backoff_seconds", "pause_schedules_after_failures")
        history: tuple[Any, ...] = (("History", {"fields": ("created_at", "updated_at")}),)
        if obj is not None:
            history = (("Runs", {"fields": ("recent_runs",)}), *history)
        if obj is not None and obj.code_key:
            # What the declaration owns is shown read-only; a python job has no secret to show.
            return (
                (None, {"fields": ("declared_in_code", *first)}),
                ("Target", {"fields": ("target_type", "target")}),
                ("Execution", {"fields": execution}),
                *history,
            )
        only_when = "Used when the target type is {}; the other types' fields are ignored."
        return (
            (None, {"fields": first}),
            ("Target", {"fields": ("target_type",)}),
            (
                "Python task",
                {
                    "classes": ("target-fields", "target-python"),
                    "fields": ("python_task", "python_args", "python_kwargs"),
                    "description": only_when.format('"Python function"'),
                },
            ),
            (
                "Management command",
                {
                    "classes": ("target-fields", "target-command"),
                    "fields": ("command_name", "command_args"),
                    "description": only_when.format('"Management command"'),
                },
            ),
            (
                "Webhook",
                {
                    "classes": ("target-fields", "target-http"),
                    "fields": (
                        "webhook_url",
                        "webhook_method",
                        "webhook_headers",
                        "webhook_body",
                        "signing_secret",
                        "secret",
                    ),
                    "description": only_when.format('"HTTP webhook"'),
                },
            ),
            ("Execution", {"fields": execution}),
            *history,
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> tuple[str, ...]:
        # The owner is chosen once, at creation (the service has no way to move a job).
        if obj is not None and obj.code_key:
            declared = [name for name in services.EDITABLE_FIELDS if name not in services.CODE_EDITABLE_FIELDS]
            return (*self.readonly_fields, "declared_in_code", "owner", *declared)
        return (*self.readonly_fields, "owner") if obj else tuple(self.readonly_fields)

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        # Only its code removes a job declared in code (jobs.services refuses it too).
        return not (obj is not None and obj.code_key) and super().has_delete_permission(request, obj)

    def get_form(self, request: HttpRequest, obj: Job | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = cast(type[JobForm], super().get_form(request, obj, change=change, **kwargs))
        form.request_user = admin_user(request)  # a fresh class per request, so this is not shared
        return form

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"owner": request.user.pk, **super().get_changeform_initial_data(request)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        # No annotate(Count("schedules")) column: combined with select_related, SecantusDB
        # 0.7.0b3 mis-reads the backend's nested $project and the page fails.
        return selectors.jobs_visible_to(admin_user(request))

    def save_model(self, request: HttpRequest, obj: Job, form: forms.ModelForm, change: bool) -> None:
        fields = editable_values(form, services.EDITABLE_FIELDS)
        if change:
            services.job_update(obj, by=admin_user(request), **fields)
            return
        owner = form.cleaned_data.get("owner") or admin_user(request)
        take_saved_state(obj, services.job_create(owner=owner, by=admin_user(request), **fields))
        if obj.secret and not fields.get("secret"):
            setattr(request, _NEW_SECRET, obj.secret)

    def response_add(self, request: HttpRequest, obj: Job, post_url_continue: str | None = None) -> HttpResponse:
        secret = getattr(request, _NEW_SECRET, None)
        if not secret:
            return super().response_add(request, obj, post_url_continue)
        self.message_user(request, f"The job “{obj}” was added.", messages.SUCCESS)
        return self._show_secret(request, obj, secret, created=True)

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """The jobs and their schedules by name, their runs as a number.

        Django's own list loads every related row and asks for the delete permission on runs,
        which nobody has here (runs are a read-only record): a job with runs could not be deleted.
        A job's runs go with it, as through the API, and may number millions: counted, not listed.
        """
        jobs = list(objs)
        schedules = [schedule for job in jobs for schedule in job.schedules.all()]
        listed: list[Any] = []
        for job in jobs:
            listed += [str(job), [f"Schedule: {schedule}" for schedule in schedules if schedule.job_id == job.pk]]
        runs = selectors.run_count_of_jobs(job.pk for job in jobs)
        counts = {str(Job._meta.verbose_name_plural): len(jobs), "schedules": len(schedules)}
        counts[str(Run._meta.verbose_name_plural)] = runs
        return listed, counts, set(), []

    def delete_model(self, request: HttpRequest, obj: Job) -> None:
        services.job_delete(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            try:
                services.job_delete(job)
            except ValidationError as error:  # declared in code
                self.message_user(request, f"{job} was not deleted: {' '.join(error.messages)}", messages.WARNING)

    # --- "Generate a new secret": confirmed by a POST, shown once ----------------------------

    def get_urls(self) -> list[URLPattern]:
        secret = path("<path:object_id>/secret/", self.admin_site.admin_view(self.secret_view), name="jobs_job_secret")
        return [secret, *super().get_urls()]

    def secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: what generating a new secret does; POST: generate it (services.job_rotate_secret) and show it once."""
        job = self.get_object(request, object_id)
        if job is None:
            raise Http404
        if not self.has_change_permission(request, job):
            raise PermissionDenied
        change_url = reverse("admin:jobs_job_change", args=[job.pk])
        if job.target_type != Job.TargetType.HTTP or job.code_key:
            self.message_user(request, "Only webhook jobs made here have a secret to generate.", messages.ERROR)
            return HttpResponseRedirect(change_url)
        if request.method != "POST":
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "original": job,
                "title": "Generate a new signing secret",
                "change_url": change_url,
                "overlap_hours": services.secret_overlap_hours(),
            }
            return TemplateResponse(request, "admin/jobs/job/secret_confirm.html", context)
        secret = services.job_rotate_secret(job)
        self.log_change(request, job, "Generated a new webhook signing secret.")
        return self._show_secret(request, job, secret, created=False)

    def _show_secret(self, request: HttpRequest, job: Job, secret: str, *, created: bool) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": job,
            "title": "The webhook signing secret",
            "secret": secret,
            "created": created,
            "change_url": reverse("admin:jobs_job_change", args=[job.pk]),
            "previous_expires_at": job.previous_secret_expires_at,
        }
        response = render(request, "admin/jobs/job/secret_shown.html", context)
        response["Cache-Control"] = "no-store"  # shown once: not kept by the browser or a proxy either
        return response


admin.site.register(Run, RunAdmin)
