"""ACON-C and Meta-ACON (Ma et al., "Activate or Not: Learning Customized Activation", CVPR 2021,
arXiv:2009.04759). Written from the paper and the spec (plugins.md §3).

ACON-C: y = (p1 - p2) x * sigmoid(beta (p1 - p2) x) + p2 x, with per-channel p1, p2 (drawn from N(0, 1), as the
authors' code) and beta (1 at init). Meta-ACON computes beta per sample and channel with a small
conv-BN-conv-BN network on the global average of x (hidden width max(r, C // r), convs with bias) followed by a
sigmoid. Both are channel-aware activations, called as `act(channels, device=, dtype=)`; in the authors' ResNets they
replace only the activation after the spatial conv (conv2) of a bottleneck.

Meta-ACON's BatchNorms see one value per sample, so it needs a batch of at least 2 in training mode (as the
authors' module).
"""
import torch
from torch import nn

__all__ = ['AconC', 'MetaAconC', 'acon_c']


def acon_c(x: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    dpx = (p1 - p2) * x
    return dpx * torch.sigmoid(beta * dpx) + p2 * x


class AconC(nn.Module):
    """ACON-C activation with learnable per-channel p1, p2, beta (3 * channels parameters)."""

    def __init__(self, channels: int, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.p1 = nn.Parameter(torch.empty(1, channels, 1, 1, **dd))
        self.p2 = nn.Parameter(torch.empty(1, channels, 1, 1, **dd))
        self.beta = nn.Parameter(torch.empty(1, channels, 1, 1, **dd))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.p1)
        nn.init.normal_(self.p2)
        nn.init.ones_(self.beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return acon_c(x, self.p1, self.p2, self.beta)


class MetaAconC(nn.Module):
    """Meta-ACON: ACON-C whose beta = sigmoid(BN(conv1x1(BN(conv1x1(GAP(x)))))) (9,520 parameters at C = 256)."""

    def __init__(self, channels: int, r: int = 16, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        hidden = max(r, channels // r)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True, **dd)
        self.bn1 = nn.BatchNorm2d(hidden, **dd)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True, **dd)
        self.bn2 = nn.BatchNorm2d(channels, **dd)
        self.p1 = nn.Parameter(torch.empty(1, channels, 1, 1, **dd))
        self.p2 = nn.Parameter(torch.empty(1, channels, 1, 1, **dd))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.p1)
        nn.init.normal_(self.p2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = torch.sigmoid(self.bn2(self.fc2(self.bn1(self.fc1(x.mean((2, 3), keepdim=True))))))
        return acon_c(x, self.p1, self.p2, beta)
