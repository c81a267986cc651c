"""Settings, read once from the environment, in groups; every field names its variable.

``python -m settings --markdown`` prints the table of every variable (README: Configuration).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields, replace
from functools import cache
from typing import Any

from ml.cores import available_cores
from settings.batch import BatchSettings, GateSettings
from settings.observability import ObservabilitySettings
from settings.parse import ROLES, SettingsError
from settings.security import SecuritySettings
from settings.serving import ApiSettings, ServingSettings
from settings.stores import DatabaseSettings, FileSettings, RedisSettings
from settings.transparency import TransparencySettings

__all__ = [
    "ROLES",
    "Settings",
    "SettingsError",
    "available_cores",
    "get_settings",
    "groups",
    "settings_or_exit",
    "variables",
]


@dataclass(frozen=True)
class Settings:
    """Platform settings, one group per concern."""

    files: FileSettings = field(default_factory=FileSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    serving: ServingSettings = field(default_factory=ServingSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    gates: GateSettings = field(default_factory=GateSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    transparency: TransparencySettings = field(default_factory=TransparencySettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)

    def changed(self, **groups: dict[str, Any]) -> Settings:
        """A copy with some fields changed, per group: ``changed(api={"port": 0})``."""
        return replace(self, **{g: replace(getattr(self, g), **c) for g, c in groups.items()})


def variables() -> set[str]:
    """Every environment variable the settings read."""
    return {f.metadata["env"] for group in groups().values() for f in fields(group)}


def groups() -> dict[str, type]:
    """Each group's name (the attribute of Settings) and class, in the table's order."""
    return {f.name: f.default_factory for f in fields(Settings)}  # type: ignore[misc]


@cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()


def settings_or_exit() -> Settings:
    """The settings, or one line naming the bad variable and exit status 2 (entrypoints)."""
    try:
        return get_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
