"""Authentication backends: the login lockout's, and Django's ModelBackend loading permissions without a join.

``ModelBackend``:

Django reads ``content_type__app_label`` through ``values_list``, which becomes a
``$lookup`` plus a nested ``$project``. SecantusDB 0.7.0b3 (the local and test server)
answers that projection with a literal 1, leaving staff users with no permissions; the
contract test ``test_values_list_across_a_foreign_key`` pins the gap. Two plain queries
give the same set on every server.
"""

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType


class ModelBackend(DjangoModelBackend):
    def _get_permissions(self, user_obj: Any, obj: Any, from_name: str) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        cache_name = f"_{from_name}_perm_cache"
        if not hasattr(user_obj, cache_name):
            if user_obj.is_superuser:
                perms = Permission.objects.all()
            else:
                perms = getattr(self, f"_get_{from_name}_permissions")(user_obj)
            pairs = list(perms.values_list("content_type_id", "codename"))
            apps = dict(
                ContentType.objects.filter(pk__in={type_id for type_id, _ in pairs}).values_list("pk", "app_label")
            )
            setattr(user_obj, cache_name, {f"{apps[type_id]}.{codename}" for type_id, codename in pairs})
        return set(getattr(user_obj, cache_name))


class LoginLockoutBackend(AxesStandaloneBackend):
    """django-axes' check that refuses a locked-out username and address before any password.

    ``authenticate()`` without a request comes from code (a management command, a test), not
    from a login form: there is no client address to lock out, so it passes through instead
    of raising as django-axes does.
    """

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)  # type: ignore[no-any-return]
