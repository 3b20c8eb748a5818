"""Schedules in the admin: a readable description, a preview, pause and resume; inline on the job page.

Every write goes through schedules.services (which also updates the Redis mirror), both
here and in the inline on the job page; the forms run the model's own validation first,
so a bad cron expression or time zone is a form error, never a 500. Who sees what comes
from the selectors, as in the API.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import NOT_PROVIDED, QuerySet
from django.forms.models import BaseInlineFormSet, modelform_factory
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.safestring import SafeString

from jobs.admin import JobAdmin, run_now_each
from jobs.models import Job
from jobs.selectors import jobs_visible_to
from jobscheduler.admin_tools import (
    DeclaredInCodeFilter,
    admin_user,
    declared_in_code_notice,
    editable_values,
    take_saved_state,
)
from jobscheduler.declared import declared_message
from schedules import selectors, services
from schedules.admin_backfills import backfill_action
from schedules.admin_calendars import calendar_choices
from schedules.admin_preview import (
    PREVIEW_COUNT,
    fix_these,
    live_description,
    live_preview,
    preview_rows,
    render_preview,
)
from schedules.kinds import KINDS
from schedules.models import Schedule

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldOpts

# How a schedule copes when the scheduler falls behind or a run is still running: none of it
# moves an occurrence.
RUN_POLICY_FIELDS = (
    "misfire_policy",
    "misfire_grace_seconds",
    "catchup_window_seconds",
    "catchup_max_runs",
    "overlap_policy",
)
# What the live preview reads of a form being edited (schedules/static/schedules/preview.js
# sends these, the date-times as the admin's split widgets name them): every field that decides
# the occurrences, and ``paused``, which its heading shows; ``paused_until`` only ends a pause.
PREVIEW_FIELDS = tuple(name for name in services.EDITABLE_FIELDS if name not in (*RUN_POLICY_FIELDS, "paused_until"))

SCHEDULE_FIELDSETS: tuple[tuple[str | None, _FieldOpts], ...] = (
    (None, {"fields": ("kind", "interval_seconds", "expression", "timezone", "anchor")}),
    (
        "Sun (solar schedules)",
        {"classes": ("collapse",), "fields": ("solar_event", "latitude", "longitude", "solar_offset_seconds")},
    ),
    (
        "Daylight saving (cron at a fixed time)",
        {"classes": ("collapse",), "fields": ("dst_gap", "dst_repeat")},
    ),
    (
        "Bounds",
        {"classes": ("collapse",), "fields": ("start_at", "end_at", "max_runs", "jitter_seconds")},
    ),
    (
        "When the scheduler falls behind or a run is still running",
        {"classes": ("collapse",), "fields": RUN_POLICY_FIELDS},
    ),
    ("Exclusion calendars", {"classes": ("collapse",), "fields": ("exclusion_calendars",)}),
    ("Pause", {"fields": ("paused", "paused_until", "pause_reason")}),
)


class LabelledSplitDateTime(AdminSplitDateTime):
    """The admin's date and time inputs, each with its own label (screen readers name both)."""

    template_name = "schedules/widgets/split_datetime.html"


# The schedule pages' date-times, in both admins (and the live preview, which reads their fields).
DATE_TIME_WIDGETS: dict[type[models.Field[Any, Any]], dict[str, Any]] = {
    models.DateTimeField: {"widget": LabelledSplitDateTime}
}


