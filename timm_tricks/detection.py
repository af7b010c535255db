"""torchvision detection on any timm_tricks (or timm) backbone: features_only + FeaturePyramidNetwork.

torchvision's own `BackboneWithFPN` relies on `IntermediateLayerGetter`, which does not fit timm models; this
is the recipe of clients.md §3 as a module, with the `out_channels` attribute torchvision's detectors read.
An optional `neck` (e.g. `timm_tricks.necks.AsffNeck` or `RfbNeck`) runs between the backbone and the FPN.
"""
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence

import timm
import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, LastLevelMaxPool, LastLevelP6P7


class TimmBackboneWithFPN(nn.Module):
    """Multi-scale features of a timm model through an FPN, keyed '0', '1', ... (+ the extra levels).

    `neck`: called with the backbone's `feature_info.channels()`, returns a module that maps the list of feature
    maps to a list of the same sizes and has the list of its output channels as `out_channels`. `AsffNeck` assumes
    each level halves the previous one; with a dilated backbone (`output_stride=16` / `8` in `model_kwargs`) give it
    the repeated strides: `neck=partial(AsffNeck, reductions=[8, 16, 16])` (the backbone's
    `feature_info.reduction()`), or it says so at the first forward.
    """

    def __init__(self, model_name: str, out_indices: Sequence[int] = (1, 2, 3, 4), fpn_channels: int = 256,
                 extra_blocks: Optional[ExtraFPNBlock] = None, pretrained: bool = False,
                 neck: Optional[Callable[[List[int]], nn.Module]] = None, **model_kwargs):
        super().__init__()
        self.body = timm.create_model(
            model_name, features_only=True, out_indices=tuple(out_indices), pretrained=pretrained, **model_kwargs)
        channels = self.body.feature_info.channels()
        self.neck = neck(channels) if neck is not None else None
        if self.neck is not None:
            channels = list(self.neck.out_channels)
        self.fpn = FeaturePyramidNetwork(
            channels, fpn_channels,
            extra_blocks=extra_blocks if extra_blocks is not None else LastLevelMaxPool())
        self.out_channels = fpn_channels

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        features = self.body(x)
        if self.neck is not None:
            features = self.neck(features)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(features)))


def faster_rcnn_backbone(model_name: str, pretrained: bool = False, **model_kwargs) -> TimmBackboneWithFPN:
    """Strides 4-32 plus a max-pooled level: the 5 levels Faster/Mask R-CNN's default anchors expect."""
    return TimmBackboneWithFPN(model_name, (1, 2, 3, 4), pretrained=pretrained, **model_kwargs)


def retinanet_backbone(model_name: str, pretrained: bool = False, **model_kwargs) -> TimmBackboneWithFPN:
    """Strides 8-32 plus P6/P7 computed from P5: the 5 levels RetinaNet's default anchors expect."""
    return TimmBackboneWithFPN(
        model_name, (2, 3, 4), extra_blocks=LastLevelP6P7(256, 256), pretrained=pretrained, **model_kwargs)
