"""domain.console.views."""
