"""Anti-aliased ResNets (Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019, arXiv:1904.11486).

Every stride-2 operation becomes its dense (stride-1) version followed by a binomial blur with stride 2
(`timm_tricks.layers.BlurPool2d`), placed as in the authors' released models (adobe/antialiased-cnns,
`pool_only=True`), which this file re-implements from the spec (the authors' code is CC BY-NC-SA; none is copied):

* stem: 7x7/2 conv, BN, ReLU, then `maxpool = Sequential(MaxPool2d(2, stride 1), BlurPool2d)`; the 2x2 window
  (not 3x3) is the authors' acknowledged slip, kept because their weights depend on it.
* bottleneck, first block of layers 2-4: 3x3 conv with stride 1, BN, ReLU, blur (`aa`), then the 1x1 `conv3`.
* basic block, first block of layers 2-4: 3x3 `conv1` with stride 1, BN, ReLU, blur (`aa`), then `conv2`.
* projection shortcut of layers 2-4: `downsample = Sequential(BlurPool2d, 1x1 conv stride 1, BN)`; layer1's
  (bottleneck nets) `Sequential(1x1 conv, BN)` as torchvision.

Parameters are exactly torchvision's (the blur has only a non-persistent buffer). The price is compute: each
stage's first 3x3 conv runs at the higher resolution (ResNet-50: 5.16 vs 4.11 fvcore GMACs, +25.6%).

Names: the authors hold the blur inside `conv3`/`conv2` (`conv3 = Sequential(blur, conv1x1)`); we keep torchvision's
`conv3`/`conv2` as plain convs and put the blur in a separate `aa` module, as timm's anti-aliased ResNets do, and
rename in `checkpoint_filter_fn` (`conv3.1.weight` -> `conv3.weight`, `conv2.1.weight` -> `conv2.weight`, every
`*.filt` dropped). The shortcut keeps the authors' indices (`downsample.1` conv, `downsample.2` BN).

`output_stride` 16/8: a de-strided stage has no blur (its `aa` and `downsample.0` are `nn.Identity`, so the keys
and pretrained weights stay the same) and its 3x3 convs are dilated (padding = dilation) as in timm's ResNet.
Every input size >= 32 works (the authors' k=4/k=5 models fail at 32x32; see `BlurPool2d` for the fallback).
"""
import re
from functools import partial
from typing import Any, Dict, Optional

import torch
from timm.models import generate_default_cfgs, register_model
from torch import nn

from ..errors import CheckpointMismatchError
from ..layers import BlurPool2d
from ..weights import released_cfg
from ._builder import build_tricks_model, imagenet_cfg, merge_model_args
from ._checkpoint import filter_checkpoint, flat_state_dict
from ._resnet import BasicBlock, Bottleneck, PluggableResNet, aa_shortcut, conv_shortcut, max_pool_stem


def blurpool_args(filter_size: int = 4) -> Dict[str, Any]:
    """The authors' anti-aliasing with a `filter_size` blur: stride-1 max-pool (2x2) + blur in the stem, blur after
    the strided blocks' activation, blur before the 1x1 of the projections of layers 2-4 (`downsample.0/.1/.2`;
    layer1's is torchvision's `downsample.0/.1`)."""
    if not 1 <= filter_size <= 7:
        raise ValueError(f'filter_size must be in 1..7, got {filter_size}')
    blur = partial(BlurPool2d, filter_size=filter_size)
    return dict(
        aa_layer=blur,
        stem_pool=partial(max_pool_stem, kernel_size=2),
        shortcut=(conv_shortcut, *[partial(aa_shortcut, aa_layer=blur)] * 3),
    )


# the authors' names -> ours: the conv after the blur inside `conv3` / `conv2` of a strided block
_AUTHORS_CONV = re.compile(r'^(layer\d+\.\d+\.conv[23])\.1\.weight$')


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Accept the authors' release (`{'state_dict'}`, `filt` buffers, `conv3.1`/`conv2.1`) and our layout.

    The authors' checkpoints carry their blur filters (`*.filt`, shape (C, 1, k, k)); they are dropped, but first
    checked against the model's `filter_size`: every filter size has the same parameter shapes, so a checkpoint
    trained with another blur would otherwise load silently and give wrong outputs.
    """
    flat = flat_state_dict(state_dict)
    filters = {k: tuple(v.shape) for k, v in flat.items() if k.endswith('.filt')}
    model_size = next((m.filter_size for m in model.modules() if isinstance(m, BlurPool2d)), None)
    wrong = {k: s for k, s in filters.items() if model_size is not None and s[-1] != model_size}
    if wrong:
        key, shape = next(iter(wrong.items()))
        raise CheckpointMismatchError(
            f'checkpoint blur filters do not fit the model: {len(wrong)} `filt` buffers of size {shape[-1]} '
            f'(e.g. {key}: {shape}) vs the model\'s filter_size={model_size}. Use the lpf{shape[-1]} variant '
            f'(or filter_size={shape[-1]}), or remove the `*.filt` keys to load these weights into this blur anyway.')

    def rename(key: str) -> Optional[str]:
        if key.endswith('.filt'):
            return None
        return _AUTHORS_CONV.sub(r'\1.weight', key)

    return filter_checkpoint(flat, model, prefixes=(), rename=rename)


def _create_blurpool_resnet(variant: str, pretrained: bool = False, filter_size: int = 4, **kwargs) -> PluggableResNet:
    if kwargs.get('aa_layer') is not None:
        raise ValueError(f'{variant} has its own anti-aliasing (a binomial blur): set filter_size, not aa_layer')
    kwargs = merge_model_args(blurpool_args(filter_size), kwargs)
    return build_tricks_model(
        PluggableResNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn, **kwargs)


def _released(name: str) -> Dict[str, Any]:
    return released_cfg(name, **imagenet_cfg())


# first tag of an arch = its default: the fine-tuned lpf4 file where it exists (as the authors' `pretrained=True`)
_TAGS = (
    *[f'blurpool_{a}.lpf4_ft_in1k' for a in ('resnet18', 'resnet34', 'resnet50', 'resnet101')],
    *[f'blurpool_{a}.lpf4_in1k' for a in ('resnet18', 'resnet34', 'resnet50', 'resnet101')],
    *[f'blurpool_{a}.lpf4_ft_in1k' for a in (
        'resnet152', 'resnext50_32x4d', 'resnext101_32x8d', 'wide_resnet50_2', 'wide_resnet101_2')],
    *[f'blurpool_resnet{d}_lpf{k}.lpf{k}_in1k' for d in (18, 34, 50, 101) for k in (2, 3, 5)],
)

default_cfgs = generate_default_cfgs({name: _released(name) for name in _TAGS})

_DEPTHS = {
    18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)), 152: (Bottleneck, (3, 8, 36, 3)),
}


def _build(variant: str, depth: int, pretrained: bool, kwargs: Dict[str, Any], filter_size: int = 4,
           **block_args) -> PluggableResNet:
    block, layers = _DEPTHS[depth]
    model_args = dict(block=block, layers=layers, filter_size=filter_size, block_args=block_args)
    return _create_blurpool_resnet(variant, pretrained, **merge_model_args(model_args, kwargs))


@register_model
def blurpool_resnet18(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-18 (Tri-4 blur)."""
    return _build('blurpool_resnet18', 18, pretrained, kwargs)


