"""Jobs and read-only run history in the admin (the schedules app adds each job's schedules inline).

Writes go through jobs.services; who sees what comes from jobs.selectors, as in the API:
staff see their own jobs, superusers everyone's.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs import permissions, selectors, services
from jobs.admin_runs import RunsChangeList, RunsPaginator
from jobs.models import Job, Run
from jobs.targets import python as python_targets
from jobscheduler.admin_tools import (
    DeclaredInCodeFilter,
    admin_user,
    declared_in_code_notice,
    editable_values,
    take_saved_state,
)


class JobForm(forms.ModelForm):
    """Job.clean runs through ModelForm's full_clean; the secret is never rendered back."""

    # Set by JobAdmin.get_form: the user a new job belongs to when the form has no owner field.
    request_user: Any = None

    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=(
            "HMAC key for webhook signatures. Leave blank to keep the current one; a new webhook job "
            "left blank gets a generated one, which POST /api/jobs/{id}/rotate-secret/ replaces and shows."
        ),
    )

    python_task = forms.ChoiceField(
        required=False,
        label="Task",
        help_text=(
            "Python jobs: the Django Task to run, from the installed apps' tasks modules. Sets "
            '"task" in the target; "args" (a list) and "kwargs" (an object) go there too.'
        ),
    )

    class Meta:
        model = Job
        fields = ("owner", *services.EDITABLE_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.owner_id is None and self.request_user is not None:
            self.instance.owner = self.request_user
        if "target" not in self.fields:  # read-only (a job declared in code): nothing to choose
            self.fields.pop("python_task", None)
            return
        # The chooser: every discovered Task, with the first line of its docstring.
        choice_field = cast(forms.ChoiceField, self.fields["python_task"])
        choice_field.choices = [("", "---------")] + [
            (path, f"{path}: {summary}" if (summary := python_targets.summary(found)) else path)
            for path, found in python_targets.discovered_tasks().items()
        ]
        target = self.instance.target
        if self.instance.target_type == Job.TargetType.PYTHON and isinstance(target, dict):
            choice_field.initial = python_targets.target_path(target)
        self.fields["target"].required = False  # a chosen task makes {} (or nothing) enough

    def clean_secret(self) -> str:
        return self.cleaned_data.get("secret") or self.instance.secret

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        chosen = cleaned.get("python_task")
        if chosen and cleaned.get("target_type") == Job.TargetType.PYTHON and "target" not in self.errors:
            given = cleaned.get("target")
            arguments = (
                {key: value for key, value in given.items() if key != "function"} if isinstance(given, dict) else {}
            )
            cleaned["target"] = {**arguments, "task": chosen}
        # With no owner field ModelForm skips the (owner, name) constraint; check it here so a
        # duplicate name is a form error, not a service error at save time.
        name, owner_id = cleaned.get("name"), self.instance.owner_id
        if (
            "owner" not in self.fields
            and name
            and owner_id is not None
            and selectors.job_name_taken(owner_id, name, excluding=self.instance.pk)
        ):
            self.add_error("name", "This owner already has a job with this name.")
        # The service checks it again at save; here it is a form error rather than a 403 page.
        target_type, target = cleaned.get("target_type"), cleaned.get("target")
        changed = not self.instance.pk or {"target_type", "target", "python_task"} & set(self.changed_data)
        if self.request_user is not None and target_type and changed:
            problem = permissions.target_refusal(self.request_user, target_type, target)
            if problem:
                self.add_error("target_type", problem)
        return cleaned


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
    list_display = ("name", "owner", "target_type", "enabled", "in_code", "updated_at")
    list_filter = ("target_type", "enabled", DeclaredInCodeFilter)
    search_fields = ("name", "description")
    list_select_related = ("owner",)
    readonly_fields = ("created_at", "updated_at")
    actions = ("run_now",)

    @admin.display(description="In code", boolean=True)
    def in_code(self, job: Job) -> bool:
        return bool(job.code_key)

    @admin.display(description="Declared in code")
    def declared_in_code(self, job: Job) -> Any:
        return declared_in_code_notice(job.code_key, "Enabled")

    @admin.action(description="Run now (schedules do not move)")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        run_now_each(self, request, [(job, None) for job in queryset])

    def get_fieldsets(self, request: HttpRequest, obj: Job | None = None) -> Any:
        first: tuple[str, ...] = ("name", "description", "enabled")
        if admin_user(request).is_superuser or obj is not None:
            first = ("name", "owner", "description", "enabled")
        if obj is not None and obj.code_key:
            # What the declaration owns is shown read-only; a python job has no secret to show.
            return (
                (None, {"fields": ("declared_in_code", *first)}),
                ("Target", {"fields": ("target_type", "target")}),
                (
                    "Execution",
                    {
                        "fields": (
                            "timeout_seconds",
                            "max_attempts",
                            "retry_backoff_seconds",
                            "pause_schedules_after_failures",
                        )
                    },
                ),
                ("History", {"fields": ("created_at", "updated_at")}),
            )
        return (
            (None, {"fields": first}),
            ("Target", {"fields": ("target_type", "python_task", "target")}),
            (
                "Execution",
                {
                    "fields": (
                        "timeout_seconds",
                        "max_attempts",
                        "retry_backoff_seconds",
                        "pause_schedules_after_failures",
                        "secret",
                    )
                },
            ),
            ("History", {"fields": ("created_at", "updated_at")}),
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
        else:
            owner = form.cleaned_data.get("owner") or admin_user(request)
            take_saved_state(obj, services.job_create(owner=owner, by=admin_user(request), **fields))

    def delete_model(self, request: HttpRequest, obj: Job) -> None:
        services.job_delete(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            try:
                services.job_delete(job)
            except ValidationError as error:  # declared in code
                self.message_user(request, f"{job} was not deleted: {' '.join(error.messages)}", messages.WARNING)


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    """Run history: written by the engine only, so the admin can look but not touch."""

    list_display = (
        "fire_key",
        "job",
        "schedule",
        "trigger",
        "status",
        "attempt",
        "nominal_time",
        "started_at",
        "finished_at",
    )
    list_filter = ("status", "trigger", ("nominal_time", admin.DateFieldListFilter))
    search_fields = ("fire_key",)
    # Fast with a million runs (docs/dashboard-benchmark.md): no join (select_related is a
    # $lookup over every run before the page is cut), the page's jobs and schedules read by
    # id instead (RunsChangeList); no date hierarchy (two aggregations over every run; the
    # nominal time filter reads a range by index); no second count; a paginator that does
    # not count or sort every run (jobs.admin_runs).
    list_select_related = ()
    show_full_result_count = False
    paginator = RunsPaginator

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[RunsChangeList]:
        return RunsChangeList

    def get_queryset(self, request: HttpRequest) -> QuerySet[Run]:
        return selectors.runs_visible_to(admin_user(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False
