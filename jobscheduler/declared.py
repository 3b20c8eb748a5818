"""Jobs and schedules declared in code (``code_key`` set): users may run them, only the code may redefine them.

The services of both apps refuse, with this module's messages, an edit or a delete of what a
declaration owns unless the code sync (``schedules.sync_declared``) makes it, so the admin and
the API cannot make a declared schedule drift from its code.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from django.core.exceptions import ValidationError

SYNC_COMMAND = "manage.py sync_schedules"


def declared_message(code_key: str, what: str) -> str:
    return (
        f"This {what} is declared in code (as {code_key!r}): change or remove the declaration there; "
        f"{SYNC_COMMAND} (and every scheduler start) applies it."
    )


def refuse_code_edits(
    code_key: str, fields: Mapping[str, Any], *, stored: Mapping[str, Any], allowed: Collection[str], what: str
) -> None:
    """Raise ValidationError if ``fields`` change anything but ``allowed`` from the ``stored`` values.

    Compared with what is stored, not with the object: the admin's form has set its values on
    the object already, and an API PUT sends unchanged fields too.
    """
    changed = sorted(name for name, value in fields.items() if name not in allowed and stored.get(name) != value)
    if changed:
        only = f" Here only {', '.join(allowed)} can change." if allowed else ""
        message = declared_message(code_key, what) + only
        raise ValidationError({name: message for name in changed})


def refuse_code_delete(code_key: str, what: str) -> None:
    raise ValidationError(
        f"This {what} is declared in code (as {code_key!r}): remove the declaration, then "
        f"{SYNC_COMMAND} pauses it and {SYNC_COMMAND} --prune-orphans deletes it."
    )
