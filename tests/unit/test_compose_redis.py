"""compose.yaml: Redis requires a password and every client of it sends that password."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import yaml

from tests.conftest import ROOT


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())  # merges the x-app anchors


def _value(raw: str) -> str:
    """A ${VAR:-default} interpolation as compose resolves it with VAR unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", raw)


def test_redis_requires_a_password_and_every_client_uses_it() -> None:
    services = _compose()["services"]
    command = services["redis"]["command"]
    assert "--requirepass" in command
    password = _value(command[command.index("--requirepass") + 1])
    assert password
    assert _value(services["redis"]["environment"]["REDISCLI_AUTH"]) == password
    assert "ping" in " ".join(services["redis"]["healthcheck"]["test"])
    clients = {
        name: _value(s["environment"]["REDIS_URL"])
        for name, s in services.items()
        if "REDIS_URL" in (s.get("environment") or {})
    }
    assert {"api", "worker", "migrate", "admin-key"} <= set(clients)
    for name, url in clients.items():
        parts = urlsplit(url)
        assert (parts.hostname, parts.password) == ("redis", password), name
    # Nothing else names the Redis host without the password.
    text = (ROOT / "compose.yaml").read_text()
    assert not re.search(r"redis://redis", text), "a Redis URL without credentials"
