"""pytest plugin: registered through the pytest11 entry point (built by the main-job issue)."""
