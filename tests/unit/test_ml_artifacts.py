"""The architecture registry and model artifacts: round trips and refusal of bad files."""

from __future__ import annotations

import hashlib
import os
import pickle

import msgspec
import pytest
import torch
from torch import nn

from events.registry import ArtifactMetadata
from ml import zoo
from ml.artifacts import (
    ArtifactError,
    load_model,
    load_state_dict,
    read_metadata,
    save_artifact,
    sha256_file,
)
from ml.zoo import UnknownArchitecture, build_model, list_architectures, register_architecture


def test_registry_lists_the_builtin_architectures():
    assert {"mnist_cnn", "mlp", "resnet18"} <= set(list_architectures())


def test_unknown_architecture_lists_known_names():
    with pytest.raises(UnknownArchitecture, match=r"'nope'.*mlp, mnist_cnn, resnet18"):
        build_model("nope")


def test_register_architecture_adds_a_type(monkeypatch):
    monkeypatch.setattr(zoo, "ARCHITECTURES", dict(zoo.ARCHITECTURES))  # undone after the test

    @register_architecture("tiny_test_arch")
    def build(num_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes))

    assert build_model("tiny_test_arch", 3)(torch.zeros(2, 1, 28, 28)).shape == (2, 3)


@pytest.mark.parametrize("arch", ["mnist_cnn", "mlp", "resnet18"])
def test_artifact_round_trip_predicts_identically(tmp_path, arch):
    torch.manual_seed(0)
    model = build_model(arch).eval()
    meta = ArtifactMetadata(architecture=arch, num_classes=10, normalization={"mean": 0.5})
    path = save_artifact(model, meta, tmp_path / arch)
    assert read_metadata(path) == meta
    loaded = load_model(path)  # from the artifact folder alone
    assert not loaded.training
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert sorted(os.listdir(tmp_path / arch)) == ["metadata.json", "model.pt"]


def test_sha256_file(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"abc" * 1000)
    assert sha256_file(path) == (hashlib.sha256(b"abc" * 1000).hexdigest(), 3000)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("via", ["pickle", "torch.save"])
def test_malicious_pickle_is_refused_and_not_executed(tmp_path, via):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    payload = {"weight": _Evil(marker)}
    if via == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    with pytest.raises(ArtifactError, match="not a loadable PyTorch state_dict"):
        load_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"w": 1.5}, "do not"),
        ({}, "empty"),
        ([torch.zeros(2)], "got list"),
        (torch.zeros(3), "got Tensor"),
        ({1: torch.zeros(1)}, "do not"),
    ],
)
def test_non_state_dicts_are_refused(tmp_path, content, match):
    path = tmp_path / "model.pt"
    torch.save(content, path)
    with pytest.raises(ArtifactError, match=match):
        load_state_dict(path)


def test_whole_module_pickle_and_garbage_are_refused(tmp_path):
    module = tmp_path / "module.pt"
    torch.save(build_model("mlp"), module)
    with pytest.raises(ArtifactError, match="whole modules are refused"):
        load_state_dict(module)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(ArtifactError, match="not a loadable"):
        load_state_dict(garbage)
    with pytest.raises(ArtifactError, match="no such artifact"):
        load_state_dict(tmp_path / "missing.pt")


def test_weights_that_do_not_fit_the_architecture(tmp_path):
    path = save_artifact(build_model("mlp"), ArtifactMetadata(architecture="mlp"), tmp_path)
    with pytest.raises(ArtifactError, match="do not fit architecture 'mnist_cnn'"):
        load_model(path, ArtifactMetadata(architecture="mnist_cnn"))
    with pytest.raises(ArtifactError, match="no architecture"):
        load_model(path, ArtifactMetadata())
    with pytest.raises(ArtifactError, match="unknown architecture"):
        load_model(path, ArtifactMetadata(architecture="nope"))


def test_bad_metadata_sidecar(tmp_path):
    path = save_artifact(build_model("mlp"), ArtifactMetadata(architecture="mlp"), tmp_path)
    (tmp_path / "metadata.json").write_bytes(msgspec.json.encode({"num_classes": "ten"}))
    with pytest.raises(ArtifactError, match="invalid metadata"):
        read_metadata(path)
    (tmp_path / "metadata.json").unlink()
    assert read_metadata(path) is None
