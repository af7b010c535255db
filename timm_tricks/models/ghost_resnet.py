"""Ghost-ResNet-50 (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020, arXiv:1911.11907).

ResNet-50 (torchvision layout, stride on the 3x3) in which every bottleneck convolution (`conv1` 1x1, `conv2`
3x3, `conv3` 1x1) and the projection shortcut (`downsample`, 1x1) is a Ghost module with ratio `s` and cheap
depth-wise kernel `d` = 3: `ghost_resnet50` (s = 2) and `ghost_resnet50_s4` (s = 4), the paper's Table 6.

Paper-faithful rather than a copy of the authors' `ghost_resnet.py` (the only released Ghost-ResNet code):
that file's Ghost module has no BatchNorm (so its residual blocks have none at all), allocates parameters
forward never uses and ends in a fixed 7x7 average pool (224 px only). Here each Ghost module is GhostNet's
(conv + BN (+ ReLU) twice), every parameter is used, the head pools adaptively and every input size works.
The MACs equal the paper's; parameter counts differ from its 13.0 M / 6.5 M (docs/ghost_resnet.md explains
the arithmetic). No weights exist: the authors declined to release them (Efficient-AI-Backbones #159).

`output_stride` 16/8 de-strides the last stage(s) and dilates the primary 3x3 conv of their bottlenecks (the
first block of a stage keeps the previous dilation, as timm's ResNet); the cheap depth-wise conv and the 1x1
Ghost modules stay undilated. `zero_init_last` zeroes both BN gammas of `conv3`, so each block starts as
identity.

timm's own GhostNet models (`ghostnet_050/100/130`) are listed as this family's reference members
(`timm_tricks.list_models(include_reference=True)`); they stay registered by timm and are never re-registered.
"""
from functools import partial
from typing import Any, Dict, Optional, Type

import torch
from timm.models import generate_default_cfgs, register_model
from torch import nn

from ..errors import CheckpointMismatchError
from ..layers import GhostModule
from ._builder import build_tricks_model, imagenet_cfg, merge_model_args
from ._checkpoint import filter_checkpoint, unwrap_state_dict
from ._resnet import BlockLayers, PluggableResNet, ResidualBlock

__all__ = ['GhostResNetBottleneck', 'ghost_shortcut']


class GhostResNetBottleneck(ResidualBlock):
    """ResNet bottleneck whose three convolutions are Ghost modules: 1x1 -> strided 3x3 -> [aa] -> 1x1 (x4) [-> se].

    The plug-ins sit where timm's Bottleneck has them: DropBlock after the 3x3 Ghost module, attention (`se`)
    after the last one. The activations live inside the Ghost modules (the cheap conv reads the activated
    intrinsic maps), so a channel-aware `mid_act_layer` has no place to go and is refused.
    """
    expansion = 4

    def __init__(self, in_chs: int, planes: int, stride: int = 1, dilation: int = 1,
                 first_dilation: Optional[int] = None, downsample: Optional[nn.Module] = None,
                 layers: BlockLayers = BlockLayers(), ratio: int = 2, dw_size: int = 3, device=None, dtype=None):
        super().__init__()
        if layers.mid_act_layer is not None:
            raise ValueError(
                'ghost_resnet: mid_act_layer is not supported: the activations sit inside the Ghost modules, where '
                'the cheap depth-wise conv reads the activated intrinsic maps; use act_layer for a channel-free one')
        dd = dict(device=device, dtype=dtype)
        ghost = partial(GhostModule, ratio=ratio, dw_size=dw_size, norm_layer=layers.norm_layer, **dd)
        self.conv1 = ghost(in_chs, planes, 1, act_layer=layers.act_layer)
        self.conv2 = ghost(
            planes, planes, 3, stride=1 if layers.uses_aa(stride) else stride, dilation=first_dilation or dilation,
            act_layer=layers.act_layer)
        self.drop_block = layers.dropblock()
        self.aa = layers.aa(planes, stride, **dd)
        self.conv3 = ghost(planes, planes * self.expansion, 1, act_layer=None)
        self.act3 = layers.act()
        self._init_residual(planes * self.expansion, downsample, layers, **dd)

    def zero_init_last(self) -> None:
        for norm in (self.conv3.primary_conv[1], self.conv3.cheap_operation[1]):
            if getattr(norm, 'weight', None) is not None:
                nn.init.zeros_(norm.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.aa(self.drop_block(self.conv2(self.conv1(x)))))
        return self.act3(self.residual(y, x))


