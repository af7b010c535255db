"""Adaptively Spatial Feature Fusion (Liu et al., "Learning Spatial Fusion for Single-Shot Object Detection",
arXiv:1911.09516). Written from the paper and the spec (plugins.md §3); the authors' code is GPL-3.0 and was not
used.

ASFF at pyramid level l brings every level to level l's resolution and channel width, predicts one weight map per
level, normalises them with a softmax over the levels and sums the resized maps with them:
- a finer level (bigger map) goes down by stride-2 3x3 conv blocks: a max-pool(3, 2, 1) for each factor of 2 beyond
  the first, then one 3x3 stride-2 conv to level l's width (the paper's 1/2 and 1/4 cases);
- a coarser level goes up by a 1x1 conv block to level l's width (none when the widths already agree), then
  nearest-neighbour interpolation to level l's size (by size, not by a fixed factor, so odd sizes work);
- each resized map -> 1x1 conv block to `compress_channels` (16; 8 in the paper's RFB variant), concatenated,
  -> 1x1 conv with bias to one logit per level -> softmax over levels -> weighted sum -> 3x3 conv block to
  `out_channels`. A conv block is conv (no bias) + BN + LeakyReLU(0.1).

Levels are in `feature_info` order: index 0 is the finest map (smallest stride), as `features_only` returns them.
The paper numbers them the other way (its level 0 is the coarsest). Its YOLOv3 setting is
`ASFF([256, 256, 512], level, out_channels=(256, 512, 1024)[level])` (paper levels 2, 1, 0), with 734,451 / 1,915,123
/ 7,106,803 parameters (728,187 / 1,908,859 / 7,094,395 with `compress_channels=8`).
"""
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from timm.layers import register_notrace_module
from torch import nn

__all__ = ['ASFF', 'asff_conv']


def asff_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, device=None, dtype=None):
    """Conv (no bias, 'same' padding) + BN + LeakyReLU(0.1)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, bias=False,
                  device=device, dtype=dtype),
        nn.BatchNorm2d(out_channels, device=device, dtype=dtype),
        nn.LeakyReLU(0.1, inplace=True),
    )


@register_notrace_module  # size-dependent resizing: a leaf for FX feature extraction
class ASFF(nn.Module):
    """Fuse all pyramid levels at the resolution of `level`.

    Args:
        in_channels: channels of each level, finest first (`feature_info.channels()`).
        level: index of the level to fuse at (0 = finest).
        out_channels: channels of the output (default: in_channels[level]).
        compress_channels: width of each level's weight branch (paper: 16, 8 with RFB).
        reductions: stride of each level (`feature_info.reduction()`), to tell how many factors of 2 separate
            two levels; default: each level halves the previous one.
    """

    def __init__(self, in_channels: Sequence[int], level: int, out_channels: Optional[int] = None,
                 compress_channels: int = 16, reductions: Optional[Sequence[int]] = None, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        num_levels = len(in_channels)
        if num_levels < 2 or not 0 <= level < num_levels:
            raise ValueError(f'ASFF needs >= 2 levels and 0 <= level < {num_levels}, got level {level}')
        reductions = list(reductions) if reductions is not None else [2 ** i for i in range(num_levels)]
        # equal neighbours are allowed: a dilated backbone (output_stride 8/16) gives its last levels one stride
        if len(reductions) != num_levels or any(b < a or b % a or (b // a) & (b // a - 1)
                                                for a, b in zip(reductions, reductions[1:])):
            raise ValueError(f'ASFF reductions must grow by powers of 2 (or stay), one per level, got {reductions}')
        self.level = level
        width = in_channels[level]
        self.out_channels = out_channels or width
        # each level's factors of 2 down to this level's resolution: > 0 finer, 0 same, < 0 coarser
        self.factors = [(reductions[level] // r).bit_length() - 1 if r <= reductions[level]
                        else 1 - (r // reductions[level]).bit_length() for r in reductions]

        resize = []
        for factor, channels in zip(self.factors, in_channels):
            if factor > 0:  # finer: (pools +) one strided 3x3 conv
                pools = [nn.MaxPool2d(3, 2, 1) for _ in range(factor - 1)]
                resize.append(nn.Sequential(*pools, asff_conv(channels, width, 3, 2, **dd)))
            elif channels != width:  # same or coarser: 1x1 to our width (coarser: up-sampled in forward)
                resize.append(asff_conv(channels, width, 1, **dd))
            else:
                resize.append(nn.Identity())
        self.resize = nn.ModuleList(resize)
        self.weight_convs = nn.ModuleList([asff_conv(width, compress_channels, 1, **dd) for _ in in_channels])
        self.weight_logits = nn.Conv2d(compress_channels * num_levels, num_levels, 1, **dd)
        self.expand = asff_conv(width, self.out_channels, 3, **dd)

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        size = [features[self.level].shape[2], features[self.level].shape[3]]
        resized: List[torch.Tensor] = []
        for i, resize in enumerate(self.resize):
            y = resize(features[i])
            if self.factors[i] > 0 and (y.shape[2] < size[0] - 1 or y.shape[3] < size[1] - 1):
                raise ValueError(f'ASFF level {i} was built as finer than level {self.level} but its map is not: '
                                 'pass reductions=feature_info.reduction() (a dilated backbone repeats a stride)')
            if y.shape[2] != size[0] or y.shape[3] != size[1]:
                # coarser levels are up-sampled here; a strided path of an odd-sized map may also be one off
                y = F.interpolate(y, size=size, mode='nearest')
            resized.append(y)
        logits = self.weight_logits(torch.cat([conv(resized[i]) for i, conv in enumerate(self.weight_convs)], dim=1))
        weights = torch.softmax(logits, dim=1)
        fused = resized[0] * weights[:, 0:1]
        for i in range(1, len(resized)):
            fused = fused + resized[i] * weights[:, i:i + 1]
        return self.expand(fused)
