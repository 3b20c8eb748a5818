"""jobscheduler: a self-hosted job scheduling service on Django, MongoDB and Redis."""
