"""domain.keys."""
