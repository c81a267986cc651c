"""storage.dead_letters."""
