"""storage.keys."""
