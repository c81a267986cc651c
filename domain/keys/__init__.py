"""domain.keys.aggregate."""
