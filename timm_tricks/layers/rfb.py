"""Receptive Field Block (Liu et al., "Receptive Field Block Net for Accurate and Fast Object Detection",
ECCV 2018). Written from the paper and the spec (plugins.md §3); the module structure and names follow the
authors' RFBNet (MIT) so that their checkpoints map key for key (`branch{i}.{j}.conv/bn`, `ConvLinear`, `shortcut`).

Every conv is `RfbConv`: conv (no bias) + BN (momentum 0.01) + optional ReLU. A block is a few multi-branch
"inception" paths, each a 1x1 bottleneck, (3x3 | 1x3 | 3x1) convs and a final dilated 3x3 without ReLU (bigger
dilation on the paths with a bigger kernel), concatenated, fused by a 1x1 conv (no ReLU), scaled by `scale` and
added to a 1x1 (strided) projection shortcut, then a ReLU.
- `BasicRFB(in, out, stride=1, scale=0.1, visual=1)`: i = in // 8, three paths ending in dilations visual,
  visual + 1, 2 visual + 1; the stride sits on the first 1x1 of path 0, the 3x3 of path 1, the second 3x3 of path 2.
- `BasicRFB_a(in, out, stride=1, scale=0.1)`: i = in // 4, four paths with dilations 1, 3, 3, 5 (the small-kernel
  "RFB-s" of the paper, used on conv4_3). The authors only use it with stride 1; with stride > 1 (our choice)
  the paths subsample where BasicRFB's do: path 0 at its 1x1, the others at the conv before the dilated 3x3.
"""
from typing import List, Tuple, Union

import torch
from torch import nn

__all__ = ['BasicRFB', 'BasicRFB_a', 'RfbConv']

Size2 = Union[int, Tuple[int, int]]


class RfbConv(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-5, momentum 0.01) + optional ReLU, with 'same' padding for stride 1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Size2 = 1, stride: int = 1, dilation: int = 1,
                 relu: bool = True, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        padding = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
        self.conv = nn.Conv2d(
            in_channels, out_channels, (kh, kw), stride=stride, padding=padding, dilation=dilation, bias=False, **dd)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.01, **dd)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class _RfbFuse(nn.Module):
    """What both blocks share: concatenate the paths, fuse (1x1, no ReLU), scale, add the 1x1 projection
    shortcut, ReLU. Subclasses create their paths as `branch0`, `branch1`, ... (the authors' names)."""

    def __init__(self, in_channels: int, fused_channels: int, out_channels: int, stride: int, scale: float, dd):
        super().__init__()
        self.scale = scale
        self.out_channels = out_channels
        self.ConvLinear = RfbConv(fused_channels, out_channels, 1, relu=False, **dd)
        self.shortcut = RfbConv(in_channels, out_channels, 1, stride=stride, relu=False, **dd)
        self.relu = nn.ReLU()

    def merge_paths(self, paths: List[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.ConvLinear(torch.cat(paths, dim=1)) * self.scale + self.shortcut(x))


class BasicRFB(_RfbFuse):
    """RFB with three paths (i = in_channels // 8): 319,968 parameters for BasicRFB(256, 256).

    Args:
        in_channels, out_channels: channels in and out.
        stride: 1, or 2 to halve the map.
        scale: weight of the fused paths against the shortcut.
        visual: dilation of path 0; paths 1 and 2 use visual + 1 and 2 visual + 1.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, scale: float = 0.1, visual: int = 1,
                 device=None, dtype=None):
        dd = dict(device=device, dtype=dtype)
        inter = _inter_channels(in_channels, 8, min_inter=2)
        super().__init__(in_channels, 6 * inter, out_channels, stride, scale, dd)
        self.branch0 = nn.Sequential(
            RfbConv(in_channels, 2 * inter, 1, stride=stride, **dd),
            RfbConv(2 * inter, 2 * inter, 3, dilation=visual, relu=False, **dd),
        )
        self.branch1 = nn.Sequential(
            RfbConv(in_channels, inter, 1, **dd),
            RfbConv(inter, 2 * inter, 3, stride=stride, **dd),
            RfbConv(2 * inter, 2 * inter, 3, dilation=visual + 1, relu=False, **dd),
        )
        self.branch2 = nn.Sequential(
            RfbConv(in_channels, inter, 1, **dd),
            RfbConv(inter, inter // 2 * 3, 3, **dd),
            RfbConv(inter // 2 * 3, 2 * inter, 3, stride=stride, **dd),
            RfbConv(2 * inter, 2 * inter, 3, dilation=2 * visual + 1, relu=False, **dd),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge_paths([self.branch0(x), self.branch1(x), self.branch2(x)], x)


class BasicRFB_a(_RfbFuse):
    """RFB-s with four paths (i = in_channels // 4): 1,502,016 parameters for BasicRFB_a(512, 512)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, scale: float = 0.1, device=None,
                 dtype=None):
        dd = dict(device=device, dtype=dtype)
        inter = _inter_channels(in_channels, 4, min_inter=4)
        super().__init__(in_channels, 4 * inter, out_channels, stride, scale, dd)
        self.branch0 = nn.Sequential(
            RfbConv(in_channels, inter, 1, stride=stride, **dd),
            RfbConv(inter, inter, 3, relu=False, **dd),
        )
        self.branch1 = nn.Sequential(
            RfbConv(in_channels, inter, 1, **dd),
            RfbConv(inter, inter, (3, 1), stride=stride, **dd),
            RfbConv(inter, inter, 3, dilation=3, relu=False, **dd),
        )
        self.branch2 = nn.Sequential(
            RfbConv(in_channels, inter, 1, **dd),
            RfbConv(inter, inter, (1, 3), stride=stride, **dd),
            RfbConv(inter, inter, 3, dilation=3, relu=False, **dd),
        )
        self.branch3 = nn.Sequential(
            RfbConv(in_channels, inter // 2, 1, **dd),
            RfbConv(inter // 2, inter // 4 * 3, (1, 3), **dd),
            RfbConv(inter // 4 * 3, inter, (3, 1), stride=stride, **dd),
            RfbConv(inter, inter, 3, dilation=5, relu=False, **dd),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge_paths([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], x)


def _inter_channels(in_channels: int, divisor: int, min_inter: int) -> int:
    # the narrowest path has 3 * (inter // 2) (BasicRFB) or inter // 4 (BasicRFB_a) channels: at least one
    if in_channels // divisor < min_inter:
        raise ValueError(f'RFB needs in_channels >= {divisor * min_inter}, got {in_channels}')
    return in_channels // divisor
