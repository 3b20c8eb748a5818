"""What the jobs app tells other apps: a job was enabled or disabled, a job is being deleted.

The schedules app connects receivers in its ``AppConfig.ready()`` (schedules/receivers.py);
jobs never imports schedules.
"""

from django.dispatch import Signal

# Sent after a job's ``enabled`` changed and was saved. Arguments: job, now (a callable).
job_enabled_changed = Signal()

# Sent before a job is deleted, so what hangs off it is unscheduled first. Arguments: job.
job_deleting = Signal()