def ghost_shortcut(in_chs: int, out_chs: int, stride: int, norm_layer: Type[nn.Module], ratio: int = 2,
                   dw_size: int = 3, device=None, dtype=None) -> nn.Module:
    """Projection shortcut as a linear Ghost module: strided 1x1 primary conv + BN, cheap d x d conv + BN."""
    return GhostModule(
        in_chs, out_chs, 1, stride=stride, ratio=ratio, dw_size=dw_size, act_layer=None, norm_layer=norm_layer,
        device=device, dtype=dtype)


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Accept our layout, bare or inside a training checkpoint (`state_dict` / `model`, `module.` prefix).

    The BN-free layout of the authors' `ghost_resnet.py` (`conv1.conv1.weight`, `weight1`, ...) cannot be
    mapped onto this model, and no such weights were ever released; it gets an error that says so.
    """
    keys = list(unwrap_state_dict(state_dict))
    released = [k for k in keys if k.endswith(('.weight1', '.weight2')) or '.conv1.conv1.' in k]
    if released:
        raise CheckpointMismatchError(
            f"checkpoint has the BN-free Ghost module layout of the authors' ghost_resnet.py ({released[0]}, "
            f'{len(released)} such keys): those Ghost modules have conv biases and no BatchNorm, so they cannot '
            'be mapped onto this paper-faithful model (Ghost modules with BatchNorm, keys '
            "'layerL.B.convN.primary_conv.0.weight', '...cheap_operation.1.running_var').")
    return filter_checkpoint(state_dict, model)


def _create_ghost_resnet(variant: str, pretrained: bool = False, **kwargs) -> PluggableResNet:
    return build_tricks_model(
        PluggableResNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn, **kwargs)


_cfg = partial(
    imagenet_cfg,
    origin_url='https://github.com/huawei-noah/Efficient-AI-Backbones', license='apache-2.0',
    paper_ids='arXiv:1911.11907', paper_name='GhostNet: More Features from Cheap Operations',
    notes=('No released weights: the authors declined to publish Ghost-ResNet-50 weights '
           '(huawei-noah/Efficient-AI-Backbones issue #159).',),
)


default_cfgs = generate_default_cfgs({
    'ghost_resnet50.untrained': _cfg(
        description='Ghost-ResNet-50, s=2, d=3. Paper: 13.0 M params, 2.2 GMACs, 75.0 top-1 (not our weights).'),
    'ghost_resnet50_s4.untrained': _cfg(
        description='Ghost-ResNet-50, s=4, d=3. Paper: 6.5 M params, 1.2 GMACs, 74.1 top-1 (not our weights).'),
})


def _ghost_resnet_args(ratio: int, dw_size: int = 3) -> Dict[str, Any]:
    return dict(
        block=GhostResNetBottleneck, layers=(3, 4, 6, 3), block_args=dict(ratio=ratio, dw_size=dw_size),
        shortcut=partial(ghost_shortcut, ratio=ratio, dw_size=dw_size))


@register_model
def ghost_resnet50(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Ghost-ResNet-50, s = 2, d = 3 (13.95 M parameters, 2.17 GMACs at 224)."""
    model_args = _ghost_resnet_args(ratio=2)
    return _create_ghost_resnet('ghost_resnet50', pretrained, **merge_model_args(model_args, kwargs))


@register_model
def ghost_resnet50_s4(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Ghost-ResNet-50, s = 4, d = 3 (8.15 M parameters, 1.20 GMACs at 224)."""
    model_args = _ghost_resnet_args(ratio=4)
    return _create_ghost_resnet('ghost_resnet50_s4', pretrained, **merge_model_args(model_args, kwargs))
