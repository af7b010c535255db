"""Spatial transformer (Jaderberg et al., "Spatial Transformer Networks", NeurIPS 2015) as a plug-in layer.

A localisation net regresses an affine transform theta (B, 2, 3) from the input; the output samples the input on
the transformed grid (`affine_grid` + bilinear `grid_sample`, zeros outside). The localisation net works for any
channel count and any spatial size >= 1: conv3x3 -> ReLU -> adaptive average pooling to `pool_size` -> Linear ->
ReLU -> Linear(6). Its last layer starts at weight 0 and bias [1, 0, 0, 0, 1, 0], so the layer starts as the identity
(output = input up to float rounding); `reset_parameters()` restores that, and must run after a model's weight init
(timm's byobnet calls it on attention modules; any init that re-draws every Linear would otherwise break it).
"""
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ['SpatialTransformer']


class SpatialTransformer(nn.Module):
    """Affine spatial transformer with an any-size localisation net; identity at init.

    Args:
        channels: input (= output) channels.
        loc_channels: channels of the localisation net's conv.
        pool_size: the conv output is average-pooled to pool_size x pool_size.
        hidden: width of the hidden Linear layer.
        align_corners: of `affine_grid` / `grid_sample` (False: pixel centres, PyTorch's default).
    """

    def __init__(self, channels: int, loc_channels: int = 16, pool_size: int = 4, hidden: int = 32,
                 align_corners: bool = False, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.align_corners = align_corners
        self.localization = nn.Sequential(
            nn.Conv2d(channels, loc_channels, 3, padding=1, **dd),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(pool_size),
            nn.Flatten(1),
            nn.Linear(loc_channels * pool_size * pool_size, hidden, **dd),
            nn.ReLU(inplace=True),
        )
        self.theta = nn.Linear(hidden, 6, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The identity transform: zero weights, bias [1, 0, 0, 0, 1, 0]."""
        with torch.no_grad():
            self.theta.weight.zero_()
            self.theta.bias.copy_(torch.tensor([1., 0., 0., 0., 1., 0.]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.theta(self.localization(x)).view(-1, 2, 3)
        grid = F.affine_grid(theta, [x.shape[0], x.shape[1], x.shape[2], x.shape[3]], align_corners=self.align_corners)
        return F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=self.align_corners)
