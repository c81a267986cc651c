"""domain.dead_letters.aggregate."""