class ScheduleForm(forms.ModelForm):
    """Runs Schedule.clean (through ModelForm's full_clean), with the service's defaults."""

    class Meta:
        model = Schedule
        fields = ("job", *services.EDITABLE_FIELDS)
        help_texts = {
            "interval_seconds": "Fixed schedules: seconds between runs (at least 1).",
            "expression": "Cron schedules: 5 fields (minute hour day month weekday), 6 with leading "
            "seconds, or a macro such as @daily.",
            "timezone": "An IANA time zone such as Europe/London; cron times are read in it, and a solar "
            "schedule's days.",
            "solar_event": "Solar schedules: civil dawn and dusk are when the sun is 6 degrees below the horizon.",
            "anchor": "Fixed schedules: where the grid of runs starts (blank: the start time, else now). "
            "One-off schedules: when to run.",
            "paused_until": "Blank: paused until resumed.",
        }

    # Fields with a default that older forms and scripts do not send: left out, they keep it.
    DEFAULTED = ("dst_gap", "dst_repeat", "solar_offset_seconds")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        absent = [name for name in self.DEFAULTED if name in self.fields and self.add_prefix(name) not in self.data]
        if self.is_bound and absent:
            data = cast(Any, self.data).copy()  # not sent: as if its current value were (no change)
            for name in absent:
                value = getattr(self.instance, name)
                data[self.add_prefix(name)] = "" if value is None else str(value)
            self.data = data
        for name in self.DEFAULTED:
            if name in self.fields:
                self.fields[name].required = False

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in self.DEFAULTED:
            if name in cleaned and cleaned[name] in (None, ""):
                cleaned[name] = getattr(Schedule(), name)  # the model's default
        job = cleaned.get("job")
        if self.instance.pk is None and job is not None and job.code_key:
            self.add_error("job", declared_message(job.code_key, "job") + " Its schedule is declared there too.")
        # The admin's widgets show whole seconds; an unedited time keeps its milliseconds,
        # or every save would shift a fixed schedule's grid by a fraction of a second.
        for name in ("anchor", "start_at", "end_at", "paused_until"):
            saved, posted = getattr(self.instance, name, None), cleaned.get(name)
            if saved is not None and posted is not None and posted == saved.replace(microsecond=0):
                cleaned[name] = saved
        # The same default schedule_create applies, so validation sees what will be saved.
        kind = KINDS.get(cleaned.get("kind") or "")
        if kind is not None and not cleaned.get("anchor") and "anchor" in self.fields:
            cleaned["anchor"] = kind.default_anchor(Schedule(start_at=cleaned.get("start_at")), timezone.now())
        return cleaned


def calendar_formfield(db_field: Any, request: HttpRequest, default: Any) -> Any:
    """The schedule's exclusion calendars as a choice among those the user sees, not raw JSON."""
    if db_field.name != "exclusion_calendars":
        return default
    return forms.MultipleChoiceField(
        label="Exclusion calendars",
        choices=calendar_choices(admin_user(request)),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 5}),
        help_text="The schedule does not run on these calendars' days (Exclusion calendars in the menu).",
    )


class ScheduleInlineFormSet(BaseInlineFormSet):
    """The job page's schedules, saved, changed and deleted through the schedule services."""

    def save_new(self, form: forms.ModelForm, commit: bool = True) -> Schedule:
        schedule = services.schedule_create(job=self.instance, **editable_values(form, services.EDITABLE_FIELDS))
        form.instance = schedule
        return schedule

    def save_existing(self, form: forms.ModelForm, obj: Schedule, commit: bool = True) -> Schedule:
        return services.schedule_update(obj, **editable_values(form, services.EDITABLE_FIELDS))

    def delete_existing(self, obj: Schedule, commit: bool = True) -> None:
        services.schedule_delete(obj)


