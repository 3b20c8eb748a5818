"""The scheduling engine: dispatch what is due, resolve what needs Python, keep MongoDB informed.

- ``steps``: one dispatch, one pass over the work set, one copy of fired state to MongoDB;
- ``misfire``: the pure decisions behind the work set (next times, misfire policies);
- ``reconciler``: the mirror rebuilt from MongoDB;
- ``loop``: ``run_scheduler``'s loop, its housekeeping thread and change notices.
"""

from schedules.engine.loop import LoopSettings, SchedulerFailed, run_loop, scheduler_id
from schedules.engine.reconciler import reconcile
from schedules.engine.steps import dispatch_due, handle_work, sync_fired

__all__ = [
    "LoopSettings",
    "SchedulerFailed",
    "dispatch_due",
    "handle_work",
    "reconcile",
    "run_loop",
    "scheduler_id",
    "sync_fired",
]
