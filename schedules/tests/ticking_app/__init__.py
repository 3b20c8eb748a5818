"""A test-only app whose tasks module declares a schedule every second (installed by ticking_settings)."""
