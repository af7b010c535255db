"""CoordConv (Liu et al., "An Intriguing Failing of Convolutional Neural Networks and the CoordConv Solution",
NeurIPS 2018). Written from the paper and the spec (plugins.md §3).

`AddCoords` concatenates to the input two channels of coordinates in [-1, 1]: first x, varying along the width
(column j -> 2 j / (W - 1) - 1), then y, varying along the height (row i -> 2 i / (H - 1) - 1), and optionally
r = sqrt(x^2 + y^2). Each axis is normalised by its own size (the authors' TensorFlow code divides the x channel by
H - 1, which is only right for square maps). An axis of size 1 gets the coordinate 0, its centre.
`CoordConv2d` is AddCoords followed by an ordinary `nn.Conv2d` with 2 (3 with r) more input channels.
"""
from typing import Tuple, Union

import torch
from torch import nn

__all__ = ['AddCoords', 'CoordConv2d', 'coord_channels']


def coord_channels(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(x, y) coordinate maps of shape (B, 1, H, W) for an input of shape (B, C, H, W), in x's dtype and device."""
    batch, height, width = x.shape[0], x.shape[2], x.shape[3]
    return (
        _axis(width, x).view(1, 1, 1, -1).expand(batch, 1, height, width),
        _axis(height, x).view(1, 1, -1, 1).expand(batch, 1, height, width),
    )


def _axis(size: int, x: torch.Tensor) -> torch.Tensor:
    # (2 i - (n - 1)) / (n - 1) = 2 i / (n - 1) - 1; the last index stands for n - 1, clamped to 1 for n == 1
    index = torch.arange(size, device=x.device, dtype=x.dtype)
    last = index[-1:].clamp(min=1)
    return (2 * index - index[-1:]) / last


class AddCoords(nn.Module):
    """Concatenate [x, y] (and r with `with_r`) coordinate channels: C -> C + 2 (+ 1) channels."""

    def __init__(self, with_r: bool = False):
        super().__init__()
        self.with_r = with_r

    @property
    def extra_channels(self) -> int:
        return 3 if self.with_r else 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xx, yy = coord_channels(x)
        if self.with_r:
            return torch.cat([x, xx, yy, torch.sqrt(xx * xx + yy * yy)], dim=1)
        return torch.cat([x, xx, yy], dim=1)


class CoordConv2d(nn.Module):
    """AddCoords + Conv2d: (in_channels + 2 (+ 1)) * out_channels * k^2 weights (+ out_channels bias)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Union[int, Tuple[int, int]] = 1,
                 stride: Union[int, Tuple[int, int]] = 1, padding: Union[int, Tuple[int, int]] = 0,
                 dilation: Union[int, Tuple[int, int]] = 1, groups: int = 1, bias: bool = True, with_r: bool = False,
                 device=None, dtype=None):
        super().__init__()
        self.add_coords = AddCoords(with_r)
        self.conv = nn.Conv2d(
            in_channels + self.add_coords.extra_channels, out_channels, kernel_size, stride=stride, padding=padding,
            dilation=dilation, groups=groups, bias=bias, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.add_coords(x))
