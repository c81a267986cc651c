"""Name-injected dependencies: controllers ask for what they use, by parameter name.

``bus`` is the command bus (every use case), ``settings`` the settings the composition root
read; the readers (``queries``, ``job_queries``, ...) are the read side.
"""

from __future__ import annotations

from typing import Annotated, TypeAlias, TypeVar

from litestar.di import Dependency
from litestar.params import SkipValidationMarker

from bootstrap import Settings
from domain.bus import MessageBus

T = TypeVar("T")

# Ports are Protocols: Litestar cannot isinstance-check them, and they come from bootstrap.
Port: TypeAlias = Annotated[T, Dependency(kind="named"), SkipValidationMarker()]
Bus = Port[MessageBus]
Config = Port[Settings]
