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
from typing import Any, Dict, Optional, Sequence, Type

import torch
from torch import nn

from timm.models import generate_default_cfgs, register_model

from ..errors import CheckpointMismatchError
from ..layers import BlurPool2d
from ..weights import released_cfg
from ._builder import build_tricks_model, imagenet_cfg
from ._checkpoint import filter_checkpoint, strip_prefixes, unwrap_state_dict
from ._resnet_base import BasicBlock, Bottleneck, TricksResNet

__all__ = ['BlurPoolResNet', 'BlurBottleneck', 'BlurBasicBlock', 'blur_max_pool_stem', 'blur_shortcut']


def _blur_or_identity(chs: int, filter_size: int, stride: int, device=None, dtype=None) -> nn.Module:
    if stride == 1:
        return nn.Identity()
    return BlurPool2d(chs, filt_size=filter_size, stride=stride, device=device, dtype=dtype)


class BlurBottleneck(Bottleneck):
    """torchvision's bottleneck (ResNeXt / Wide via `cardinality`, `base_width`) with the stride moved into a blur
    between the 3x3 conv's activation and `conv3`."""

    def make_width(self, planes: int, cardinality: int = 1, base_width: int = 64, **family_args) -> int:
        return int(planes * (base_width / 64.)) * cardinality

    def make_conv2(
            self,
            chs: int,
            stride: int,
            dilation: int,
            first_dilation: int,
            norm_layer: Type[nn.Module],
            filter_size: int = 4,
            cardinality: int = 1,
            base_width: int = 64,
            device=None,
            dtype=None,
    ) -> nn.Module:
        # the stride goes to `aa`
        return super().make_conv2(
            chs, 1, dilation, first_dilation, norm_layer, groups=cardinality, device=device, dtype=dtype)

    def make_aa(self, chs: int, stride: int, filter_size: int = 4, device=None, dtype=None, **family_args) -> nn.Module:
        return _blur_or_identity(chs, filter_size, stride, device=device, dtype=dtype)


class BlurBasicBlock(BasicBlock):
    """torchvision's basic block with the stride moved into a blur between `conv1`'s activation and `conv2`."""

    def __init__(self, in_chs: int, planes: int, cardinality: int = 1, base_width: int = 64, **kwargs):
        if cardinality != 1 or base_width != 64:
            raise ValueError('BlurBasicBlock supports only cardinality=1 and base_width=64 (as torchvision)')
        super().__init__(in_chs, planes, **kwargs)

    def make_conv1(self, in_chs: int, out_chs: int, stride: int, *args, filter_size: int = 4, **kwargs) -> nn.Module:
        # the stride goes to `aa`
        return super().make_conv1(in_chs, out_chs, 1, *args, **kwargs)

    def make_conv2(self, *args, filter_size: int = 4, **kwargs) -> nn.Module:
        return super().make_conv2(*args, **kwargs)

    def make_aa(self, chs: int, stride: int, filter_size: int = 4, device=None, dtype=None) -> nn.Module:
        return _blur_or_identity(chs, filter_size, stride, device=device, dtype=dtype)


def blur_max_pool_stem(chs: int, filter_size: int = 4, device=None, dtype=None) -> nn.Module:
    """The authors' stem pool: 2x2 max-pool with stride 1 (no padding), then a stride-2 blur (`maxpool.0/.1`)."""
    return nn.Sequential(
        nn.MaxPool2d(kernel_size=2, stride=1),
        BlurPool2d(chs, filt_size=filter_size, stride=2, device=device, dtype=dtype),
    )


