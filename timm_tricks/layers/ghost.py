"""Ghost module (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020, arXiv:1911.11907).

A Ghost module replaces a convolution with `out_chs` outputs by two cheaper steps: a normal convolution makes
`init_chs = ceil(out_chs / ratio)` "intrinsic" maps, and a cheap depth-wise `dw_size x dw_size` convolution turns
each intrinsic map into `ratio - 1` "ghost" maps. Intrinsic and ghost maps are concatenated to `out_chs` channels.
Both steps have their own norm and (optionally) activation, as in GhostNet's v1 module (timm's `GhostModule`),
so the keys are the same: `primary_conv.{0: conv, 1: norm}`, `cheap_operation.{0: conv, 1: norm}`.

Odd widths: the reference computes `init_chs * (ratio - 1)` ghost maps and slices the concatenation to
`out_chs`, throwing away what it over-produced. Here the cheap convolution only reads the intrinsic maps
whose ghosts are kept (the first `ceil(new_chs / (ratio - 1))`), so the kept channels equal the reference's
exactly, nothing is computed for nothing when `ratio == 2` (any width), and for `ratio >= 3` at most
`ratio - 2` ghost maps are computed and dropped (none when `out_chs` is a multiple of `ratio`).
"""
import math
from typing import Callable, Optional, Type, Union

import torch
from timm.layers import create_act_layer, get_act_layer, get_norm_layer
from torch import nn

from .fold import fold_norm

LayerType = Union[str, Callable, Type[nn.Module]]

__all__ = ['GhostModule', 'ghost_chs']


def ghost_chs(out_chs: int, ratio: int):
    """(intrinsic maps, ghost maps kept, intrinsic maps the cheap conv reads, ghost maps it computes)."""
    init_chs = math.ceil(out_chs / ratio)
    new_chs = out_chs - init_chs
    cheap_in_chs = math.ceil(new_chs / (ratio - 1))
    return init_chs, new_chs, cheap_in_chs, cheap_in_chs * (ratio - 1)


class GhostModule(nn.Module):
    """Primary conv -> cheap depth-wise "ghost" conv on its output -> concatenation (`out_chs` channels).

    Args:
        in_chs, out_chs: channels in and out.
        kernel_size, stride, dilation: of the primary convolution (padding `dilation * (kernel_size // 2)`).
        ratio: `s` in the paper: one intrinsic map per `ratio` outputs (>= 2).
        dw_size: `d` in the paper: kernel of the cheap depth-wise convolution (odd; stride 1, never dilated,
            so a dilated Ghost module keeps its cheap op local, as GhostNet's).
        act_layer: activation after each of the two norms, or None for a linear module (a ReLU inside both
            branches equals a ReLU after the concatenation).
        norm_layer: norm after each of the two convolutions.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, dilation: int = 1,
                 ratio: int = 2, dw_size: int = 3, act_layer: Optional[LayerType] = nn.ReLU,
                 norm_layer: LayerType = nn.BatchNorm2d, device=None, dtype=None):
        super().__init__()
        if int(ratio) != ratio or ratio < 2:
            raise ValueError(f'GhostModule ratio must be an integer >= 2, got {ratio}')
        if dw_size < 1 or dw_size % 2 == 0:
            raise ValueError(f'GhostModule dw_size must be a positive odd kernel size, got {dw_size}')
        if out_chs < 2:
            raise ValueError(f'GhostModule needs out_chs >= 2 (one intrinsic and one ghost map), got {out_chs}')
        dd = dict(device=device, dtype=dtype)
        norm_layer = get_norm_layer(norm_layer)
        act_layer = get_act_layer(act_layer) if act_layer is not None else None
        self.out_chs = out_chs
        self.ratio = int(ratio)
        self.init_chs, self.new_chs, self.cheap_in_chs, cheap_out_chs = ghost_chs(out_chs, self.ratio)

        self.primary_conv = nn.Sequential(
            nn.Conv2d(
                in_chs, self.init_chs, kernel_size, stride=stride, padding=dilation * (kernel_size // 2),
                dilation=dilation, bias=False, **dd),
            norm_layer(self.init_chs, **dd),
            self._act(act_layer),
        )
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(
                self.cheap_in_chs, cheap_out_chs, dw_size, stride=1, padding=dw_size // 2,
                groups=self.cheap_in_chs, bias=False, **dd),
            norm_layer(cheap_out_chs, **dd),
            self._act(act_layer),
        )

    @staticmethod
    def _act(act_layer: Optional[Type[nn.Module]]) -> nn.Module:
        return create_act_layer(act_layer, inplace=True) if act_layer is not None else nn.Identity()

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold both norms into their convs, for inference (timm's `reparameterize_model` calls this)."""
        for branch in (self.primary_conv, self.cheap_operation):
            branch[0], branch[1] = fold_norm(branch[0], branch[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1[:, :self.cheap_in_chs])
        return torch.cat([x1, x2[:, :self.new_chs]], dim=1)
