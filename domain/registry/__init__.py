"""domain.registry."""
