"""SPConv-ResNet (Zhang et al., "Split to Be Slim: An Overlooked Redundancy in Vanilla Convolution", IJCAI 2020).

A torchvision ResNet (7x7 stem + max-pool, stride on the 3x3, `downsample.0/1` projection) whose residual
3x3 convs are `SPConv2d` (timm_tricks.layers.spconv): in the bottleneck only `conv2`, in the basic block both
convs (as the authors' commit 78c734f "fix basicblock"). The block's own BN follows the SPConv, which has two
BNs inside: both are kept so that the authors' checkpoints (qiulinzhang/SPConv.pytorch) load unchanged.

Beyond the reference: every input size >= 32 works (ceil-mode average pooling, see the layer), TorchScript and
FX work, `output_stride` 16/8 de-strides the last stage(s) and dilates their SPConv 3x3 (no pooling there), and
`model.reparameterize()` (or timm's `reparameterize_model`) folds every BatchNorm into the convs for inference.

`zero_init_last` zeroes the last BN of the residual branch (`bn3` / the basic block's `bn2`), as timm's ResNet;
the authors' default `zero_init_residual=False` is `zero_init_last=False`.
"""
from functools import partial
from typing import Any, Dict

import torch
from timm.layers import get_norm_layer
from timm.models import generate_default_cfgs, register_model
from torch import nn

from ..layers import SPConv2d
from ..weights import released_cfg
from ._builder import build_tricks_model, imagenet_cfg, merge_model_args
from ._checkpoint import filter_checkpoint
from ._resnet import BasicBlock, Bottleneck, PluggableResNet


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Accept the authors' `.pkl` layout and our own.

    The authors trained with apex `network_to_half` (`Sequential(tofp16(), model)`, so keys start with `1.`),
    possibly under DataParallel (`module.`) and inside `{'state_dict': ..., 'epoch': ...}`; fp16 tensors are cast
    to float32. Module names are otherwise ours, so nothing is renamed.
    """
    return filter_checkpoint(state_dict, model, prefixes=('1.', 'module.'))


def _create_spconv_resnet(variant: str, pretrained: bool = False, spconv_ratio: float = 0.5,
                          **kwargs) -> PluggableResNet:
    if not 0. < spconv_ratio < 1.:
        raise ValueError(f'spconv_ratio (the SPConv alpha) must be in (0, 1), got {spconv_ratio}')
    # the SPConv's two inner norms are the model's norm_layer too
    norm_layer = get_norm_layer(kwargs.get('norm_layer') or nn.BatchNorm2d)
    spconv = partial(SPConv2d, ratio=spconv_ratio, norm_layer=norm_layer)
    kwargs = merge_model_args(dict(block_args=dict(conv_layer=spconv)), kwargs)
    return build_tricks_model(
        PluggableResNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn, **kwargs)


_cfg = partial(
    imagenet_cfg,
    origin_url='https://github.com/qiulinzhang/SPConv.pytorch',
    paper_ids='arXiv:2006.12085',
    paper_name='Split to Be Slim: An Overlooked Redundancy in Vanilla Convolution',
)


default_cfgs = generate_default_cfgs({
    'spconv_resnet18.untrained': _cfg(license='unknown'),
    'spconv_resnet34.untrained': _cfg(license='unknown'),
    **{name: released_cfg(name, **_cfg()) for name in (
        'spconv_resnet50.in1k', 'spconv_resnet50_a4.in1k', 'spconv_resnet50_a8.in1k',
    )},
    'spconv_resnet101.untrained': _cfg(license='unknown'),
    'spconv_resnet152.untrained': _cfg(license='unknown'),
})


@register_model
def spconv_resnet18(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """SPConv-ResNet-18 (alpha 1/2, both 3x3 convs of each basic block are SPConvs); no released weights."""
    model_args = dict(block=BasicBlock, layers=(2, 2, 2, 2))
    return _create_spconv_resnet('spconv_resnet18', pretrained, **dict(model_args, **kwargs))


@register_model
def spconv_resnet34(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """SPConv-ResNet-34 (alpha 1/2); no released weights."""
    model_args = dict(block=BasicBlock, layers=(3, 4, 6, 3))
    return _create_spconv_resnet('spconv_resnet34', pretrained, **dict(model_args, **kwargs))


@register_model
def spconv_resnet50(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """SPConv-ResNet-50, alpha 1/2 (the authors' weights: 76.26 top-1)."""
    model_args = dict(block=Bottleneck, layers=(3, 4, 6, 3))
    return _create_spconv_resnet('spconv_resnet50', pretrained, **dict(model_args, **kwargs))


@register_model
def spconv_resnet50_a4(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """SPConv-ResNet-50, alpha 1/4 (gwc groups still 2; the authors' weights: 75.95 top-1)."""
    model_args = dict(block=Bottleneck, layers=(3, 4, 6, 3), spconv_ratio=0.25)
    return _create_spconv_resnet('spconv_resnet50_a4', pretrained, **dict(model_args, **kwargs))


@register_model
def spconv_resnet50_a8(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """SPConv-ResNet-50, alpha 1/8 (gwc groups still 2; the authors' weights: 75.40 top-1)."""
    model_args = dict(block=Bottleneck, layers=(3, 4, 6, 3), spconv_ratio=0.125)
    return _create_spconv_resnet('spconv_resnet50_a8', pretrained, **dict(model_args, **kwargs))


@register_model
def spconv_resnet101(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """SPConv-ResNet-101 (alpha 1/2); no released weights."""
    model_args = dict(block=Bottleneck, layers=(3, 4, 23, 3))
    return _create_spconv_resnet('spconv_resnet101', pretrained, **dict(model_args, **kwargs))


@register_model
def spconv_resnet152(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """SPConv-ResNet-152 (alpha 1/2); no released weights."""
    model_args = dict(block=Bottleneck, layers=(3, 8, 36, 3))
    return _create_spconv_resnet('spconv_resnet152', pretrained, **dict(model_args, **kwargs))
