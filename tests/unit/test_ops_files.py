"""Static checks of the deployment files: compose.yaml, ops/Dockerfile, Prometheus, Grafana.

Fast and offline: no Docker engine and no servers. Grafana cannot run here, so its dashboard
and provisioning are checked as files; tests/integration/test_observability.py then runs
every dashboard query against a real Prometheus.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = OPS / "Dockerfile"
DASHBOARD = OPS / "grafana" / "dashboards" / "platform.json"
PROVISIONING = OPS / "grafana" / "provisioning"

SERVICES = ("postgres", "redis", "migrate", "api", "worker", "prometheus", "grafana")
APP_SERVICES = ("migrate", "api", "worker")
LONG_RUNNING = ("postgres", "redis", "worker", "prometheus", "grafana")  # api: image HEALTHCHECK
APP_ENV = {
    "DATABASE_URL": "postgresql://platform_app:platform_app@postgres:5432/platform",
    "REDIS_URL": "redis://:${REDIS_PASSWORD:-change-me-redis}@redis:6379/0",  # requirepass
}
UNITS = {"reqps", "ops", "s", "short", "none"}


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _all_panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dash["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # a collapsed row nests its panels
    return out


def data_panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that is not a row."""
    return [p for p in _all_panels(dash) if p.get("type") != "row"]


def settings_variables() -> set[str]:
    """The environment variables the settings read."""
    from settings import variables

    return variables()


def exported_metrics() -> dict[str, set[str]]:
    """Every metric the platform exports (instruments and gauges) -> its series names."""
    from observability.metrics import DECLARED, instruments
    from storage.streams import admin as stream_admin
    from storage.streams import log_stats

    instruments()
    gauges = {*stream_admin.GAUGES, *log_stats.GAUGES, "models_loaded"}
    out = {name: {name} for name in gauges}
    for name, declared in DECLARED.items():
        if declared.kind == "counter":
            out[name] = {f"{name}_total"}
        elif declared.kind == "histogram":
            out[name] = {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            out[name] = {name}
    return out


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (identifiers followed by a selector, range or ')')."""
    stripped = re.sub(r'"[^"]*"', '""', expr)
    stripped = re.sub(r"\b(by|without)\s*\([^)]*\)", "", stripped)
    words = re.findall(r"([a-z_:][a-z0-9_:]*)\s*(?=[\[{)]|$|\s*[=<>!]=?\s*\d)", stripped)
    return {w for w in words if w not in {"by", "without"}}


def grouping_labels(expr: str) -> set[str]:
    """Labels named in every ``by (...)`` clause."""
    found: set[str] = set()
    for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        found |= {label.strip() for label in group.split(",") if label.strip()}
    return found


# ------------------------------------------------------------------------ compose.yaml


def test_compose_services_healthchecks_and_dependencies() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(SERVICES) <= set(services)
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    assert "HEALTHCHECK" in DOCKERFILE.read_text()  # the api inherits the image's check
    assert "disable" not in services["api"].get("healthcheck", {})

    migrate = services["migrate"]
    assert migrate["command"] == ["python", "-m", "cli", "migrate"]
    assert migrate["restart"] == "no"
    for name in ("api", "worker"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == deps["redis"]["condition"] == "service_healthy"
    assert services["prometheus"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert services["prometheus"]["depends_on"]["worker"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_compose_volumes_are_named_and_declared() -> None:
    compose = _compose()
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
    assert {"pgdata", "redisdata", "artifacts", "promdata", "grafanadata"} <= declared


def test_redis_keeps_an_append_only_file_and_never_evicts() -> None:
    command = _compose()["services"]["redis"]["command"]
    joined = " ".join(command)
    assert "--appendonly yes" in joined
    assert "--maxmemory-policy noeviction" in joined


def test_workers_scale_and_only_loopback_ports_are_published() -> None:
    services = _compose()["services"]
    worker = services["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert "ports" not in worker and "container_name" not in worker  # --scale worker=N works
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), (name, port)
    assert {p.rsplit(":", 2)[-1] for p in services["api"]["ports"]} == {"8000"}


def test_prometheus_lifecycle_api_is_off_and_grafana_viewers_cannot_edit() -> None:
    services = _compose()["services"]
    flags = " ".join(services["prometheus"]["command"])
    assert "--web.enable-lifecycle" not in flags and "--web.enable-admin-api" not in flags
    env = services["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_USERS_VIEWERS_CAN_EDIT"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert "admin" not in env["GF_SECURITY_ADMIN_PASSWORD"].split(":-")[-1]


def test_app_environment_matches_settings() -> None:
    services = _compose()["services"]
    known = settings_variables()
    assert {"DATABASE_URL", "REDIS_URL", "METRICS_PORT", "STATE_DIR"} <= known  # parser works
    first = services[APP_SERVICES[0]]
    for name in APP_SERVICES:
        svc = services[name]
        assert svc["build"] == first["build"] == {"context": ".", "dockerfile": "ops/Dockerfile"}
        assert svc["image"] == first["image"], name
        unknown = {k for k in svc["environment"] if k not in known and not k.startswith("OTEL_")}
        assert unknown == set(), f"{name} sets variables the settings never read: {unknown}"
        for key, value in APP_ENV.items():
            assert svc["environment"][key] == value, (name, key)
        assert any(v.endswith(":/data/artifacts") for v in svc["volumes"]), name
    assert services["worker"]["environment"]["METRICS_PORT"] == "9100"


def test_no_latest_tags_in_compose() -> None:
    for service in _compose()["services"].values():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), image


# -------------------------------------------------------------------------- Dockerfile


def test_dockerfile_base_images_are_pinned() -> None:
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms
    for ref in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ref)
        assert image.startswith("python:3.11-slim"), image


def _pins(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([a-z0-9_.-]+)==(\S+)", path.read_text(), re.M))


def _requirements(path: Path) -> list[str]:
    """The lock's requirements, each with its continuation lines (hashes) joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    return [line for line in text.splitlines() if re.match(r"^[a-z0-9_.-]+==", line)]


IMAGE_LOCK = OPS / "requirements-image.lock"


def test_locks_pin_every_file_by_hash() -> None:
    for lock in (ROOT / "requirements.lock", IMAGE_LOCK):
        lines = _requirements(lock)
        assert lines, lock
        for line in lines:
            assert re.search(r"--hash=sha256:[0-9a-f]{64}", line), f"{lock.name}: {line[:60]}"


def test_image_installs_the_locked_dependencies_that_dev_installs() -> None:
    text = DOCKERFILE.read_text()
    dev = (ROOT / "dev").read_text()
    assert "--require-hashes -r requirements.lock" in dev  # ./dev installs exactly the lock
    assert "--no-deps" in dev  # ... and resolves nothing more (like the image)
    assert re.search(r"^COPY ops/requirements-image\.lock \./$", text, re.M)
    assert "--require-hashes --no-deps -r requirements-image.lock" in text
    # One index: an extra one lets a same-named package from it win (dependency confusion).
    assert "index-url" not in text
    assert "pip install --no-deps" in text and "pip check" in text  # nothing resolved beyond
    locked = _pins(ROOT / "requirements.lock")
    image = _pins(IMAGE_LOCK)
    assert {name: locked.get(name) for name in image} == image  # the image at ./dev's pins
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in image, f"{name} is a runtime dependency without a pin in the image lock"
    assert (
        re.search(r"torch.__version__.split\('\+'\)\[0\] == '([\d.]+)'", text).group(1)
        == (locked["torch"])
    )


def test_dockerfile_copies_every_top_level_package() -> None:
    text = DOCKERFILE.read_text()
    packages = [p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()]
    for package in set(packages) - {"tests"}:
        assert re.search(rf"^COPY .*\b{package} \./{package}$", text, re.M), package
    assert "alembic.ini" in text  # bootstrap/ and settings/ are packages, checked above
    assert re.search(r"^USER (?!root)\w+", text, re.M), "image must run as a non-root user"
    assert "PORT=8000" in text and "HOST=0.0.0.0" in text


# --------------------------------------------------------------------------- Prometheus


def test_prometheus_targets_are_the_compose_services() -> None:
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    services = _compose()["services"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (api_target,) = jobs["platform-api"]["static_configs"][0]["targets"]
    host, port = api_target.split(":")
    assert host in services and "PORT=" + port in DOCKERFILE.read_text()
    assert "PORT" not in services[host].get("environment", {})
    sd = jobs["platform-worker"]["dns_sd_configs"][0]
    (name,) = sd["names"]
    assert name in services
    assert str(sd["port"]) == services[name]["environment"]["METRICS_PORT"]
    assert all(j.get("metrics_path", "/metrics") == "/metrics" for j in jobs.values())


# ------------------------------------------------------------------------------ Grafana


def test_grafana_provisioning_matches_the_dashboard() -> None:
    (ds,) = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert (ds["type"], ds["url"]) == ("prometheus", "http://prometheus:9090")
    assert ds["editable"] is False
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "platform.yml").read_text())
    (provider,) = provider["providers"]
    assert provider["allowUiUpdates"] is False
    mounts = {v.split(":")[1] for v in _compose()["services"]["grafana"]["volumes"]}
    assert provider["options"]["path"] in mounts
    for panel in data_panels(_dashboard()):
        assert panel["datasource"] == {"type": "prometheus", "uid": ds["uid"]}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == ds["uid"], panel["title"]


