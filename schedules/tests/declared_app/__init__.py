"""A test-only app whose tasks module declares schedules; the declared-schedule tests install it for their duration."""
