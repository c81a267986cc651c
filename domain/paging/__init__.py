"""domain.paging."""
