"""ResNet with modulated deformable convolution (DCNv2) in c3-c5 (Zhu et al., CVPR 2019, arXiv:1811.11168).

Topology as mmdetection's DCNv2 configs (`dcn=dict(type='DCNv2', deform_groups=1, fallback_on_stride=False),
stage_with_dcn=(False, True, True, True)`): a torchvision ResNet (7x7 stem + max-pool, stride on the 3x3,
projection shortcut) whose 3x3 `conv2` in every block of layer2-layer4 is a `ModulatedDeformConv2d` with the same
channels, stride, padding and dilation (13 layers in R-50, 30 in R-101). Module names are mmdet's / torchvision's,
so mmdetection backbones load by stripping `backbone.` and torchvision ResNets load unchanged (plus conversion).

Family keywords: `dcn_stages` (which of layer1..layer4 get deformable 3x3 convs, default (2, 3, 4) = c3-c5) and
`deform_groups` (default 1; must divide the 3x3 width of every deformable stage, 128/256/512).

`output_stride` 16/8 follows timm / torchvision ResNet: the last stage(s) lose their stride and dilate their 3x3
convs (the first block of a dilated stage keeps the previous dilation); the deformable conv and its offset predictor
share that stride / padding / dilation, so offsets always match the output size at every input size.

Pretrained weights (see docs/dcn_resnet.md):
* `.tv_in1k`: no DCNv2 ImageNet classifier exists. These tags load torchvision's plain ImageNet ResNet from timm's
  Hub repos (`timm/resnet50.tv_in1k`, `timm/resnet101.tv_in1k`), as mmdetection initialises its DCN detectors,
  but converted so that the loaded model computes exactly the plain ResNet's function: offset predictor zero
  (offsets 0, mask sigmoid(0) = 0.5) and the deformable layers' weights doubled to cancel the mask's 0.5.
  mmdetection instead loads the weights unchanged, which halves every deformable layer at init.
* `.coco_frcnn`, `.coco_mrcnn`: the backbones of mmdetection's COCO DCNv2 detectors (feature backbones, no
  classifier: `num_classes=0`); `dcnv2_resnet50_dg4.coco_frcnn` is the one trained with `deform_groups=4`.
"""
import re
from functools import partial
from typing import Any, Dict, Sequence

import torch
from timm.models import generate_default_cfgs, register_model
from torch import nn

from ..errors import CheckpointMismatchError
from ..layers import ModulatedDeformConv2d
from ..weights import released_cfg
from ._builder import build_tricks_model, imagenet_cfg, merge_model_args
from ._checkpoint import filter_checkpoint, flat_state_dict
from ._contract import STAGE_NAMES
from ._resnet import Bottleneck, PluggableResNet

__all__ = ['checkpoint_filter_fn']

DEFAULT_DCN_STAGES = (2, 3, 4)  # layer2-layer4 = c3-c5


def _dcn_layers(model: nn.Module) -> Dict[str, ModulatedDeformConv2d]:
    return {name: m for name, m in model.named_modules() if isinstance(m, ModulatedDeformConv2d)}


