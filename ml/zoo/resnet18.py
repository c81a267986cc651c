"""torchvision's ResNet-18, adapted to 1×28×28 input and trained from scratch.

The ImageNet stem (7×7 stride-2 conv and a max-pool) would shrink 28×28 to 7×7 before the
first block, so it is replaced by a 3×3 stride-1 conv on one channel and no max-pool.
"""

from __future__ import annotations

from torch import nn

from ml.zoo import register_architecture


@register_architecture("resnet18")
def build(num_classes: int) -> nn.Module:
    """Build ResNet-18 (weights=None) with a 1-channel 3×3 stem and no max-pool."""
    # Here, not at the top: every architecture module is imported to register it, and
    # torchvision's import costs each process ~90 MB that only ResNet-18 needs.
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model
