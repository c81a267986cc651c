"""`just soak`: the API and workers under mixed load for N minutes (issue 25)."""
