"""The models of a process: its model cache, the inference service of an API process, and a
worker's shard evaluator and paired latency meter."""

from __future__ import annotations

from bootstrap.platform import Platform


def build_model_cache(platform: Platform, *, serving: bool):
    """A model cache for this process: batching and its metrics for serving, plain for workers."""
    from ml.serving import BatchingConfig, ModelCache
    from observability.metrics import instruments

    s, inst = platform.settings.serving, instruments()
    common = dict(
        max_models=s.model_cache_size,
        torch_threads=s.torch_threads,
        device=s.device,
        on_cache=inst.record_cache,
        graph=s.inference_graph,  # workers evaluate on the graph serving runs (ml.graph)
    )
    if not serving:
        return ModelCache(platform.artifacts.path_for, **common)
    cache = ModelCache(
        platform.artifacts.path_for,
        batching=BatchingConfig(s.max_batch, s.max_queue_delay_ms / 1000.0, s.max_queue),
        batch_threads=s.torch_batch_threads,
        idle_threads=s.torch_idle_threads,
        on_batch=inst.record_batch,
        **common,
    )
    inst.gauge(
        "models_loaded",
        "Model versions loaded in this process",
        lambda: [(len(cache.loaded), {})],
    )
    return cache


def build_inference(platform: Platform):
    """The inference service (model cache, batchers, prod map) for an API process."""
    from ml.inference import InferenceService
    from ml.serving import VersionRef

    cache = build_model_cache(platform, serving=True)

    async def lookup_version(name: str, version: str) -> VersionRef:
        v = await platform.queries.get_version(name, version)
        return VersionRef(name, version, v.sha256, v.artifact_uri, v.metadata)

    return InferenceService(cache, lookup_version, platform.queries.require_prod)


def build_shard_evaluator(platform: Platform):
    """The worker's shard evaluator over its own model cache."""
    from ml.shard_evaluator import TorchShardEvaluator

    files = platform.settings.files
    return TorchShardEvaluator(
        build_model_cache(platform, serving=False),
        files.data_dir,
        files.cache_dir,
        files.allow_download,
        platform.datasets.traffic,
    )


def build_gate_latency(platform: Platform, evaluator):
    """The paired latency meter of gates, on a worker's shard evaluator (its cache and datasets)."""
    from ml.gate_latency import DEFAULT_BATCH, TorchPairedLatency

    rounds = platform.settings.gates.latency_rounds
    return TorchPairedLatency(evaluator, rounds=rounds, batch_size=DEFAULT_BATCH)
