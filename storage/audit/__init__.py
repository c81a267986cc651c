"""storage.audit.auditor."""
