"""Logging and metrics setup; imports nothing of the project."""