class ScheduleInline(admin.StackedInline):
    model = Schedule
    form = ScheduleForm
    formset = ScheduleInlineFormSet
    fk_name = "job"
    extra = 1
    show_change_link = True
    fieldsets = (
        *SCHEDULE_FIELDSETS[:1],
        (None, {"fields": ("description", "upcoming", "next_run_at", "last_run_at", "run_count")}),
        *SCHEDULE_FIELDSETS[1:],
    )
    readonly_fields = ("description", "upcoming", "next_run_at", "last_run_at", "run_count", "pause_reason")
    formfield_overrides = DATE_TIME_WIDGETS

    class Media:
        js = ("schedules/preview.js",)

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        return calendar_formfield(db_field, request, super().formfield_for_dbfield(db_field, request, **kwargs))

    # The schedules of a job declared in code are its declaration's: shown, not edited here.
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _declared(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _declared(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _declared(obj) and super().has_delete_permission(request, obj)

    @admin.display(description="Description")
    def description(self, schedule: Schedule) -> SafeString:
        return live_description(schedule)

    @admin.display(description=f"Next {PREVIEW_COUNT} occurrences")
    def upcoming(self, schedule: Schedule) -> SafeString:
        return live_preview(schedule)


def _declared(obj: Any) -> bool:
    return bool(obj is not None and getattr(obj, "code_key", None))


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = (
        "job",
        "in_words",
        "kind",
        "timezone",
        "next_run_at",
        "last_run_at",
        "run_count",
        "paused",
        "in_code",
    )
    list_filter = ("kind", "paused", "misfire_policy", "overlap_policy", DeclaredInCodeFilter)
    search_fields = ("job__name", "expression")
    list_select_related = ("job",)
    readonly_fields = (
        "description",
        "upcoming",
        "next_run_at",
        "last_run_at",
        "run_count",
        "pause_reason",
        "created_at",
        "updated_at",
    )
    actions = ("pause", "resume", "run_now", backfill_action)
    formfield_overrides = DATE_TIME_WIDGETS

    class Media:
        js = ("schedules/preview.js",)

    fieldsets = (
        (None, {"fields": ("job", "description", "upcoming")}),
        *SCHEDULE_FIELDSETS,
        ("Engine", {"fields": ("next_run_at", "last_run_at", "run_count", "created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Schedule]:
        return selectors.schedules_visible_to(admin_user(request)).select_related("job")

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> tuple[str, ...]:
        # A schedule stays with its job (the service cannot move it); one declared in code is
        # only paused and resumed here.
        if _declared(obj):
            declared = [name for name in services.EDITABLE_FIELDS if name not in services.CODE_EDITABLE_FIELDS]
            return (*self.readonly_fields, "declared_in_code", "job", *declared)
        return (*self.readonly_fields, "job") if obj else tuple(self.readonly_fields)

    def get_fieldsets(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if _declared(obj):
            return ((None, {"fields": ("declared_in_code",)}), *fieldsets)
        return fieldsets

    def has_delete_permission(self, request: HttpRequest, obj: Schedule | None = None) -> bool:
        # Only its code removes a schedule declared in code (schedules.services refuses it too).
        return not _declared(obj) and super().has_delete_permission(request, obj)

    @admin.display(description="In code", boolean=True)
    def in_code(self, schedule: Schedule) -> bool:
        return bool(schedule.code_key)

    @admin.display(description="Declared in code")
    def declared_in_code(self, schedule: Schedule) -> SafeString:
        return declared_in_code_notice(schedule.code_key, "Paused and Paused until")

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        return calendar_formfield(db_field, request, super().formfield_for_dbfield(db_field, request, **kwargs))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "job":
            kwargs["queryset"] = jobs_visible_to(admin_user(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Schedule")
    def in_words(self, schedule: Schedule) -> str:
        return schedule.describe()

    @admin.display(description="Schedule")
    def description(self, schedule: Schedule) -> SafeString:
        return live_description(schedule)

    @admin.display(description=f"Next {PREVIEW_COUNT} occurrences")
    def upcoming(self, schedule: Schedule) -> SafeString:
        return live_preview(schedule)

    # --- the live preview: GET the fields being edited, answer JSON -----------------------

    def get_urls(self) -> list[URLPattern]:
        preview = path("preview/", self.admin_site.admin_view(self.preview_view), name="schedules_schedule_preview")
        return [preview, *super().get_urls()]

    def preview_view(self, request: HttpRequest) -> JsonResponse:
        """The description and next occurrences of a schedule as its form now stands.

        Read with the admin's own form (its widgets parse the fields as a save would, its
        validation is the model's) and previewed by the code the saved page uses
        (``preview_rows``, ``render_preview``), daylight saving moves marked. ``schedule``
        names a saved one being edited (for its run count, which bounds ``max_runs``).
        Nothing is saved.
        """
        if not self.has_view_permission(request):
            raise PermissionDenied
        instance = Schedule()
        saved_id = request.GET.get("schedule")
        if saved_id:
            saved = self.get_object(request, saved_id)
            if saved is None:
                raise Http404
            instance.run_count = saved.run_count
        form_class = modelform_factory(
            Schedule,
            form=ScheduleForm,
            fields=PREVIEW_FIELDS,
            formfield_callback=partial(self.formfield_for_dbfield, request=request),
        )
        data = request.GET.copy()
        for name in PREVIEW_FIELDS:  # a field left out reads as a new schedule's default
            default = getattr(Schedule._meta.get_field(name), "default", NOT_PROVIDED)
            if (
                name not in data
                and default is not NOT_PROVIDED
                and not isinstance(default, bool)
                and not callable(default)
            ):
                data[name] = str(default)
        form = form_class(data=data, instance=instance)
        if not form.is_valid():
            errors = {name: [item["message"] for item in items] for name, items in form.errors.get_json_data().items()}
            return JsonResponse({"errors": errors, "description": "", "occurrences": [], "html": fix_these(errors)})
        schedule = form.instance
        try:
            rows = preview_rows(schedule)
        except (ValueError, OverflowError, AssertionError) as error:
            rows = []
            problem = str(error)
        else:
            problem = ""
        return JsonResponse(
            {
                "errors": {"__all__": [problem]} if problem else {},
                "description": schedule.describe(),
                "occurrences": rows,
                "html": render_preview(schedule),
            }
        )

    def save_model(self, request: HttpRequest, obj: Schedule, form: forms.ModelForm, change: bool) -> None:
        fields = editable_values(form, services.EDITABLE_FIELDS)
        if change:
            services.schedule_update(obj, **fields)
        else:
            take_saved_state(obj, services.schedule_create(job=form.cleaned_data["job"], **fields))

    def delete_model(self, request: HttpRequest, obj: Schedule) -> None:
        services.schedule_delete(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            try:
                services.schedule_delete(schedule)
            except ValidationError as error:  # declared in code
                self.message_user(request, f"{schedule} was not deleted: {' '.join(error.messages)}", messages.WARNING)

    @admin.action(description="Pause selected schedules")
    def pause(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._each(request, queryset, services.schedule_pause, "Paused")

    @admin.action(description="Resume selected schedules")
    def resume(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._each(request, queryset, services.schedule_resume, "Resumed")

    @admin.action(description="Run now (the schedule does not move)")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        run_now_each(self, request, [(schedule.job, schedule) for schedule in queryset])

    def _each(self, request: HttpRequest, queryset: QuerySet[Schedule], service: Any, verb: str) -> None:
        done = 0
        for schedule in queryset:
            try:
                service(schedule)
            except ValidationError as error:
                self.message_user(request, f"{schedule}: {'; '.join(error.messages)}", messages.ERROR)
            else:
                done += 1
        self.message_user(request, f"{verb} {done} schedule{'s' if done != 1 else ''}.", messages.SUCCESS)


class JobWithSchedulesAdmin(JobAdmin):
    """The jobs app's job page, with the job's schedules inline."""

    inlines = (*JobAdmin.inlines, ScheduleInline)


# The jobs app registers its job page knowing nothing of schedules (jobs never imports this
# app); this app swaps in the page with its schedules inline, the way Django's docs add an
# inline to the User admin. Chosen over an inline registry in jobs or a class attribute
# patched from here: the registered class says what the page shows, and this is the one
# place that decides it.
admin.site.unregister(Job)
admin.site.register(Job, JobWithSchedulesAdmin)
