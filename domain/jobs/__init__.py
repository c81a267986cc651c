"""domain.jobs.aggregate."""
