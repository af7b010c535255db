"""NAM channel attention (Liu et al., "NAM: Normalization-based Attention Module", arXiv:2111.12419).

Written from the paper and the spec (plugins.md §3); the authors' repository has no licence.

The channel branch re-uses the scale factors of a BatchNorm as channel importances: with gamma the BN weight,
w = |gamma| / sum(|gamma|) and out = sigmoid(w * BN(x)) * x. As in the authors' code, w is computed from gamma
without gradient (gamma still learns through BN(x)). Place it after the last BN of each residual branch, before the
add ("ResNet50-NAM"): timm's `block_args=dict(attn_layer=NAM)`. The paper's spatial branch needed a fixed input size
and is left out, as the authors did later. Its optional sparsity regulariser (a L1 penalty s * |gamma| on the NAM
scale factors) is `add_nam_sparsity_grad`, to be called between `backward()` and the optimiser step.
"""
import torch
from torch import nn

__all__ = ['NAM', 'add_nam_sparsity_grad']


class NAM(nn.Module):
    """NAM channel attention: 2 * channels parameters (one BatchNorm2d); output shape = input shape."""

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1, device=None, dtype=None):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=eps, momentum=momentum, device=device, dtype=dtype)

    def channel_weights(self) -> torch.Tensor:
        """w = |gamma| / sum |gamma| (no gradient), shaped (1, C, 1, 1)."""
        gamma = self.bn.weight.detach().abs()
        return (gamma / gamma.sum()).view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.bn(x) * self.channel_weights())


@torch.no_grad()
def add_nam_sparsity_grad(model: nn.Module, strength: float = 1e-4) -> None:
    """grad(gamma) += strength * sign(gamma) for the BN of every NAM in `model` (the gradient of
    strength * sum |gamma|), after `loss.backward()` and before `optimizer.step()`."""
    for module in model.modules():
        if isinstance(module, NAM) and module.bn.weight.grad is not None:
            module.bn.weight.grad.add_(torch.sign(module.bn.weight), alpha=strength)