_MMDET_V1_OFFSET = re.compile(r'^(layer\d+\.\d+)\.conv2_offset\.')


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Load three layouts, told apart by their keys:

    * mmdetection detector checkpoint (`{'meta', 'state_dict': {'backbone.…', 'neck.…', …}}`): keep the backbone,
      strip `backbone.`; old mmdet v1 names `layerL.B.conv2_offset.*` become `layerL.B.conv2.conv_offset.*`.
    * ours (bare or `module.`-prefixed, with `conv2.conv_offset.*` keys): as is.
    * a plain torchvision / timm ResNet (no `conv_offset` keys for any deformable layer): converted so that the
      model computes the plain ResNet's function: `conv_offset` zero (offsets 0, mask sigmoid(0) = 0.5) and each
      deformable layer's weight doubled, which cancels the mask's 0.5 exactly (a power of two).
    """
    sd = flat_state_dict(state_dict)
    if any(k.startswith('backbone.') for k in sd):
        sd = {k[len('backbone.'):]: v for k, v in sd.items() if k.startswith('backbone.')}
    sd = {_MMDET_V1_OFFSET.sub(r'\1.conv2.conv_offset.', k): v for k, v in sd.items()}

    dcn = _dcn_layers(model)
    with_offsets = [n for n in dcn if f'{n}.conv_offset.weight' in sd]
    if dcn and not with_offsets and all(f'{n}.weight' in sd for n in dcn):
        sd = dict(sd)
        for name, layer in dcn.items():
            sd[f'{name}.weight'] = 2. * sd[f'{name}.weight'].float()
            sd[f'{name}.conv_offset.weight'] = torch.zeros(layer.conv_offset.weight.shape)
            sd[f'{name}.conv_offset.bias'] = torch.zeros(layer.conv_offset.bias.shape)
    for name in with_offsets:
        have = sd[f'{name}.conv_offset.weight'].shape[0]
        want = dcn[name].conv_offset.weight.shape[0]
        taps = dcn[name].kernel_size[0] * dcn[name].kernel_size[1]
        if have != want and have % (3 * taps) == 0:
            raise CheckpointMismatchError(
                f'{name}.conv_offset.weight: checkpoint {tuple(sd[f"{name}.conv_offset.weight"].shape)} vs model '
                f'{tuple(dcn[name].conv_offset.weight.shape)}: the checkpoint was trained with '
                f'deform_groups={have // (3 * taps)}, the model has deform_groups={dcn[name].deform_groups}. '
                f'Create the model with deform_groups={have // (3 * taps)}.')
    return filter_checkpoint(sd, model, prefixes=())


def _create_dcn_resnet(variant: str, pretrained: bool = False, layers: Sequence[int] = (3, 4, 6, 3),
                       dcn_stages: Sequence[int] = DEFAULT_DCN_STAGES, deform_groups: int = 1,
                       **kwargs) -> PluggableResNet:
    dcn_stages = tuple(dcn_stages)
    if any(s not in (1, 2, 3, 4) for s in dcn_stages):
        raise ValueError(
            f'dcn_stages must hold stage numbers 1-4 (layer1-layer4; c3-c5 = (2, 3, 4)), got {dcn_stages}')
    # the block's 3x3 as DCNv2 (mmdet's `DCNv2` conv): the layer's default padding is the plain 3x3's, dilation x 1
    dcn = partial(ModulatedDeformConv2d, kernel_size=3, deform_groups=deform_groups)
    model_args = dict(
        block=Bottleneck,
        layers=layers,
        stage_args=[dict(conv_layer=dcn) if i in dcn_stages else {} for i in range(1, len(STAGE_NAMES) + 1)],
    )
    return build_tricks_model(
        PluggableResNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
        **merge_model_args(model_args, kwargs))


def _released(name: str, **kwargs) -> Dict[str, Any]:
    """`released_cfg` with the original download as `url` (used only without a Hub source); these tags have no
    reported ImageNet top-1 of their own, so the cfg notes are the manifest entry's."""
    return released_cfg(name, **imagenet_cfg(**kwargs))


default_cfgs = generate_default_cfgs({
    # first tag = the default tag of the bare name
    'dcnv2_resnet50.tv_in1k': _released('dcnv2_resnet50.tv_in1k'),
    'dcnv2_resnet50.coco_frcnn': _released('dcnv2_resnet50.coco_frcnn', num_classes=0),
    'dcnv2_resnet50.coco_mrcnn': _released('dcnv2_resnet50.coco_mrcnn', num_classes=0),
    'dcnv2_resnet50_dg4.coco_frcnn': _released('dcnv2_resnet50_dg4.coco_frcnn', num_classes=0),
    'dcnv2_resnet101.tv_in1k': _released('dcnv2_resnet101.tv_in1k'),
})


@register_model
def dcnv2_resnet50(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """ResNet-50 with DCNv2 in every 3x3 of c3-c5 (13 deformable layers)."""
    return _create_dcn_resnet('dcnv2_resnet50', pretrained, **dict(dict(layers=(3, 4, 6, 3)), **kwargs))


@register_model
def dcnv2_resnet50_dg4(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """ResNet-50 with DCNv2 in c3-c5, 4 deformable groups (mmdetection's `faster_rcnn_r50_fpn_mdconv_c3-c5_group4`)."""
    model_args = dict(layers=(3, 4, 6, 3), deform_groups=4)
    return _create_dcn_resnet('dcnv2_resnet50_dg4', pretrained, **dict(model_args, **kwargs))


@register_model
def dcnv2_resnet101(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """ResNet-101 with DCNv2 in every 3x3 of c3-c5 (30 deformable layers)."""
    return _create_dcn_resnet('dcnv2_resnet101', pretrained, **dict(dict(layers=(3, 4, 23, 3)), **kwargs))
