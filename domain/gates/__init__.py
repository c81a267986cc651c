"""domain.gates.aggregate."""
