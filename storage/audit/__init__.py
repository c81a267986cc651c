"""storage.audit."""
