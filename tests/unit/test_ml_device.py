"""DEVICE resolution, pinned staging, and a served model giving the same logits on every device."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from events.registry import ArtifactMetadata
from ml.batcher import DynamicBatcher
from ml.device import DeviceError, HostStaging, resolve_device
from ml.serving import LoadedModel, VersionRef
from ml.zoo import build_model

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU on this machine")
META = ArtifactMetadata(
    architecture="mnist_cnn",
    normalization={"mean": 0.286, "std": 0.353},
    class_names=[str(i) for i in range(10)],
)


def _served(device: str) -> LoadedModel:
    torch.manual_seed(0)
    module = build_model("mnist_cnn", 10).eval()
    ref = VersionRef("m", "v1", "0" * 64, "m/v1/model.pt", {})
    return LoadedModel(
        ref,
        module,
        META,
        lambda f, fp: DynamicBatcher(f, forward_parts=fp),
        device=resolve_device(device),
    )


def _images(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def test_cpu_and_auto_resolve() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if HAS_CUDA else "cpu")
    assert resolve_device(None).type == ("cuda" if HAS_CUDA else "cpu")


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "cuda:-1", "mps", "cpu:0", ""])
def test_bad_spec_names_the_choices(spec: str) -> None:
    if spec == "":
        assert resolve_device(spec).type in ("cpu", "cuda")  # empty means the default, auto
        return
    with pytest.raises(DeviceError, match="auto, cpu, cuda or cuda:N"):
        resolve_device(spec)


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_refused_with_the_reason() -> None:
    with pytest.raises(DeviceError, match="no CUDA GPU is available"):
        resolve_device("cuda")


@needs_cuda
def test_cuda_index_out_of_range_is_refused() -> None:
    with pytest.raises(DeviceError, match="CUDA GPU"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_cpu_staging_joins_parts_without_changing_them() -> None:
    staging = HostStaging(torch.device("cpu"))
    parts = [_images(2), _images(3, seed=2)]
    out = staging.to_device(parts)
    assert torch.equal(out, torch.from_numpy(np.concatenate(parts)))


def test_forward_parts_equals_one_forward_and_mixed_dtypes_are_rescaled() -> None:
    model = _served("cpu")
    x = _images(5)
    whole = model.forward(x)
    np.testing.assert_array_equal(model.forward_parts([x[:2], x[2:]]), whole)
    mixed = model.forward_parts([x[:2], x[2:].astype(np.float32) / 255.0])
    np.testing.assert_allclose(mixed, whole, rtol=1e-5, atol=1e-5)


def test_batcher_answers_each_request_with_its_own_rows() -> None:
    model = _served("cpu")
    x = _images(6)
    expected = model.forward(x)

    async def run() -> list[np.ndarray]:
        return await asyncio.gather(*(model.batcher.submit(x[i : i + 1]) for i in range(6)))

    got = np.concatenate(asyncio.run(run()))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_warm_up_runs_without_changing_results() -> None:
    model = _served("cpu")
    x = _images(3)
    before = model.forward(x)
    model.warm_up(8)
    np.testing.assert_array_equal(model.forward(x), before)


@needs_cuda
def test_cuda_staging_is_pinned_and_lands_on_the_gpu() -> None:
    staging = HostStaging(torch.device("cuda", 0))
    parts = [_images(2), _images(3, seed=2)]
    out = staging.to_device(parts)
    assert out.device.type == "cuda"
    assert staging._pinned is not None and staging._pinned.is_pinned()
    assert torch.equal(out.cpu(), torch.from_numpy(np.concatenate(parts)))


@needs_cuda
def test_cuda_model_matches_the_cpu_model() -> None:
    x = _images(7)
    cpu = _served("cpu").forward(x)
    gpu_model = _served("cuda")
    gpu_model.warm_up(8)
    assert next(gpu_model.module.parameters()).device.type == "cuda"
    np.testing.assert_allclose(gpu_model.forward_parts([x[:3], x[3:]]), cpu, rtol=1e-3, atol=1e-3)
