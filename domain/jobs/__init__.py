"""domain.jobs."""
