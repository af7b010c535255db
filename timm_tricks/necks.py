"""Necks between a `features_only` backbone and a detection or segmentation head: RFB and ASFF on each level.

Both take the backbone's `feature_info.channels()` (finest level first), map a list of feature maps to a list of
the same length and spatial sizes, and expose the channels they return as `out_channels` (a list), so that the next
stage (torchvision's FPN, an smp decoder) is built from it:

    body = timm.create_model('resnet18', features_only=True, out_indices=(2, 3, 4))
    neck = AsffNeck(body.feature_info.channels(), reductions=body.feature_info.reduction())
    features = neck(body(images))

With torchvision detectors: `timm_tricks.detection.retinanet_backbone(name, neck=AsffNeck)` (any callable that takes
the channel list and returns such a module). With an smp decoder, wrap the encoder's output list the same way.
"""
from typing import List, Optional, Sequence, Union

import torch
from torch import nn

from .layers.asff import ASFF
from .layers.rfb import BasicRFB, BasicRFB_a

__all__ = ['AsffNeck', 'RfbNeck']

Channels = Union[int, Sequence[int], None]


def _per_level(out_channels: Channels, in_channels: Sequence[int]) -> List[int]:
    if out_channels is None:
        return list(in_channels)
    if isinstance(out_channels, int):
        return [out_channels] * len(in_channels)
    if len(out_channels) != len(in_channels):
        raise ValueError(f'out_channels {list(out_channels)} must have one entry per level ({len(in_channels)})')
    return list(out_channels)


class RfbNeck(nn.Module):
    """A receptive field block on each level (stride 1).

    Args:
        in_channels: channels of each level (`feature_info.channels()`).
        out_channels: one width for all levels, one per level, or None to keep each level's.
        scale: of the fused paths against the shortcut (RFBNet's neck uses 1.0 on its first two levels; 0.1 is
            the blocks' default).
        visual: dilation base of `BasicRFB`.
        rfb_s_first: the small-kernel `BasicRFB_a` on the finest level (RFBNet's conv4_3), `BasicRFB` elsewhere.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: Channels = None, scale: float = 0.1, visual: int = 1,
                 rfb_s_first: bool = False, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.out_channels = _per_level(out_channels, in_channels)
        self.blocks = nn.ModuleList([
            BasicRFB_a(cin, cout, scale=scale, **dd) if rfb_s_first and i == 0 else
            BasicRFB(cin, cout, scale=scale, visual=visual, **dd)
            for i, (cin, cout) in enumerate(zip(in_channels, self.out_channels))
        ])

    def forward(self, features: List[torch.Tensor]) -> List[torch.Tensor]:
        return [block(features[i]) for i, block in enumerate(self.blocks)]


class AsffNeck(nn.Module):
    """ASFF at every level: each output fuses all levels at that level's resolution.

    Args:
        in_channels: channels of each level, finest first (`feature_info.channels()`).
        out_channels: one width for all levels, one per level, or None to keep each level's.
        compress_channels: width of the weight branches (16; 8 in the paper's RFB variant).
        reductions: `feature_info.reduction()`; default: each level halves the previous one.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: Channels = None, compress_channels: int = 16,
                 reductions: Optional[Sequence[int]] = None, device=None, dtype=None):
        super().__init__()
        self.out_channels = _per_level(out_channels, in_channels)
        self.levels = nn.ModuleList([
            ASFF(in_channels, level, cout, compress_channels, reductions, device=device, dtype=dtype)
            for level, cout in enumerate(self.out_channels)
        ])

    def forward(self, features: List[torch.Tensor]) -> List[torch.Tensor]:
        return [asff(features) for asff in self.levels]
