"""PyConvResNet and PyConvHGResNet (Duta et al., "Pyramidal Convolution", arXiv:2006.11538).

Topology as in the authors' release (iduta/pyconv): a 7x7 stem without max-pool, all four stages strided,
iResNet-style shortcut (3x3 max-pool, then 1x1 conv + BN), and a pyramid of 4/3/2/1 kernel levels in
stages 1-4. Module names equal the authors' (`conv2.conv2_1`, `downsample.1`, ...), so their checkpoints
load after unwrapping only.

Beyond the reference: `output_stride` 16/8 de-strides the last stage(s) and dilates every pyramid level
(padding = dilation * (k // 2)) as in the authors' segmentation code (iduta/pyconvsegnet); the shortcut
max-pool keeps its 3x3 window with stride 1 there. Every input size >= 32 works, as in the reference: each
strided layer gives ceil(n / 2).

`zero_init_last` zeroes the last BN of the residual branch: `bn3` of the bottleneck (as upstream's
`zero_init_residual`) and `bn2` of the basic block (upstream leaves that one at 1).
"""
from functools import partial
from typing import Any, Dict, Sequence, Type

import torch
from timm.models import generate_default_cfgs, register_model
from torch import nn

from ..layers import create_pyconv
from ..weights import released_cfg
from ._builder import build_tricks_model, imagenet_cfg, merge_model_args
from ._checkpoint import filter_checkpoint
from ._resnet import BasicBlock, Bottleneck, PluggableResNet, conv1x1

__all__ = ['PyConvHGBottleneck', 'pool_conv_shortcut']

# (kernel sizes, groups, fraction of the output per level) of each stage's pyramid
PYRAMID = (
    dict(kernel_sizes=(3, 5, 7, 9), level_groups=(1, 4, 8, 16), out_fractions=(.25, .25, .25, .25)),
    dict(kernel_sizes=(3, 5, 7), level_groups=(1, 4, 8), out_fractions=(.25, .25, .5)),
    dict(kernel_sizes=(3, 5), level_groups=(1, 4), out_fractions=(.5, .5)),
    dict(kernel_sizes=(3,), level_groups=(1,), out_fractions=(1.,)),
)
PYRAMID_HG = (
    dict(kernel_sizes=(3, 5, 7, 9), level_groups=(32, 32, 32, 32), out_fractions=(.25, .25, .25, .25)),
    dict(kernel_sizes=(3, 5, 7), level_groups=(32, 64, 64), out_fractions=(.25, .25, .5)),
    dict(kernel_sizes=(3, 5), level_groups=(32, 64), out_fractions=(.5, .5)),
    dict(kernel_sizes=(3,), level_groups=(32,), out_fractions=(1.,)),
)


class PyConvHGBottleneck(Bottleneck):
    """High-grouping bottleneck: twice the width inside (the stage widths say so), expansion 2."""
    expansion = 2


def pool_conv_shortcut(in_chs: int, out_chs: int, stride: int, norm_layer: Type[nn.Module], device=None,
                       dtype=None) -> nn.Module:
    """iResNet shortcut: 3x3 max-pool (stride 1 in a dilated stage), then 1x1 conv + norm when the width changes.

    Keys `downsample.1` / `downsample.2` as in the authors' checkpoints; without a width change (layer1 of
    the basic-block nets) the shortcut is the bare pool.
    """
    pool = nn.MaxPool2d(kernel_size=3, stride=stride, padding=1)
    if in_chs == out_chs:
        return pool
    return nn.Sequential(
        pool,
        nn.Conv2d(in_chs, out_chs, 1, bias=False, device=device, dtype=dtype),
        norm_layer(out_chs, device=device, dtype=dtype),
    )


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Accept the authors' release (bare state dict) and training checkpoints (`state_dict`, `module.`)."""
    return filter_checkpoint(state_dict, model)


def _create_pyconv_resnet(variant: str, pretrained: bool = False, **kwargs) -> PluggableResNet:
    return build_tricks_model(
        PluggableResNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn, **kwargs)


