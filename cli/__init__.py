"""Operator commands; `just` recipes call ``python -m cli``."""