def blur_shortcut(
        in_chs: int,
        out_chs: int,
        stride: int,
        stage_stride: int,
        norm_layer: Type[nn.Module],
        filter_size: int = 4,
        device=None,
        dtype=None,
) -> nn.Module:
    """Projection shortcut: blur (stride 2), 1x1 conv with stride 1, norm (`downsample.0/.1/.2`).

    In a stage without stride in the architecture (layer1) it is torchvision's 1x1 conv + norm
    (`downsample.0/.1`); in a stage de-strided for `output_stride` the blur becomes an `nn.Identity`, so the
    conv and norm keep their keys (and the pretrained weights still load).
    """
    dd = dict(device=device, dtype=dtype)
    conv_norm = [nn.Conv2d(in_chs, out_chs, 1, bias=False, **dd), norm_layer(out_chs, **dd)]
    if stage_stride == 1:
        return nn.Sequential(*conv_norm)
    return nn.Sequential(_blur_or_identity(in_chs, filter_size, stride, **dd), *conv_norm)


class BlurPoolResNet(TricksResNet):
    """`TricksResNet` with the authors' blur stem pool, blur blocks and blur shortcut.

    Args (besides `TricksResNet`'s):
        filter_size: binomial filter size of every blur, 1-7 (authors' released models: 2-5; default 4).
        cardinality, base_width: bottleneck groups and width per group (ResNeXt 32x4d: 32, 4; Wide: 1, 128).
    """

    def __init__(
            self,
            block: Type[nn.Module],
            layers: Sequence[int],
            filter_size: int = 4,
            cardinality: int = 1,
            base_width: int = 64,
            **kwargs,
    ):
        if not 1 <= filter_size <= 7:
            raise ValueError(f'filter_size must be in 1..7, got {filter_size}')
        super().__init__(
            block,
            layers,
            stem_pool=partial(blur_max_pool_stem, filter_size=filter_size),
            shortcut=partial(blur_shortcut, filter_size=filter_size),
            block_args=dict(filter_size=filter_size, cardinality=cardinality, base_width=base_width),
            **kwargs,
        )
        self.filter_size = filter_size


# the authors' names -> ours: the conv after the blur inside `conv3` / `conv2` of a strided block
_AUTHORS_CONV = re.compile(r'^(layer\d+\.\d+\.conv[23])\.1\.weight$')


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Accept the authors' release (`{'state_dict'}`, `filt` buffers, `conv3.1`/`conv2.1`) and our layout.

    The authors' checkpoints carry their blur filters (`*.filt`, shape (C, 1, k, k)); they are dropped, but first
    checked against the model's `filter_size`: every filter size has the same parameter shapes, so a checkpoint
    trained with another blur would otherwise load silently and give wrong outputs.
    """
    flat = strip_prefixes(unwrap_state_dict(state_dict), ('module.',))
    filters = {k: tuple(v.shape) for k, v in flat.items() if k.endswith('.filt')}
    model_size = getattr(model, 'filter_size', None)
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


def _create_blurpool_resnet(variant: str, pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    return build_tricks_model(
        BlurPoolResNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn, **kwargs)


def _released(name: str) -> Dict[str, Any]:
    return released_cfg(name, set_url=True, **imagenet_cfg())


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
    18: (BlurBasicBlock, (2, 2, 2, 2)), 34: (BlurBasicBlock, (3, 4, 6, 3)), 50: (BlurBottleneck, (3, 4, 6, 3)),
    101: (BlurBottleneck, (3, 4, 23, 3)), 152: (BlurBottleneck, (3, 8, 36, 3)),
}


def _build(variant: str, depth: int, pretrained: bool, kwargs: Dict[str, Any], **model_args) -> BlurPoolResNet:
    block, layers = _DEPTHS[depth]
    model_args = dict(block=block, layers=layers, **model_args)
    return _create_blurpool_resnet(variant, pretrained, **dict(model_args, **kwargs))


@register_model
def blurpool_resnet18(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-18 (Tri-4 blur)."""
    return _build('blurpool_resnet18', 18, pretrained, kwargs)


