"""A small multilayer perceptron: a fast baseline that trains in seconds on CPU."""

from __future__ import annotations

from torch import nn

from ml.zoo import register_architecture


@register_architecture("mlp")
def build(num_classes: int) -> nn.Module:
    """Build flatten → 784→256 → ReLU → dropout 0.2 → 256→classes (logits)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(28 * 28, 256),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(256, num_classes),
    )