@register_model
def blurpool_resnet34(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-34 (Tri-4 blur)."""
    return _build('blurpool_resnet34', 34, pretrained, kwargs)


@register_model
def blurpool_resnet50(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-50 (Tri-4 blur)."""
    return _build('blurpool_resnet50', 50, pretrained, kwargs)


@register_model
def blurpool_resnet101(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-101 (Tri-4 blur)."""
    return _build('blurpool_resnet101', 101, pretrained, kwargs)


@register_model
def blurpool_resnet152(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-152 (Tri-4 blur)."""
    return _build('blurpool_resnet152', 152, pretrained, kwargs)


@register_model
def blurpool_resnext50_32x4d(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNeXt-50 32x4d (Tri-4 blur)."""
    return _build('blurpool_resnext50_32x4d', 50, pretrained, kwargs, cardinality=32, base_width=4)


@register_model
def blurpool_resnext101_32x8d(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNeXt-101 32x8d (Tri-4 blur)."""
    return _build('blurpool_resnext101_32x8d', 101, pretrained, kwargs, cardinality=32, base_width=8)


@register_model
def blurpool_wide_resnet50_2(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased Wide ResNet-50-2 (Tri-4 blur)."""
    return _build('blurpool_wide_resnet50_2', 50, pretrained, kwargs, base_width=128)


@register_model
def blurpool_wide_resnet101_2(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased Wide ResNet-101-2 (Tri-4 blur)."""
    return _build('blurpool_wide_resnet101_2', 101, pretrained, kwargs, base_width=128)


@register_model
def blurpool_resnet18_lpf2(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-18 with the Rect-2 blur ([1, 1])."""
    return _build('blurpool_resnet18_lpf2', 18, pretrained, kwargs, filter_size=2)


@register_model
def blurpool_resnet18_lpf3(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-18 with the Tri-3 blur ([1, 2, 1])."""
    return _build('blurpool_resnet18_lpf3', 18, pretrained, kwargs, filter_size=3)


@register_model
def blurpool_resnet18_lpf5(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-18 with the Bin-5 blur ([1, 4, 6, 4, 1])."""
    return _build('blurpool_resnet18_lpf5', 18, pretrained, kwargs, filter_size=5)


@register_model
def blurpool_resnet34_lpf2(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-34 with the Rect-2 blur."""
    return _build('blurpool_resnet34_lpf2', 34, pretrained, kwargs, filter_size=2)


@register_model
def blurpool_resnet34_lpf3(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-34 with the Tri-3 blur."""
    return _build('blurpool_resnet34_lpf3', 34, pretrained, kwargs, filter_size=3)


@register_model
def blurpool_resnet34_lpf5(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-34 with the Bin-5 blur."""
    return _build('blurpool_resnet34_lpf5', 34, pretrained, kwargs, filter_size=5)


@register_model
def blurpool_resnet50_lpf2(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-50 with the Rect-2 blur."""
    return _build('blurpool_resnet50_lpf2', 50, pretrained, kwargs, filter_size=2)


@register_model
def blurpool_resnet50_lpf3(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-50 with the Tri-3 blur."""
    return _build('blurpool_resnet50_lpf3', 50, pretrained, kwargs, filter_size=3)


@register_model
def blurpool_resnet50_lpf5(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-50 with the Bin-5 blur."""
    return _build('blurpool_resnet50_lpf5', 50, pretrained, kwargs, filter_size=5)


@register_model
def blurpool_resnet101_lpf2(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-101 with the Rect-2 blur."""
    return _build('blurpool_resnet101_lpf2', 101, pretrained, kwargs, filter_size=2)


@register_model
def blurpool_resnet101_lpf3(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-101 with the Tri-3 blur."""
    return _build('blurpool_resnet101_lpf3', 101, pretrained, kwargs, filter_size=3)


@register_model
def blurpool_resnet101_lpf5(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Anti-aliased ResNet-101 with the Bin-5 blur."""
    return _build('blurpool_resnet101_lpf5', 101, pretrained, kwargs, filter_size=5)
