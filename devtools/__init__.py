"""Development-only tooling: local servers, the run command and the pytest plugin; the service never imports it."""
