"""domain.audit.reports."""
