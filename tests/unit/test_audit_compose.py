"""The compose stack runs the application as a role that cannot change the event log."""

from __future__ import annotations

from urllib.parse import urlparse

import yaml

from tests.unit.test_ops_files import COMPOSE


def test_only_the_migration_connects_as_the_owner() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    migrate = services["migrate"]["environment"]
    owner = urlparse(migrate["MIGRATION_DATABASE_URL"]).username
    app = urlparse(migrate["DATABASE_URL"]).username
    assert owner == "postgres" and app and app != owner
    for name in ("api", "worker"):
        env = services[name].get("environment") or {}
        assert "MIGRATION_DATABASE_URL" not in env, name
        assert urlparse(env.get("DATABASE_URL", migrate["DATABASE_URL"])).username == app
