"""Raw pymongo access for batch writes and look-ups the ORM cannot express in one indexed round trip."""

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

from django.db import connection, models
from pymongo.collection import Collection


def collection(model: type[models.Model]) -> Collection[dict[str, Any]]:
    """The MongoDB collection behind ``model``, on Django's own connection."""
    return cast(Any, connection).get_collection(model._meta.db_table)


def by_ids(model: type[models.Model], ids: Iterable[Any]) -> dict[Any, Any]:
    """The instances of ``model`` with these ids, by id, in one query on ``_id``.

    The ORM sends ``pk__in`` as ``{$expr: {$in: ["$_id", [...]]}}``, which no index answers
    (MongoDB and SecantusDB both scan the collection); this asks ``{_id: {$in: [...]}}``.
    Stored times come back aware (UTC), as the ORM gives them.
    """
    wanted = list(set(ids))
    if not wanted:
        return {}
    fields = model._meta.concrete_fields
    names = [field.attname for field in fields]
    found = {}
    for document in collection(model).find({"_id": {"$in": wanted}}):
        values = [
            _aware(document[field.column]) if field.column in document else field.get_default() for field in fields
        ]
        found[document["_id"]] = model.from_db(connection.alias, names, values)
    return found


def _aware(value: Any) -> Any:
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value