_cfg = partial(
    imagenet_cfg,
    origin_url='https://github.com/iduta/pyconv',
    paper_ids='arXiv:2006.11538',
    paper_name='Pyramidal Convolution: Rethinking Convolutional Neural Networks for Visual Recognition',
)


default_cfgs = generate_default_cfgs({
    'pyconv_resnet18.untrained': _cfg(license='mit'),
    'pyconv_resnet34.untrained': _cfg(license='mit'),
    **{name: released_cfg(name, **_cfg()) for name in (
        'pyconv_resnet50.in1k', 'pyconv_resnet50.aug_in1k', 'pyconv_resnet101.in1k', 'pyconv_resnet101.aug_in1k',
        'pyconv_resnet152.in1k', 'pyconvhg_resnet50.in1k', 'pyconvhg_resnet101.in1k', 'pyconvhg_resnet152.in1k',
    )},
})


def _pyconv_args(block: Type[nn.Module], layers: Sequence[int], pyramid=PYRAMID, widths=(64, 128, 256, 512)):
    """The authors' topology: no stem pool, four strided stages, a pyramid per stage, the iResNet shortcut. The
    basic block is their `PyConvBasicBlock2`: strided PyConv, then a 1x1 (not a second 3x3)."""
    stage_args = [dict(conv_layer=partial(create_pyconv, **levels)) for levels in pyramid]
    if block is BasicBlock:
        stage_args = [dict(args, conv2_layer=conv1x1) for args in stage_args]
    return dict(
        block=block, layers=layers, stem_pool=None, stage_strides=(2, 2, 2, 2), stage_widths=widths,
        stage_args=stage_args, shortcut=pool_conv_shortcut, dilate_first_block=True)


@register_model
def pyconv_resnet18(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """PyConvResNet-18 (basic blocks with a strided PyConv and a 1x1)."""
    model_args = _pyconv_args(BasicBlock, (2, 2, 2, 2))
    return _create_pyconv_resnet('pyconv_resnet18', pretrained, **merge_model_args(model_args, kwargs))


@register_model
def pyconv_resnet34(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """PyConvResNet-34."""
    model_args = _pyconv_args(BasicBlock, (3, 4, 6, 3))
    return _create_pyconv_resnet('pyconv_resnet34', pretrained, **merge_model_args(model_args, kwargs))


@register_model
def pyconv_resnet50(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """PyConvResNet-50."""
    model_args = _pyconv_args(Bottleneck, (3, 4, 6, 3))
    return _create_pyconv_resnet('pyconv_resnet50', pretrained, **merge_model_args(model_args, kwargs))


@register_model
def pyconv_resnet101(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """PyConvResNet-101."""
    model_args = _pyconv_args(Bottleneck, (3, 4, 23, 3))
    return _create_pyconv_resnet('pyconv_resnet101', pretrained, **merge_model_args(model_args, kwargs))


@register_model
def pyconv_resnet152(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """PyConvResNet-152."""
    model_args = _pyconv_args(Bottleneck, (3, 8, 36, 3))
    return _create_pyconv_resnet('pyconv_resnet152', pretrained, **merge_model_args(model_args, kwargs))


_hg_args = partial(_pyconv_args, PyConvHGBottleneck, pyramid=PYRAMID_HG, widths=(128, 256, 512, 1024))


@register_model
def pyconvhg_resnet50(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """PyConvHGResNet-50 (high grouping, twice the bottleneck width, expansion 2)."""
    model_args = _hg_args((3, 4, 6, 3))
    return _create_pyconv_resnet('pyconvhg_resnet50', pretrained, **merge_model_args(model_args, kwargs))


@register_model
def pyconvhg_resnet101(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """PyConvHGResNet-101."""
    model_args = _hg_args((3, 4, 23, 3))
    return _create_pyconv_resnet('pyconvhg_resnet101', pretrained, **merge_model_args(model_args, kwargs))


@register_model
def pyconvhg_resnet152(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """PyConvHGResNet-152."""
    model_args = _hg_args((3, 8, 36, 3))
    return _create_pyconv_resnet('pyconvhg_resnet152', pretrained, **merge_model_args(model_args, kwargs))
