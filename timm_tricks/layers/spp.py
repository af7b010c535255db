"""SPP-net spatial pyramid pooling (He et al., "Spatial Pyramid Pooling in Deep Convolutional Networks for Visual
Recognition", arXiv:1406.4729), written from the paper.

Each pyramid level of n x n bins is a max-pool over the a x a map (per axis) with window ceil(a / n) and stride
floor(a / n); the levels are flattened and concatenated: (B, C, H, W) -> (B, C * sum n^2), channel-major per
level as in the paper's fixed-length vector. These bin edges are not those of `nn.AdaptiveMaxPool2d(n)`: for some
sizes the paper's windows leave the last rows or columns out (a = 14, n = 4: windows of 4 at stride 3 cover 0-12),
where adaptive pooling's bins reach the edge; for others (a = 13 and n = 6 or 4) the two agree.

The paper's window and stride give exactly n bins only when a % n <= a // n (e.g. a = 13 for {6, 3, 2, 1}, any
a >= n^2 - n); otherwise they give more than n, and for a < n the stride is 0. Rather than silently cropping or
re-binning, the layer raises a ValueError naming the axis, the size and the level; pick levels and input sizes that
fit (the check is per forward, so this layer is an FX leaf).
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from timm.layers import register_notrace_module
from torch import nn

__all__ = ['SpatialPyramidPooling', 'spp_window']


def spp_window(size: int, bins: int) -> List[int]:
    """[window, stride] of the paper for one axis of `size` and a level of `bins`; a clear error where they do
    not give exactly `bins` windows."""
    window, stride = -(-size // bins), size // bins
    if stride == 0 or (size - window) // stride + 1 != bins:
        raise ValueError(
            f'SPP-net pooling of a size-{size} axis into {bins} bins (window ceil(a/n), stride floor(a/n)) does not '
            f'give {bins} bins; it needs size % bins <= size // bins (e.g. size >= {bins * bins - bins})')
    return [window, stride]


@register_notrace_module
class SpatialPyramidPooling(nn.Module):
    """SPP-net pooling head: (B, C, H, W) -> (B, C * sum(n^2 for n in levels)); no parameters.

    Args:
        levels: bins per axis of each pyramid level, (4, 2, 1) or the paper's (6, 3, 2, 1).
    """

    def __init__(self, levels: Sequence[int] = (6, 3, 2, 1)):
        super().__init__()
        if not levels or any(int(n) != n or n < 1 for n in levels):
            raise ValueError(f'SPP levels must be positive integers, got {tuple(levels)}')
        self.levels: List[int] = [int(n) for n in levels]

    def out_features(self, channels: int) -> int:
        return channels * sum(n * n for n in self.levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled: List[torch.Tensor] = []
        for n in self.levels:
            window_h, stride_h = spp_window(x.shape[2], n)
            window_w, stride_w = spp_window(x.shape[3], n)
            pooled.append(F.max_pool2d(x, [window_h, window_w], [stride_h, stride_w]).flatten(1))
        return torch.cat(pooled, dim=1)

    def extra_repr(self) -> str:
        return f'levels={tuple(self.levels)}'
