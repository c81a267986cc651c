"""The network of the official PyTorch MNIST example (pytorch/examples mnist/main.py).

It returns logits, not log_softmax: losses use ``cross_entropy`` and callers apply softmax
for probabilities, so every architecture in the zoo has the same output contract.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ml.zoo import register_architecture


class MnistCnn(nn.Module):
    """conv(1→32) → conv(32→64) → max-pool → fc(9216→128) → fc(128→classes)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map [N,1,28,28] float input to [N,num_classes] logits."""
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return self.fc2(x)


@register_architecture("mnist_cnn")
def build(num_classes: int) -> nn.Module:
    """Build the PyTorch-example MNIST CNN."""
    return MnistCnn(num_classes)
