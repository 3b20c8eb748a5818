"""The demo: its data, webhook receiver and tasks, installed for local runs and tests only (JOBSCHEDULER_DEMO=1)."""
