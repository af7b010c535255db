"""Anti-aliased downsampling: binomial blur + subsampling (Zhang, "Making Convolutional Networks Shift-Invariant
Again", ICML 2019, arXiv:1904.11486). Written from the paper and the spec, not from the authors' code.

`BlurPool2d(channels, filter_size, stride)` is a fixed depth-wise convolution with the normalised outer product of
the binomial row of length `filter_size` (1: [1], 2: [1, 1], 3: [1, 2, 1], 4: [1, 3, 3, 1], ...), applied with
stride `stride` after reflection padding of `floor((k-1)/2)` before and `ceil((k-1)/2)` after each spatial
dimension. For even `k` the padding is asymmetric (k=4: 1 before, 2 after), exactly as the authors' released
models were trained; every filter size therefore gives an output of `ceil(n / stride)`.

Differences from timm's `timm.layers.BlurPool2d`: timm pads `k // 2` on both sides (`get_padding`), which for
even `k` gives one more output row/column (56 -> 29 for k=4, the authors' models give 28) and a shifted sampling
grid; for odd `k` (3, 5) the two layers are numerically identical. timm accepts only k > 1.

Tiny feature maps: reflection padding needs every pad to be smaller than the padded dimension (PyTorch raises
otherwise; the authors' models fail at 32x32 input for k=4 and k=5, antialiased-cnns issue #47). Where that does
not hold, this layer pads by replicating the edge instead, so every input size works; wherever reflection is
possible the output is exactly the authors'. The choice depends on the input shape, so the module is registered
as an FX leaf (`register_notrace_module`); TorchScript and `torch.compile` handle the branch natively.

The filter is a non-persistent buffer (not in `state_dict()`), recomputed by `init_non_persistent_buffers()`, so
meta-device construction followed by `to_empty()` (transformers' TimmWrapper, timm's
`reinit_non_persistent_buffers`) restores it.
"""
from math import comb
from typing import List

import torch
import torch.nn.functional as F
from timm.layers import register_notrace_module
from torch import nn

__all__ = ['BlurPool2d', 'binomial_filter']

MAX_FILTER_SIZE = 7


def binomial_filter(filter_size: int) -> torch.Tensor:
    """The `filter_size` x `filter_size` normalised binomial filter (float32, on the CPU); entries sum to 1.

    Its entries are small integers over a power of two, so they are exact in float32 (identical to the
    authors' float64-computed, float32-stored filters).
    """
    if not 1 <= filter_size <= MAX_FILTER_SIZE:
        raise ValueError(f'filter_size must be in 1..{MAX_FILTER_SIZE}, got {filter_size}')
    row = torch.tensor([comb(filter_size - 1, i) for i in range(filter_size)], dtype=torch.float32)
    row = row / row.sum()
    return row[:, None] * row[None, :]


@register_notrace_module
class BlurPool2d(nn.Module):
    """Depth-wise binomial blur with stride (default 2), authors'-exact padding, tiny-map fallback.

    Args:
        channels: number of input (= output) channels.
        filter_size: binomial filter size, 1-7 (the authors' Rect-2, Tri-3, Tri-4 (default of their models), Bin-5
            are 2-5; 1 is plain subsampling).
        stride: subsampling factor.
    """

    def __init__(self, channels: int, filter_size: int = 4, stride: int = 2, device=None, dtype=None):
        super().__init__()
        if not 1 <= filter_size <= MAX_FILTER_SIZE:
            raise ValueError(f'BlurPool2d filter_size must be in 1..{MAX_FILTER_SIZE}, got {filter_size}')
        if stride < 1:
            raise ValueError(f'BlurPool2d stride must be >= 1, got {stride}')
        self.channels = channels
        self.filter_size = filter_size
        self.stride = stride
        before, after = (filter_size - 1) // 2, filter_size // 2  # floor / ceil of (k - 1) / 2
        self.pad_after = after
        self.padding: List[int] = [before, after, before, after]  # F.pad order: left, right, top, bottom
        self.register_buffer(
            'filt', torch.empty(channels, 1, filter_size, filter_size, device=device, dtype=dtype), persistent=False)
        self.init_non_persistent_buffers()

    def init_non_persistent_buffers(self) -> None:
        """(Re)compute the filter in place: after `to_empty()`, or whenever the buffer may hold garbage."""
        with torch.no_grad():
            self.filt.copy_(binomial_filter(self.filter_size).expand(self.channels, 1, -1, -1))

    def extra_repr(self) -> str:
        return f'{self.channels}, filter_size={self.filter_size}, stride={self.stride}, padding={tuple(self.padding)}'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.filter_size == 1:
            return x[:, :, ::self.stride, ::self.stride]
        # reflection needs pad < size in both spatial dims; the bigger pad is the one after
        if x.shape[-2] > self.pad_after and x.shape[-1] > self.pad_after:
            x = F.pad(x, self.padding, mode='reflect')
        else:
            x = F.pad(x, self.padding, mode='replicate')
        return F.conv2d(x, self.filt, stride=self.stride, groups=self.channels)
