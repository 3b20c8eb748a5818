"""jobscheduler: a self-hosted job scheduling service on Django, MongoDB and Redis."""

# The service's version, as pyproject.toml says (a test keeps them equal); heartbeats carry it.
__version__ = "0.1.0"
