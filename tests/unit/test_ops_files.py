"""Static checks of the deployment files: compose.yaml, ops/Dockerfile, Prometheus, Grafana.

Fast and offline: no Docker engine and no servers. PyYAML is used when installed; without it
the compose and Prometheus checks fall back to plain-text assertions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = OPS / "Dockerfile"
DASHBOARD = OPS / "grafana" / "dashboards" / "platform.json"
PROVISIONING = OPS / "grafana" / "provisioning"

SERVICES = ("postgres", "redis", "migrate", "api", "worker", "prometheus", "grafana")
APP_SERVICES = ("migrate", "api", "worker")
APP_ENV = {
    "DATABASE_URL": "postgresql://postgres:postgres@postgres:5432/platform",
    "REDIS_URL": "redis://redis:6379/0",
}
# The metric instruments the platform exports (observability/metrics.py's meter).
EXPORTED_METRICS = (
    "request_latency_seconds",
    "request_count",
    "batch_size",
    "queue_wait_seconds",
    "models_loaded",
    "batch_job_duration_seconds",
    "queue_depth",
    "consumer_lag",
    "consumer_pending",
    "dead_letter_count",
)
# Suffixes the Prometheus exporter adds: counters get _total, histograms _bucket/_sum/_count.
EXPORT_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")
PROMQL_WORDS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "by",
    "without",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "le",
    "status",
    "endpoint",
    "model_name",
    "group",
    "job",
    "instance",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
}

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the environment
    yaml = None


def _load_yaml(path: Path) -> Any:
    if yaml is None:
        pytest.skip("PyYAML is not installed")
    return yaml.safe_load(path.read_text())


def _compose() -> dict[str, Any]:
    return _load_yaml(COMPOSE)


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _data_panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dash["panels"]:
        if panel.get("type") == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def _exprs(dash: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _data_panels(dash) for t in p.get("targets", [])]


def _metric_names(expr: str) -> set[str]:
    """Identifiers in a PromQL expression that are not functions, keywords or labels."""
    stripped = re.sub(r'"[^"]*"', "", expr)  # label values
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)  # range selectors
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", stripped))
    return {w for w in words if w not in PROMQL_WORDS}


# ------------------------------------------------------------------------ compose.yaml


def test_compose_text_names_every_service_and_env_var() -> None:
    text = COMPOSE.read_text()
    for service in SERVICES:
        assert re.search(rf"^  {service}:\s*$", text, re.M), f"service {service} missing"
    for name, value in APP_ENV.items():
        assert f"{name}: {value}" in text
    assert "dockerfile: ops/Dockerfile" in text
    assert "replicas: 2" in text


def test_compose_services_and_dependencies() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(SERVICES) <= set(services)

    assert "pg_isready" in json.dumps(services["postgres"]["healthcheck"]["test"])
    assert "ping" in json.dumps(services["redis"]["healthcheck"]["test"])
    assert any(v.split(":")[0] in compose["volumes"] for v in services["postgres"]["volumes"])

    migrate = services["migrate"]
    assert migrate["command"] == ["python", "-m", "cli", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["depends_on"]["redis"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        dep = services[name]["depends_on"]["migrate"]
        assert dep["condition"] == "service_completed_successfully", name

    assert services["api"]["command"] == ["python", "-m", "api"]
    assert "8000:8000" in services["api"]["ports"]
    assert services["worker"]["command"] == ["python", "-m", "consumers"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "9090:9090" in services["prometheus"]["ports"]
    assert "3000:3000" in services["grafana"]["ports"]
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"


def test_app_services_share_one_image_env_and_artifacts() -> None:
    services = _compose()["services"]
    first = services[APP_SERVICES[0]]
    assert first["build"] == {"context": ".", "dockerfile": "ops/Dockerfile"}
    for name in APP_SERVICES:
        svc = services[name]
        assert svc["build"] == first["build"], name
        assert svc["image"] == first["image"], name
        for key, value in APP_ENV.items():
            assert svc["environment"][key] == value, (name, key)
        assert any(v.endswith(":/data/artifacts") for v in svc["volumes"]), name


def test_compose_bind_mounts_exist() -> None:
    services = _compose()["services"]
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


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
        assert ":" in image and not image.endswith(":latest"), image


def test_dockerfile_installs_project_with_cpu_torch() -> None:
    text = DOCKERFILE.read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"torch==2.14.1"' in pyproject  # the pin the image resolves against
    assert "pip install" in text and re.search(r"pip install [^\n]*\.\s", text)
    assert "pyproject.toml" in text
    assert "https://download.pytorch.org/whl/cpu" in text
    assert "--extra-index-url" in text
    assert "dataset-fashion-mnist" in text
    assert re.search(r"^USER (?!root)\w+", text, re.M), "image must run as a non-root user"
    assert "WORKDIR /app" in text
    for env in (
        "PYTHONPATH=/app",
        "HOST=0.0.0.0",
        "PORT=8000",
        "STATE_DIR=/app/.platform",
        "ARTIFACTS_DIR=/data/artifacts",
    ):
        assert env in text, env
    assert re.search(r"^HEALTHCHECK .*\n?.*/health", text, re.M)
    assert 'CMD ["python", "-m", "api"]' in text


def test_dockerfile_copies_every_top_level_package() -> None:
    text = DOCKERFILE.read_text()
    for package in (
        "api",
        "cli",
        "consumers",
        "domain",
        "events",
        "ml",
        "observability",
        "storage",
        "migrations",
        "bench",
    ):
        assert re.search(rf"^COPY .*\b{package} \./{package}$", text, re.M), package
    for module in ("settings.py", "bootstrap.py", "alembic.ini"):
        assert module in text


def test_entrypoint_modules_exist() -> None:
    # consumers/__main__.py is built separately; only the existing entrypoints are checked.
    assert (ROOT / "api" / "__main__.py").is_file()
    assert (ROOT / "cli" / "__main__.py").is_file()
    assert (ROOT / "consumers").is_dir()


def test_dockerignore_keeps_context_small() -> None:
    lines = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for entry in (".venv", ".platform", "artifacts", "reports", ".git", "data", ".pytest_cache"):
        assert entry in lines, entry
    # Nothing the image copies may be ignored.
    for needed in ("api", "cli", "consumers", "pyproject.toml", "settings.py", "alembic.ini"):
        assert needed not in lines, needed


# --------------------------------------------------------------------------- Prometheus


def test_prometheus_scrapes_api_and_workers() -> None:
    text = (OPS / "prometheus.yml").read_text()
    assert "api:8000" in text and "platform-api" in text and "platform-worker" in text
    config = _load_yaml(OPS / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["platform-api"]
    assert api["static_configs"][0]["targets"] == ["api:8000"]
    assert api.get("metrics_path", "/metrics") == "/metrics"
    assert api.get("scrape_interval", config["global"]["scrape_interval"]) == "5s"
    worker = jobs["platform-worker"]
    assert worker["dns_sd_configs"][0]["names"] == ["worker"]
    assert worker["dns_sd_configs"][0]["port"] == 9100


# ------------------------------------------------------------------------------ Grafana


def test_grafana_datasource_provisioning() -> None:
    text = (PROVISIONING / "datasources" / "prometheus.yml").read_text()
    assert "uid: prometheus" in text and "http://prometheus:9090" in text
    config = _load_yaml(PROVISIONING / "datasources" / "prometheus.yml")
    (ds,) = config["datasources"]
    assert (ds["uid"], ds["type"], ds["url"]) == (
        "prometheus",
        "prometheus",
        "http://prometheus:9090",
    )


def test_grafana_dashboard_provider_points_at_mounted_folder() -> None:
    provider = _load_yaml(PROVISIONING / "dashboards" / "platform.yml")["providers"][0]
    services = _compose()["services"]
    mounts = {v.split(":")[1] for v in services["grafana"]["volumes"] if v.startswith("./")}
    assert provider["options"]["path"] in mounts


def test_dashboard_is_valid_and_uses_the_prometheus_uid() -> None:
    dash = _dashboard()
    assert dash["uid"] and dash["title"]
    assert 36 <= dash["schemaVersion"] <= 41
    panels = _data_panels(dash)
    assert len(panels) >= 10
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "prometheus"
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_dashboard_metrics_are_exported() -> None:
    allowed = {m + s for m in EXPORTED_METRICS for s in EXPORT_SUFFIXES}
    seen: set[str] = set()
    for expr in _exprs(_dashboard()):
        names = _metric_names(expr)
        assert names, expr
        assert names <= allowed, (expr, names - allowed)
        seen |= names
    # Every exported instrument is on the dashboard, counters with the exporter's _total suffix.
    assert "request_count_total" in seen and "request_count" not in seen
    for metric in EXPORTED_METRICS:
        assert any(n == metric or n.startswith(metric + "_") for n in seen), metric


def test_dashboard_covers_the_required_queries() -> None:
    exprs = "\n".join(_exprs(_dashboard()))
    assert "sum by (endpoint) (rate(request_count_total[1m]))" in exprs
    assert 'status=~"4..|5.."' in exprs
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le, endpoint)" in exprs
    assert "sum by (le, model_name) (rate(batch_job_duration_seconds_bucket" in exprs
    for metric in ("consumer_lag", "consumer_pending", "dead_letter_count"):
        assert f"by (group) ({metric})" in exprs, metric


def test_exported_instruments_are_declared_in_observability() -> None:
    # Counters and histograms are created in observability/metrics.py; gauges are registered by
    # name where their value lives (batcher, registry, consumers), so only the former are checked.
    source = (ROOT / "observability" / "metrics.py").read_text()
    for name in (
        "request_latency_seconds",
        "request_count",
        "batch_size",
        "queue_wait_seconds",
        "batch_job_duration_seconds",
    ):
        assert f'"{name}"' in source, name
