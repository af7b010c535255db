"""Pyramidal convolution (Duta et al., "Pyramidal Convolution", arXiv:2006.11538)."""
import copy
from collections import OrderedDict
from typing import List, Optional, Sequence, Union

import torch
from torch import nn

from .fold import fold_conv_scale_shift, norm_scale_shift


class PyConv2d(nn.Sequential):
    """Parallel convolutions of growing kernel size (and group count) on the same input, concatenated.

    Every level sees the whole input and has the same stride; level `i` is held as child `conv2_{i+1}`, the
    name the authors' checkpoints use, so their weights load without renaming. It is an `nn.Sequential` only
    to keep those names while staying scriptable; `forward` concatenates the levels instead of chaining them.
    """

    def __init__(self, in_chs: int, level_out_chs: Sequence[int], kernel_sizes: Sequence[int], groups: Sequence[int],
                 stride: int = 1, dilation: int = 1, device=None, dtype=None):
        if not len(level_out_chs) == len(kernel_sizes) == len(groups) >= 2:
            raise ValueError('PyConv2d needs >= 2 levels with one out_chs, kernel size and group count each')
        levels = OrderedDict()
        for i, (out_chs, k, g) in enumerate(zip(level_out_chs, kernel_sizes, groups)):
            levels[f'conv2_{i + 1}'] = nn.Conv2d(
                in_chs, out_chs, k, stride=stride, padding=dilation * (k // 2), dilation=dilation, groups=g,
                bias=False, device=device, dtype=dtype)
        super().__init__(levels)

    @torch.no_grad()
    def fuse(self, norm: Optional[nn.Module] = None) -> 'PyConv2d':
        """This PyConv with `norm` (inference-mode BatchNorm over the concatenated levels) folded into its levels;
        without a norm, itself (timm's `reparameterize_model` calls `fuse()` on every module that has it)."""
        if norm is None:
            return self
        fused = copy.deepcopy(self)
        scale, shift = norm_scale_shift(norm)
        start = 0
        for name, conv in self.named_children():
            chs = conv.out_channels
            setattr(fused, name, fold_conv_scale_shift(conv, scale[start:start + chs], shift[start:start + chs]))
            start += chs
        return fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: List[torch.Tensor] = []
        for conv in self:
            outs.append(conv(x))
        return torch.cat(outs, dim=1)


def create_pyconv(in_chs: int, out_chs: int, kernel_sizes: Sequence[int], level_groups: Sequence[int],
                  out_fractions: Sequence[float], stride: int = 1, dilation: int = 1, groups: int = 1, device=None,
                  dtype=None) -> Union[PyConv2d, nn.Conv2d]:
    """A PyConv whose level `i` produces `out_fractions[i] * out_chs` channels; one level is a plain conv.

    `groups` (a block's cardinality) multiplies every level's own group count `level_groups[i]`.
    """
    level_groups = [g * groups for g in level_groups]
    if len(kernel_sizes) == 1:
        k = kernel_sizes[0]
        return nn.Conv2d(
            in_chs, out_chs, k, stride=stride, padding=dilation * (k // 2), dilation=dilation, groups=level_groups[0],
            bias=False, device=device, dtype=dtype)
    level_out_chs = [int(out_chs * f) for f in out_fractions]
    if sum(level_out_chs) != out_chs:
        raise ValueError(f'level widths {level_out_chs} do not add up to {out_chs}')
    return PyConv2d(in_chs, level_out_chs, kernel_sizes, level_groups, stride, dilation, device=device, dtype=dtype)
