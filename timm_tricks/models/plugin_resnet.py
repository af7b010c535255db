"""ResNets with a plug-in at the authors' place: CBAM, NAM, ACON-C and Meta-ACON (plugins.md §2-§3).

Every model is `PluggableResNet` configuration on torchvision's ResNet layout; the plug-ins are the layers of
`timm_tricks.layers`, so `block_args=dict(attn_layer=...)` on any other family builds the same thing.

* `cbam_resnet50` (Woo et al., ECCV 2018; Jongchan/attention-module, MIT): `CbamV1` after `bn3` of every
  bottleneck, before the add (attribute `se`), 28,089,624 parameters. `.in1k` are the authors' ImageNet weights
  (reported top-1 77.622); `checkpoint_filter_fn` converts their key layout (`module.layerN.M.cbam.ChannelGate...`,
  the spatial gate's [max, mean] input channels swapped to timm's [mean, max]).
* `acon_resnet50/101`, `metaacon_resnet50/101` (Ma et al., CVPR 2021; nmaac/acon, MIT): the authors' ResNets, which
  differ from torchvision's beyond the activation: the stride is on the 1x1 `conv1`, every conv has a bias (stem and
  shortcut included), and `AconC` / `MetaAconC` replaces only the activation after `conv2`/`bn2` (`act2`).
  The authors' weights are in one OneDrive / BaiduYun folder whose per-model files are not linked: `.untrained`.
  Their checkpoints (`{'state_dict': ...}`, `module.` prefix, activation at `acon`) load through
  `pretrained=True, pretrained_cfg_overlay=dict(file=...)`.
* `nam_resnet50` (Liu et al., arXiv:2111.12419): NAM after `bn3` of every bottleneck ("ResNet50-NAM"),
  25,587,240 parameters; the authors released no weights.
"""
import re
from functools import partial
from typing import Any, Dict, Sequence

import torch
from timm.models import generate_default_cfgs, register_model
from torch import nn

from ..layers import convert_cbam_v1_state_dict
from ..weights import released_cfg
from ._builder import build_tricks_model, imagenet_cfg, merge_model_args
from ._checkpoint import filter_checkpoint, flat_state_dict
from ._resnet import Bottleneck, PluggableResNet, conv3x3, conv_shortcut

__all__ = ['checkpoint_filter_fn']

# the authors' plug-in attribute (after `layerN.M.`) -> ours
_AUTHORS_ATTRIBUTES = (
    (re.compile(r'\.cbam\.'), '.se.'),  # CBAM (Jongchan/attention-module)
    (re.compile(r'\.acon\.'), '.act2.'),  # ACON-C / Meta-ACON (nmaac/acon)
)


def _rename(key: str) -> str:
    for pattern, replacement in _AUTHORS_ATTRIBUTES:
        key = pattern.sub(replacement, key)
    return key


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Accept the authors' training checkpoints (`{'state_dict': ...}` of a DataParallel model) and our own layout.

    CBAM keys are renamed and converted by `convert_cbam_v1_state_dict` (MLP Linear -> 1x1 conv, spatial conv input
    channels swapped), then `cbam.` -> `se.`; ACON's `acon.` -> `act2.`. Everything else already has our names.
    """
    state_dict = convert_cbam_v1_state_dict(flat_state_dict(state_dict))
    return filter_checkpoint(state_dict, model, rename=_rename)


def _create_plugin_resnet(variant: str, pretrained: bool, model_args: Dict[str, Any], **kwargs) -> PluggableResNet:
    return build_tricks_model(
        PluggableResNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
        **merge_model_args(model_args, kwargs))


def _acon_args(layers: Sequence[int], mid_act_layer: str) -> Dict[str, Any]:
    """The authors' ACON ResNets: stride on the 1x1, biases on every conv, ACON only after conv2."""
    return dict(
        block=Bottleneck,
        layers=layers,
        stem_bias=True,
        shortcut=partial(conv_shortcut, bias=True),
        block_args=dict(
            conv_bias=True, stride_in_1x1=True, conv_layer=partial(conv3x3, bias=True), mid_act_layer=mid_act_layer),
    )


