"""Logs, metrics and traces."""

from __future__ import annotations

from dataclasses import dataclass

from settings.parse import optional, read_int, setting, text


@dataclass(frozen=True)
class ObservabilitySettings:
    """Logs, metrics, traces ([observability](docs/observability.md))."""

    log_level: str | None = text("LOG_LEVEL", "structlog level.", "`info` (CLI: `warning`)")
    metrics_port: int | None = setting(
        "METRICS_PORT",
        lambda: read_int("METRICS_PORT", 0) or None,
        "a free port",
        "Where a worker serves `/metrics` (printed at start; `just monitor` finds it).",
    )
    prometheus_listen: str = setting(
        "PROMETHEUS_LISTEN",
        lambda: optional("PROMETHEUS_LISTEN") or "127.0.0.1:9090",
        "`127.0.0.1:9090`",
        "Where `just monitor`'s Prometheus listens.",
    )
    otel_service_name: str | None = text(
        "OTEL_SERVICE_NAME",
        "`service.name` of traces (and of metrics, else `inference-eval-platform`).",
        "`platform-api`, `platform-worker`",
    )
    otel_endpoint: str | None = text(
        "OTEL_EXPORTER_OTLP_ENDPOINT", "Export spans over OTLP/HTTP there (the SDK reads it too)."
    )
    otel_traces_endpoint: str | None = text(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "As `OTEL_EXPORTER_OTLP_ENDPOINT`, for traces only."
    )
    otel_traces_sampler: str | None = text(
        "OTEL_TRACES_SAMPLER",
        "The SDK's sampler; unset, spans record only what the caller samples or an exporter takes.",
    )

    def level(self, default: str = "info") -> str:
        """LOG_LEVEL, or the entrypoint's default."""
        return self.log_level or default

    @property
    def exporting(self) -> bool:
        """Whether spans leave the process (an OTLP endpoint is set)."""
        return bool(self.otel_endpoint or self.otel_traces_endpoint)