@register_model
def blurpool_resnet34(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-34 (Tri-4 blur)."""
    return _build('blurpool_resnet34', 34, pretrained, kwargs)


@register_model
def blurpool_resnet50(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-50 (Tri-4 blur)."""
    return _build('blurpool_resnet50', 50, pretrained, kwargs)


@register_model
def blurpool_resnet101(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-101 (Tri-4 blur)."""
    return _build('blurpool_resnet101', 101, pretrained, kwargs)


@register_model
def blurpool_resnet152(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-152 (Tri-4 blur)."""
    return _build('blurpool_resnet152', 152, pretrained, kwargs)


@register_model
def blurpool_resnext50_32x4d(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNeXt-50 32x4d (Tri-4 blur)."""
    return _build('blurpool_resnext50_32x4d', 50, pretrained, kwargs, cardinality=32, base_width=4)


@register_model
def blurpool_resnext101_32x8d(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNeXt-101 32x8d (Tri-4 blur)."""
    return _build('blurpool_resnext101_32x8d', 101, pretrained, kwargs, cardinality=32, base_width=8)


@register_model
def blurpool_wide_resnet50_2(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased Wide ResNet-50-2 (Tri-4 blur)."""
    return _build('blurpool_wide_resnet50_2', 50, pretrained, kwargs, base_width=128)


@register_model
def blurpool_wide_resnet101_2(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased Wide ResNet-101-2 (Tri-4 blur)."""
    return _build('blurpool_wide_resnet101_2', 101, pretrained, kwargs, base_width=128)


@register_model
def blurpool_resnet18_lpf2(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-18 with the Rect-2 blur ([1, 1])."""
    return _build('blurpool_resnet18_lpf2', 18, pretrained, kwargs, filter_size=2)


@register_model
def blurpool_resnet18_lpf3(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-18 with the Tri-3 blur ([1, 2, 1])."""
    return _build('blurpool_resnet18_lpf3', 18, pretrained, kwargs, filter_size=3)


@register_model
def blurpool_resnet18_lpf5(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-18 with the Bin-5 blur ([1, 4, 6, 4, 1])."""
    return _build('blurpool_resnet18_lpf5', 18, pretrained, kwargs, filter_size=5)


@register_model
def blurpool_resnet34_lpf2(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-34 with the Rect-2 blur."""
    return _build('blurpool_resnet34_lpf2', 34, pretrained, kwargs, filter_size=2)


@register_model
def blurpool_resnet34_lpf3(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-34 with the Tri-3 blur."""
    return _build('blurpool_resnet34_lpf3', 34, pretrained, kwargs, filter_size=3)


@register_model
def blurpool_resnet34_lpf5(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-34 with the Bin-5 blur."""
    return _build('blurpool_resnet34_lpf5', 34, pretrained, kwargs, filter_size=5)


@register_model
def blurpool_resnet50_lpf2(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-50 with the Rect-2 blur."""
    return _build('blurpool_resnet50_lpf2', 50, pretrained, kwargs, filter_size=2)


@register_model
def blurpool_resnet50_lpf3(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-50 with the Tri-3 blur."""
    return _build('blurpool_resnet50_lpf3', 50, pretrained, kwargs, filter_size=3)


@register_model
def blurpool_resnet50_lpf5(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-50 with the Bin-5 blur."""
    return _build('blurpool_resnet50_lpf5', 50, pretrained, kwargs, filter_size=5)


@register_model
def blurpool_resnet101_lpf2(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-101 with the Rect-2 blur."""
    return _build('blurpool_resnet101_lpf2', 101, pretrained, kwargs, filter_size=2)


@register_model
def blurpool_resnet101_lpf3(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-101 with the Tri-3 blur."""
    return _build('blurpool_resnet101_lpf3', 101, pretrained, kwargs, filter_size=3)


@register_model
def blurpool_resnet101_lpf5(pretrained: bool = False, **kwargs) -> BlurPoolResNet:
    """Anti-aliased ResNet-101 with the Bin-5 blur."""
    return _build('blurpool_resnet101_lpf5', 101, pretrained, kwargs, filter_size=5)
