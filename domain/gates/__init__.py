"""domain.gates."""
