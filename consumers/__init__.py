"""Consumer groups: the runner and one module per group."""
