"""domain.registry.decisions."""
