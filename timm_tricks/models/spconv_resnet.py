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
from typing import Any, Dict, Optional, Type

import torch
from torch import nn

from timm.models import generate_default_cfgs, register_model
from timm.models._manipulate import reparameterize_model

from ..layers import SPConv2d, fold_conv_norm
from ..weights import released_cfg
from ._builder import build_tricks_model, imagenet_cfg
from ._checkpoint import filter_checkpoint
from ._resnet_base import BasicBlock, Bottleneck, TricksResNet

__all__ = ['SPConvResNet', 'SPConvBottleneck', 'SPConvBasicBlock']


def _fold_shortcut(downsample: Optional[nn.Module]) -> Optional[nn.Module]:
    """`Sequential(conv, norm)` (conv_shortcut) as one conv; anything else unchanged."""
    if isinstance(downsample, nn.Sequential) and len(downsample) == 2 and isinstance(downsample[0], nn.Conv2d):
        return fold_conv_norm(downsample[0], downsample[1])
    return downsample


class SPConvBottleneck(Bottleneck):
    """1x1 -> SPConv (strided, ratio alpha) -> BN -> 1x1 (x4), post-activation, torchvision layout."""

    def make_conv2(
            self,
            chs: int,
            stride: int,
            dilation: int,
            first_dilation: int,
            norm_layer: Type[nn.Module],
            ratio: float = 0.5,
            device=None,
            dtype=None,
    ) -> nn.Module:
        return SPConv2d(
            chs, chs, stride=stride, dilation=first_dilation, ratio=ratio, norm_layer=norm_layer,
            device=device, dtype=dtype)

    @torch.no_grad()
    def reparameterize(self, merge: str = 'auto') -> None:
        """Fold every BN into the conv before it (the block BN after the SPConv into the SPConv); idempotent."""
        if not isinstance(self.conv2, SPConv2d):
            return
        self.conv1, self.bn1 = fold_conv_norm(self.conv1, self.bn1), nn.Identity()
        self.conv2, self.bn2 = self.conv2.fuse(self.bn2, merge=merge), nn.Identity()
        self.conv3, self.bn3 = fold_conv_norm(self.conv3, self.bn3), nn.Identity()
        self.downsample = _fold_shortcut(self.downsample)


class SPConvBasicBlock(BasicBlock):
    """SPConv (strided) -> BN -> act -> SPConv -> BN, post-activation (the authors' fixed BasicBlock)."""

    def make_conv1(
            self,
            in_chs: int,
            out_chs: int,
            stride: int,
            dilation: int,
            first_dilation: int,
            norm_layer: Type[nn.Module],
            ratio: float = 0.5,
            device=None,
            dtype=None,
    ) -> nn.Module:
        return SPConv2d(
            in_chs, out_chs, stride=stride, dilation=first_dilation, ratio=ratio, norm_layer=norm_layer,
            device=device, dtype=dtype)

    def make_conv2(
            self, chs: int, dilation: int, norm_layer: Type[nn.Module], ratio: float = 0.5, device=None, dtype=None,
    ) -> nn.Module:
        return SPConv2d(chs, chs, dilation=dilation, ratio=ratio, norm_layer=norm_layer, device=device, dtype=dtype)

    @torch.no_grad()
    def reparameterize(self, merge: str = 'auto') -> None:
        """Fold the inner and the block BNs into the SPConvs and the shortcut; idempotent."""
        if not isinstance(self.conv1, SPConv2d):
            return
        self.conv1, self.bn1 = self.conv1.fuse(self.bn1, merge=merge), nn.Identity()
        self.conv2, self.bn2 = self.conv2.fuse(self.bn2, merge=merge), nn.Identity()
        self.downsample = _fold_shortcut(self.downsample)


