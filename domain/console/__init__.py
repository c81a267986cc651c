"""domain.console."""
