"""The admin's runs list over a million runs: a paginator that neither counts nor sorts them all.

What the stock list costs there (docs/dashboard-benchmark.md): a count of every run, a page
read by sorting every run, and its jobs and schedules joined in ($lookup, select_related) or
prefetched with a filter MongoDB cannot answer from an index ($expr). With no filter, the
paginator

- takes MongoDB's estimate of the collection's size (its metadata on MongoDB; SecantusDB
  still walks the collection, without decoding a document, so the estimate is kept in Redis
  for ESTIMATE_SECONDS: the total shown may be that old);
- reads a page of the default order (newest nominal time first) from the smallest window
  of recent runs (the last minute, ten minutes, hour, ..., month) holding every row up to
  that page: the same rows in the same order as the whole list, since every run in the
  window sorts before every run outside it, read by the (nominal time) index instead of a
  sort of the collection.

A filtered list (a status, a job, a user's own jobs) counts and sorts what matches, through
the index on its one condition; so does any other order. A window is never added to another
condition: SecantusDB answers two conditions by reading every run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import redis
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.functional import cached_property

from jobs.models import Run
from jobscheduler import mongo
from jobscheduler.keyspace import Keyspace, default_keyspace

# Tried smallest first: a miss costs a count of the window, and SecantusDB reads every run in
# it, so a busy service's first page comes from its last minutes.
WINDOWS = tuple(timedelta(minutes=minutes) for minutes in (1, 10, 60, 6 * 60, 24 * 60, 7 * 24 * 60, 31 * 24 * 60))
ESTIMATE_SECONDS = 300


def estimated_run_count(keyspace: Keyspace | None = None) -> int:
    """How many runs are stored, as MongoDB estimates it, remembered in Redis for a while."""
    keyspace = keyspace or default_keyspace()
    key = keyspace.global_key("runs:estimated-count")
    try:
        kept = keyspace.client.get(key)
    except redis.RedisError:
        kept = None
    if kept is not None:
        return int(kept)
    count = mongo.collection(Run).estimated_document_count()
    with contextlib.suppress(redis.RedisError):
        keyspace.client.set(key, count, ex=ESTIMATE_SECONDS)
    return count


class RunsPaginator(Paginator):
    """Pages of the runs list (jobs.admin.RunAdmin.paginator)."""

    now: Callable[[], datetime] = staticmethod(timezone.now)

    @cached_property
    def count(self) -> int:
        if self._unfiltered:
            return estimated_run_count()
        return int(super().count)

    @property
    def _unfiltered(self) -> bool:
        return self._queryset is not None and not self._queryset.query.where

    @property
    def _queryset(self) -> QuerySet[Any] | None:
        return self.object_list if isinstance(self.object_list, QuerySet) else None

    def page(self, number: Any) -> Page:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        return Page(self._rows(bottom, top), number, self)

    def _rows(self, bottom: int, top: int) -> Any:
        queryset = self._queryset
        if queryset is None or not (self._unfiltered and _newest_first(queryset)):
            return self.object_list[bottom:top]
        moment = self.now()
        for window in WINDOWS:
            recent = queryset.filter(nominal_time__gte=moment - window)
            if recent.count() >= top:
                return recent[bottom:top]
        return queryset[bottom:top]


def _newest_first(queryset: QuerySet[Any]) -> bool:
    ordering = list(queryset.query.order_by or queryset.model._meta.ordering)
    return bool(ordering) and ordering[0] == "-nominal_time"
