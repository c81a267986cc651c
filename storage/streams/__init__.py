"""storage.streams."""
