"""Raw pymongo access for batch writes the ORM cannot express in one round trip."""

from typing import Any, cast

from django.db import connection, models
from pymongo.collection import Collection


def collection(model: type[models.Model]) -> Collection[dict[str, Any]]:
    """The MongoDB collection behind ``model``, on Django's own connection."""
    return cast(Any, connection).get_collection(model._meta.db_table)
