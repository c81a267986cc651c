"""storage.dead_letters.store."""
