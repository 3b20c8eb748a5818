"""What every app's admin needs: the user, a form's values, the saved object, and the marks of what code declares."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString


def admin_user(request: HttpRequest) -> User:
    """The admin lets only authenticated staff in, so its request's user is a User."""
    return cast(User, request.user)


def take_saved_state(target: models.Model, saved: models.Model) -> None:
    """Make ``target`` the object a service just saved.

    The admin keeps using the instance its form built (the inlines point at it, the
    redirect reads its pk), while the create services build their own; copy the result back.
    """
    for field in saved._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False
    target._state.db = saved._state.db


def editable_values(form: forms.ModelForm, editable_fields: tuple[str, ...]) -> dict[str, Any]:
    """The cleaned values a service accepts, and nothing else."""
    return {name: form.cleaned_data[name] for name in editable_fields if name in form.cleaned_data}


class DeclaredInCodeFilter(admin.SimpleListFilter):
    """Jobs or schedules declared in code (``code_key`` set), or made by users."""

    title = "declared in code"
    parameter_name = "declared_in_code"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(code_key__isnull=False)
        if self.value() == "no":
            return queryset.filter(code_key__isnull=True)
        return queryset


def declared_in_code_notice(code_key: str | None, editable: str) -> SafeString:
    """The banner on the page of a job or schedule declared in code."""
    if not code_key:
        return format_html("{}", "No: made by a user.")
    return format_html(
        "<strong>Declared in code as <code>{}</code>.</strong> Change or remove the declaration there; "
        "<code>manage.py sync_schedules</code> and every scheduler start apply it. Here only {} can change.",
        code_key,
        editable,
    )
