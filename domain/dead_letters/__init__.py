"""domain.dead_letters."""
