"""domain.audit."""
