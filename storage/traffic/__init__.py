"""Adapters of traffic capture: policies and frozen datasets in the log, captured requests."""
