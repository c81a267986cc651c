"""storage.console."""
