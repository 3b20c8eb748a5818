"""What every app's admin needs to write through its services: the user, a form's values, the saved object."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib.auth.models import User
from django.db import models
from django.http import HttpRequest


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
