"""Dynamic ReLU (Chen et al., "Dynamic ReLU", ECCV 2020, arXiv:2003.10027), with the defaults of the first
author's later implementation in microsoft/DynamicHead (plugins.md §3). Written from the paper and the spec.

y_c = max_k (a_c^k x_c + b_c^k), k = 1..K (K = 2), where the coefficients are a function of the whole input:
GAP -> Linear(C, C // reduction) -> ReLU -> Linear(-> 2K coefficients per channel) -> hard sigmoid (y in [0, 1]),
then a^k = (y - 0.5) * 2 * lambda_a + init_a[k] and b^k = y - 0.5 + init_b[k] (init_a = (1, 0), init_b = (0, 0):
a ReLU at y = 0.5). Variants of the paper:
- DyReLU-A (`DyReLUA`): one set of coefficients shared by all channels (the hyper-function outputs 2K numbers);
- DyReLU-B (`DyReLUB`): coefficients per channel (the default);
- DyReLU-C (`DyReLUC`): per channel and modulated per position by a spatial attention: a 1x1 conv (C -> 1, bias)
  + BN(1), softmax over the H*W positions times H*W, clipped by hardtanh(0, 3) / 3.
`k2=False` keeps one linear piece (a x + b, or a x without bias); `use_bias=False` drops the b terms.

They are channel-aware activations (`act(channels, device=, dtype=)`). DyReLU-C's BatchNorm sees one value per
position, so any map larger than 1x1 (or a batch of 2) trains.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from timm.layers import make_divisible
from torch import nn

__all__ = ['DyReLU', 'DyReLUA', 'DyReLUB', 'DyReLUC']


class DyReLU(nn.Module):
    """Dynamic ReLU; `channel_shared=True` is DyReLU-A, `use_spatial=True` DyReLU-C, otherwise DyReLU-B.

    Args:
        channels: channels of the input (= output).
        reduction: hidden width of the hyper-function is channels // reduction (4), else a multiple of 4.
        lambda_a: range of the slopes around init_a: a in init_a +- lambda_a.
        k2: two linear pieces (max of two), else one.
        use_bias: learn the intercepts b.
        use_spatial: DyReLU-C's spatial modulation.
        channel_shared: DyReLU-A: the same coefficients for every channel.
        init_a, init_b: slopes and intercepts at y = 0.5.
    """

    def __init__(self, channels: int, reduction: int = 4, lambda_a: float = 1.0, k2: bool = True, use_bias: bool = True,
                 use_spatial: bool = False, channel_shared: bool = False, init_a: Tuple[float, float] = (1.0, 0.0),
                 init_b: Tuple[float, float] = (0.0, 0.0), device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        squeeze = channels // reduction if reduction == 4 else make_divisible(channels // reduction, 4)
        if squeeze < 1:
            raise ValueError(f'DyReLU needs channels // reduction >= 1, got channels={channels}, reduction={reduction}')
        self.coef_channels = 1 if channel_shared else channels
        self.k2 = k2
        self.use_bias = use_bias
        self.num_coefs = (2 if k2 else 1) * (2 if use_bias else 1)
        self.slope_range = 2. * lambda_a  # the coefficients' (y - 0.5) spans 1: a spans init_a +- lambda_a
        self.init_a = (float(init_a[0]), float(init_a[1]))
        self.init_b = (float(init_b[0]), float(init_b[1]))
        self.fc = nn.Sequential(
            nn.Linear(channels, squeeze, **dd),
            nn.ReLU(inplace=True),
            nn.Linear(squeeze, self.coef_channels * self.num_coefs, **dd),
            nn.Hardsigmoid(),
        )
        self.spatial = nn.Sequential(
            nn.Conv2d(channels, 1, 1, **dd),
            nn.BatchNorm2d(1, **dd),
        ) if use_spatial else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coefs = self.fc(x.mean((2, 3))).view(x.shape[0], self.num_coefs, self.coef_channels, 1, 1) - 0.5
        a1 = coefs[:, 0] * self.slope_range + self.init_a[0]
        if self.k2 and self.use_bias:
            b1 = coefs[:, 1] + self.init_b[0]
            a2 = coefs[:, 2] * self.slope_range + self.init_a[1]
            b2 = coefs[:, 3] + self.init_b[1]
            out = torch.maximum(x * a1 + b1, x * a2 + b2)
        elif self.k2:
            a2 = coefs[:, 1] * self.slope_range + self.init_a[1]
            out = torch.maximum(x * a1, x * a2)
        elif self.use_bias:
            out = x * a1 + (coefs[:, 1] + self.init_b[0])
        else:
            out = x * a1
        if self.spatial is not None:
            height, width = x.shape[2], x.shape[3]
            attn = F.softmax(self.spatial(x).flatten(1), dim=1).view(x.shape[0], 1, height, width) * (height * width)
            out = out * (F.hardtanh(attn, 0., 3.) / 3.)
        return out


class DyReLUA(DyReLU):
    """DyReLU-A: coefficients shared by all channels."""

    def __init__(self, channels: int, reduction: int = 4, lambda_a: float = 1.0, device=None, dtype=None):
        super().__init__(channels, reduction, lambda_a, channel_shared=True, device=device, dtype=dtype)


class DyReLUB(DyReLU):
    """DyReLU-B: coefficients per channel (83,008 parameters at C = 256)."""

    def __init__(self, channels: int, reduction: int = 4, lambda_a: float = 1.0, device=None, dtype=None):
        super().__init__(channels, reduction, lambda_a, device=device, dtype=dtype)


class DyReLUC(DyReLU):
    """DyReLU-C: coefficients per channel, modulated per position (83,267 parameters at C = 256)."""

    def __init__(self, channels: int, reduction: int = 4, lambda_a: float = 1.0, device=None, dtype=None):
        super().__init__(channels, reduction, lambda_a, use_spatial=True, device=device, dtype=dtype)