class SPConvResNet(TricksResNet):
    """`TricksResNet` with SPConv blocks, plus `reparameterize()` for inference."""

    @torch.no_grad()
    def reparameterize(self, merge: str = 'auto') -> 'SPConvResNet':
        """Fold every BatchNorm into the conv before it, in place, for inference; outputs stay the same.

        Uses the BN running statistics (call it on a trained model; the result is meant for eval mode). timm's
        `reparameterize_model(model)` gives the same except the stem BN, which only this method folds.
        `merge`: see `SPConv2d.fuse` ('auto' = what measured fastest).
        """
        if not isinstance(self.bn1, nn.Identity):
            self.conv1, self.bn1 = fold_conv_norm(self.conv1, self.bn1), nn.Identity()
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                if hasattr(block, 'reparameterize'):
                    block.reparameterize(merge=merge)
        return reparameterize_model(self, inplace=True)


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Accept the authors' `.pkl` layout and our own.

    The authors trained with apex `network_to_half` (`Sequential(tofp16(), model)`, so keys start with `1.`),
    possibly under DataParallel (`module.`) and inside `{'state_dict': ..., 'epoch': ...}`; fp16 tensors are cast
    to float32. Module names are otherwise ours, so nothing is renamed.
    """
    return filter_checkpoint(state_dict, model, prefixes=('module.', '1.', 'module.'))


def _create_spconv_resnet(
        variant: str,
        pretrained: bool = False,
        ratio: Optional[float] = None,
        spconv_ratio: Optional[float] = None,
        default_ratio: float = 0.5,
        **kwargs,
) -> SPConvResNet:
    if ratio is not None and spconv_ratio is not None and ratio != spconv_ratio:
        raise ValueError(f'ratio={ratio} and spconv_ratio={spconv_ratio} disagree; give one of them')
    alpha = next((r for r in (spconv_ratio, ratio) if r is not None), default_ratio)
    if not 0. < alpha < 1.:
        raise ValueError(f'the SPConv ratio must be in (0, 1), got {alpha}')
    kwargs['block_args'] = dict(kwargs.get('block_args') or {}, ratio=alpha)
    return build_tricks_model(
        SPConvResNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn, **kwargs)


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
def spconv_resnet18(pretrained: bool = False, **kwargs) -> SPConvResNet:
    """SPConv-ResNet-18 (alpha 1/2, both 3x3 convs of each basic block are SPConvs); no released weights."""
    model_args = dict(block=SPConvBasicBlock, layers=(2, 2, 2, 2))
    return _create_spconv_resnet('spconv_resnet18', pretrained, **dict(model_args, **kwargs))


@register_model
def spconv_resnet34(pretrained: bool = False, **kwargs) -> SPConvResNet:
    """SPConv-ResNet-34 (alpha 1/2); no released weights."""
    model_args = dict(block=SPConvBasicBlock, layers=(3, 4, 6, 3))
    return _create_spconv_resnet('spconv_resnet34', pretrained, **dict(model_args, **kwargs))


@register_model
def spconv_resnet50(pretrained: bool = False, **kwargs) -> SPConvResNet:
    """SPConv-ResNet-50, alpha 1/2 (the authors' weights: 76.26 top-1)."""
    model_args = dict(block=SPConvBottleneck, layers=(3, 4, 6, 3))
    return _create_spconv_resnet('spconv_resnet50', pretrained, **dict(model_args, **kwargs))


@register_model
def spconv_resnet50_a4(pretrained: bool = False, **kwargs) -> SPConvResNet:
    """SPConv-ResNet-50, alpha 1/4 (gwc groups still 2; the authors' weights: 75.95 top-1)."""
    model_args = dict(block=SPConvBottleneck, layers=(3, 4, 6, 3))
    return _create_spconv_resnet('spconv_resnet50_a4', pretrained, default_ratio=0.25, **dict(model_args, **kwargs))


@register_model
def spconv_resnet50_a8(pretrained: bool = False, **kwargs) -> SPConvResNet:
    """SPConv-ResNet-50, alpha 1/8 (gwc groups still 2; the authors' weights: 75.40 top-1)."""
    model_args = dict(block=SPConvBottleneck, layers=(3, 4, 6, 3))
    return _create_spconv_resnet('spconv_resnet50_a8', pretrained, default_ratio=0.125, **dict(model_args, **kwargs))


@register_model
def spconv_resnet101(pretrained: bool = False, **kwargs) -> SPConvResNet:
    """SPConv-ResNet-101 (alpha 1/2); no released weights."""
    model_args = dict(block=SPConvBottleneck, layers=(3, 4, 23, 3))
    return _create_spconv_resnet('spconv_resnet101', pretrained, **dict(model_args, **kwargs))


@register_model
def spconv_resnet152(pretrained: bool = False, **kwargs) -> SPConvResNet:
    """SPConv-ResNet-152 (alpha 1/2); no released weights."""
    model_args = dict(block=SPConvBottleneck, layers=(3, 8, 36, 3))
    return _create_spconv_resnet('spconv_resnet152', pretrained, **dict(model_args, **kwargs))
