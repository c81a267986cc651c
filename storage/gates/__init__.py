"""storage.gates."""