_cbam_cfg = partial(
    imagenet_cfg,
    origin_url='https://github.com/Jongchan/attention-module',
    paper_ids='arXiv:1807.06521',
    paper_name='CBAM: Convolutional Block Attention Module',
)
_acon_cfg = partial(
    imagenet_cfg,
    origin_url='https://github.com/nmaac/acon',
    license='mit',
    paper_ids='arXiv:2009.04759',
    paper_name='Activate or Not: Learning Customized Activation',
    notes=(
        "The authors' trained models are in a OneDrive folder (https://1drv.ms/u/s!AgaP37NGYuEXhWbwpi4SX1IX6gOs) "
        'and on BaiduYun (https://pan.baidu.com/s/18uDVWe-rh4b7qI_NBvWUCw, code 13fu); the file of each model is '
        'not linked, so no tag downloads it. A downloaded file loads with pretrained=True, '
        'pretrained_cfg_overlay=dict(file=...).',
    ),
)

default_cfgs = generate_default_cfgs({
    'cbam_resnet50.in1k': released_cfg('cbam_resnet50.in1k', **_cbam_cfg()),
    'acon_resnet50.untrained': _acon_cfg(description='README: top-1 error 23.2 (not our weights).'),
    'acon_resnet101.untrained': _acon_cfg(description='README: top-1 error 21.8 (not our weights).'),
    'metaacon_resnet50.untrained': _acon_cfg(description='README: top-1 error 22.0 (not our weights).'),
    'metaacon_resnet101.untrained': _acon_cfg(description='README: top-1 error 21.0 (not our weights).'),
    'nam_resnet50.untrained': imagenet_cfg(
        origin_url='https://github.com/Christian-lyc/NAM',
        license='mit',
        paper_ids='arXiv:2111.12419',
        paper_name='NAM: Normalization-based Attention Module',
        notes=('Written from the paper (the authors\' repository has no licence); no released weights.',),
    ),
})


@register_model
def cbam_resnet50(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """ResNet-50 + the authors' CBAM after bn3 of every bottleneck (the authors' weights: 77.622 top-1)."""
    model_args = dict(block=Bottleneck, layers=(3, 4, 6, 3), block_args=dict(attn_layer='cbam_v1'))
    return _create_plugin_resnet('cbam_resnet50', pretrained, model_args, **kwargs)


@register_model
def acon_resnet50(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """The authors' ResNet-50 with ACON-C after conv2 (stride on the 1x1, convs with bias); no linked weights."""
    return _create_plugin_resnet('acon_resnet50', pretrained, _acon_args((3, 4, 6, 3), 'acon'), **kwargs)


@register_model
def acon_resnet101(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """The authors' ResNet-101 with ACON-C after conv2; no linked weights."""
    return _create_plugin_resnet('acon_resnet101', pretrained, _acon_args((3, 4, 23, 3), 'acon'), **kwargs)


@register_model
def metaacon_resnet50(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """The authors' ResNet-50 with Meta-ACON after conv2 (stride on the 1x1, convs with bias); no linked weights."""
    return _create_plugin_resnet('metaacon_resnet50', pretrained, _acon_args((3, 4, 6, 3), 'meta_acon'), **kwargs)


@register_model
def metaacon_resnet101(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """The authors' ResNet-101 with Meta-ACON after conv2; no linked weights."""
    return _create_plugin_resnet('metaacon_resnet101', pretrained, _acon_args((3, 4, 23, 3), 'meta_acon'), **kwargs)


@register_model
def nam_resnet50(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """ResNet-50 + NAM channel attention after bn3 of every bottleneck ("ResNet50-NAM"); no released weights."""
    model_args = dict(block=Bottleneck, layers=(3, 4, 6, 3), block_args=dict(attn_layer='nam'))
    return _create_plugin_resnet('nam_resnet50', pretrained, model_args, **kwargs)
