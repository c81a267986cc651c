"""storage.registry."""
