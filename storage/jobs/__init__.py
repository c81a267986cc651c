"""storage.jobs."""
