"""The one place that answers a name matching nothing: the known names and the closest."""

from __future__ import annotations

from domain.errors import NotFound, UnknownModel
from domain.suggest import closest, did_you_mean, listing, unknown


def test_the_closest_name_is_suggested_and_a_far_one_is_not() -> None:
    models = ["fashion_mlp", "mnist_cnn", "resnet18"]
    assert closest("mnist_cn", models) == "mnist_cnn"
    assert closest("mnits_cnn", models) == "mnist_cnn"
    assert closest("zzz", models) is None
    assert did_you_mean("--froce", ["--force", "--reason"]) == "did you mean --force?"
    assert did_you_mean("--colour", ["--force", "--reason"]) == ""


def test_the_message_lists_the_known_names_sorted_and_bounded() -> None:
    assert unknown("model", "mnist_cn", ["resnet18", "mnist_cnn"]) == (
        "unknown model 'mnist_cn' (known: mnist_cnn, resnet18); did you mean mnist_cnn?"
    )
    assert unknown("model", "zzz", ["mnist_cnn"]) == "unknown model 'zzz' (known: mnist_cnn)"
    assert unknown("model", "x", []) == "unknown model 'x' (no model is registered yet)"
    many = [f"m{i:03d}" for i in range(25)]
    assert listing(many, limit=3) == "m000, m001, m002 and 22 more"


def test_an_unknown_model_learns_the_known_names_at_the_entrypoint() -> None:
    exc = UnknownModel("mnist_cn")
    assert isinstance(exc, NotFound) and str(exc) == "unknown model 'mnist_cn'"
    assert exc.known is None
    exc.learn(["mnist_cnn", "fashion_mlp"])
    assert exc.known == ("fashion_mlp", "mnist_cnn")
    assert str(exc) == (
        "unknown model 'mnist_cn' (known: fashion_mlp, mnist_cnn); did you mean mnist_cnn?"
    )
    assert str(UnknownModel("mnist_cn", ["mnist_cnn"])).endswith("did you mean mnist_cnn?")