def test_dashboard_panels_have_unique_ids_queries_and_units() -> None:
    dash = _dashboard()
    assert dash["uid"] and dash["title"] and dash["editable"] is False
    assert 36 <= dash["schemaVersion"] <= 41
    ids = [p["id"] for p in _all_panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    panels = data_panels(dash)
    assert len(panels) >= 20
    for panel in panels:
        assert panel["targets"], panel["title"]
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit in UNITS, (panel["title"], unit)
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.strip() and expr.count("(") == expr.count(")"), expr
            if unit == "s":
                assert "_seconds" in expr, (panel["title"], "unit s on a metric not in seconds")


def test_dashboard_names_only_exported_metrics_and_grouped_labels() -> None:
    exported = exported_metrics()
    series = set().union(*exported.values())
    seen: set[str] = set()
    for panel in data_panels(_dashboard()):
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, target["expr"]
            assert names <= series, (target["expr"], names - series)
            seen |= names
            legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            assert legend <= grouping_labels(target["expr"]), (target["expr"], legend)
    missing = sorted(name for name, names in exported.items() if not names & seen)
    assert missing == [], f"exported but on no panel: {missing}"


def test_the_metric_name_parser() -> None:
    expr = 'sum by (group, stream) (rate(consumer_entries_total{outcome="x"}[5m])) / max(relay_lag_seconds)'
    assert metric_names(expr) == {"consumer_entries_total", "relay_lag_seconds"}
    assert grouping_labels(expr) == {"group", "stream"}
    assert metric_names("max by (a, b) (model_prod_version) == 1") == {"model_prod_version"}


@pytest.mark.parametrize("metric", ["consumer_lag", "consumer_pending", "dead_letter_count"])
def test_group_panels_group_by_labels_the_gauges_have(metric: str) -> None:
    exprs = [t["expr"] for p in data_panels(_dashboard()) for t in p["targets"]]
    (expr,) = [e for e in exprs if metric in e]
    assert grouping_labels(expr) == {"group", "stream"}  # stream_stats labels these two
