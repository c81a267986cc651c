"""Name-injected ports: controllers ask for the narrow dependency they use, by parameter name."""

from __future__ import annotations

from typing import Annotated, TypeAlias, TypeVar

from litestar.di import Dependency
from litestar.params import SkipValidationMarker

T = TypeVar("T")

# Ports are Protocols: Litestar cannot isinstance-check them, and they come from bootstrap.
Port: TypeAlias = Annotated[T, Dependency(kind="named"), SkipValidationMarker()]
