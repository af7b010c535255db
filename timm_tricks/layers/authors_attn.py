"""The authors' versions of three attention modules timm has with other defaults (plugins.md §2): CBAM, coordinate
attention and Non-local. They are timm's classes with the authors' settings, so timm's forward code runs.

- `CbamV1` (Woo et al., ECCV 2018; Jongchan/attention-module): channel MLP C -> C // 16 -> C with bias on the
  average- and max-pooled maps, spatial gate conv 7x7 (no bias) + BN with momentum 0.01. 8,564 parameters at
  C = 256. `convert_cbam_v1_state_dict` maps the authors' keys onto it.
- `CoordAttV1` (Hou et al., CVPR 2021; houqb/CoordAttention): hidden width max(8, C // 32), 1x1 convs with bias,
  BN, h-swish, sigmoid gates (timm's `rd_ratio=1/32` rounds to multiples of 8 instead, e.g. 8 vs 10 at C = 320).
  6,680 parameters at C = 256.
- `NonLocalV1` (Wang et al., CVPR 2018; AlexHex7/Non-local_pytorch, embedded Gaussian): inter width C // 2, no
  1/sqrt(C) scaling, output BN zero-initialised (timm's `reset_parameters`). The optional max-pool sub-sampling of
  phi and g of the reference is not offered. 132,224 parameters at C = 256.
"""
import re
from typing import Dict

import torch
from timm.layers.cbam import CbamModule
from timm.layers.coord_attn import CoordAttn
from timm.layers.non_local_attn import NonLocalAttn

__all__ = ['CbamV1', 'CoordAttV1', 'NonLocalV1', 'convert_cbam_v1_state_dict']


class CbamV1(CbamModule):
    """The authors' CBAM: MLP with bias, hidden channels // reduction, spatial BN momentum 0.01."""

    def __init__(self, channels: int, reduction: int = 16, device=None, dtype=None):
        if channels < reduction:
            raise ValueError(f'CbamV1 needs channels >= reduction ({reduction}), got {channels}')
        super().__init__(channels, rd_channels=channels // reduction, mlp_bias=True, device=device, dtype=dtype)
        self.spatial.conv.bn.momentum = 0.01


class CoordAttV1(CoordAttn):
    """The authors' coordinate attention: hidden width max(min_channels, channels // reduction), convs with bias."""

    def __init__(self, channels: int, reduction: int = 32, min_channels: int = 8, device=None, dtype=None):
        super().__init__(
            channels, rd_channels=max(min_channels, channels // reduction), bias=True, device=device, dtype=dtype)


class NonLocalV1(NonLocalAttn):
    """The authors' embedded-Gaussian Non-local block (no sub-sampling): inter width channels // 2, no scaling."""

    def __init__(self, channels: int, device=None, dtype=None):
        if channels < 2:
            raise ValueError(f'NonLocalV1 needs channels >= 2, got {channels}')
        super().__init__(channels, use_scale=False, rd_channels=channels // 2, device=device, dtype=dtype)


# the authors' CBAM key (after any prefix) -> ours
_CBAM_V1_KEYS = (
    (re.compile(r'ChannelGate\.mlp\.1\.(weight|bias)$'), r'channel.fc1.\1'),
    (re.compile(r'ChannelGate\.mlp\.3\.(weight|bias)$'), r'channel.fc2.\1'),
    (re.compile(r'SpatialGate\.spatial\.conv\.weight$'), r'spatial.conv.conv.weight'),
    (re.compile(r'SpatialGate\.spatial\.bn\.'), r'spatial.conv.bn.'),
)


def convert_cbam_v1_state_dict(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename the authors' CBAM keys (`<prefix>ChannelGate.mlp.{1,3}.*`, `<prefix>SpatialGate.spatial.{conv,bn}.*`)
    to `CbamV1`'s (`<prefix>channel.fc{1,2}.*`, `<prefix>spatial.conv.{conv,bn}.*`); other keys pass unchanged.

    The MLP's Linear weights become 1x1 conv weights; the spatial conv's two input channels are swapped, because
    the authors pool [max, mean] and timm [mean, max]. The prefix (e.g. `layer1.0.cbam.`) is kept.
    """
    converted = {}
    for key, value in state_dict.items():
        for pattern, replacement in _CBAM_V1_KEYS:
            new_key = pattern.sub(replacement, key)
            if new_key != key:
                if new_key.endswith(('fc1.weight', 'fc2.weight')) and value.ndim == 2:
                    value = value[:, :, None, None]
                elif new_key.endswith('spatial.conv.conv.weight'):
                    value = value.flip(1)
                key = new_key
                break
        converted[key] = value
    return converted
