"""OctResNet (Chen et al., ICCV 2019, "Drop an Octave: Reducing Spatial Redundancy in CNNs with Octave Convolution").

Topology of the PyTorch reference (d-li14/octconv.pytorch, the only source of PyTorch weights): a vanilla stem and
head; post-activation bottlenecks (v1.5, stride on `conv2`) whose three convs and projection shortcut are all octave
convs with a norm per frequency; layer1 block 0 takes the single-frequency stem output (alpha_in = 0); layer4
block 0 merges the low frequency back into the high one (alpha_out = 0) and layer4 is single-frequency after that
(plain convs, still wrapped, keys `conv.conv_h2h`, `bn_h`). Stages pass (high, low) pairs; the low map has half the
high map's resolution (rounded up). Module names equal the reference's, so its bare state dicts load unchanged.

Beyond the reference (see `timm_tricks.layers.octconv` for the layer): every input size >= 32 works, the model
scripts, `oct_alpha` is a keyword (the reference hard-codes 0.5), `norm_layer` reaches every norm (the reference's
shortcut ignores it), `zero_init_last` zeroes `conv3.bn_h` and `conv3.bn_l` (the reference's
`zero_init_residual=True` crashes), and `output_stride` 16 / 8 de-strides the last stage(s): a de-strided stage
keeps its octave structure at stride 1 with dilation d on every 3x3 path (the low map stays half the high map,
l->h still upsamples by 2), the first block's 3x3 using the previous dilation, as timm's and torchvision's ResNets.

Features (`features_only`, `forward_intermediates`, `feature_info`): one tensor per level, reductions 2/4/8/16/32.
A stage that ends in a (high, low) pair (layers 1-3) is reported as concat(high, nearest-upsampled low) -> 256 /
512 / 1024 channels for any alpha, the widths of ResNet-50, so necks sized for ResNet-50 fit unchanged and no
channel of the representation is dropped. Taps use `forward_intermediates` (`feature_cls='getter'`): stage
modules return pairs, so module-hook extraction cannot work and asking for it raises.
"""
from functools import partial
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from timm.layers import create_act_layer, get_act_layer, get_norm_layer
from timm.models import generate_default_cfgs, register_model
from timm.models._features import FeatureGetterNet, feature_take_indices

from ..layers.octconv import OctaveConvNormAct, OctaveDropPath, merge_octave
from ..weights import released_cfg
from ._builder import build_tricks_model, imagenet_cfg
from ._checkpoint import filter_checkpoint
from ._resnet_base import STAGE_NAMES, LayerType, ResNetContractMixin, make_stage_plan, max_pool_stem

__all__ = ['OctResNet', 'OctBottleneck', 'OctSequential']

Tensor = torch.Tensor


class OctBottleneck(nn.Module):
    """1x1 -> 3x3 (stride, as avg-pool + conv) -> 1x1 (x4), every conv an octave conv; post-activation.

    `alpha_in` is the input's low fraction, `alpha` the fraction inside the block and of its output.
    """
    expansion = 4

    def __init__(
            self,
            in_chs: int,
            planes: int,
            stride: int = 1,
            dilation: int = 1,
            first_dilation: Optional[int] = None,
            alpha_in: float = 0.5,
            alpha: float = 0.5,
            downsample: Optional[nn.Module] = None,
            act_layer: Type[nn.Module] = nn.ReLU,
            norm_layer: Type[nn.Module] = nn.BatchNorm2d,
            drop_path: float = 0.,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        first_dilation = first_dilation or dilation
        out_chs = planes * self.expansion
        kw = dict(norm_layer=norm_layer, act_layer=act_layer, **dd)
        self.conv1 = OctaveConvNormAct(in_chs, planes, 1, alpha_in, alpha, **kw)
        self.conv2 = OctaveConvNormAct(planes, planes, 3, alpha, alpha, stride=stride, dilation=first_dilation, **kw)
        self.conv3 = OctaveConvNormAct(planes, out_chs, 1, alpha, alpha, apply_act=False, **kw)
        self.downsample = downsample
        self.drop_path = OctaveDropPath(drop_path) if drop_path > 0. else None
        self.act_h = create_act_layer(act_layer, inplace=True)
        self.act_l = create_act_layer(act_layer, inplace=True) if self.conv3.bn_l is not None else None

    def zero_init_last(self) -> None:
        for bn in (self.conv3.bn_h, self.conv3.bn_l):
            if bn is not None and getattr(bn, 'weight', None) is not None:
                nn.init.zeros_(bn.weight)

    def forward(self, x_h: Tensor, x_l: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor]]:
        if self.downsample is not None:
            sc_h, sc_l = self.downsample(x_h, x_l)
        else:
            sc_h, sc_l = x_h, x_l
        y_h, y_l = self.conv1(x_h, x_l)
        y_h, y_l = self.conv2(y_h, y_l)
        y_h, y_l = self.conv3(y_h, y_l)
        if self.drop_path is not None:
            y_h, y_l = self.drop_path(y_h, y_l)
        y_h = self.act_h(y_h + sc_h)
        out_l: Optional[Tensor] = None
        if self.act_l is not None:
            assert y_l is not None and sc_l is not None
            out_l = self.act_l(y_l + sc_l)
        return y_h, out_l


class OctSequential(nn.Sequential):
    """A sequence of modules that map a (high, low) pair to a pair: the stages and the projection shortcuts.

    A subclass of `nn.Sequential` so that state-dict keys stay `layer1.0.…` / `downsample.0.…` as in the reference.
    """

    def __init__(self, *args: nn.Module):
        super().__init__(*args)
        self.grad_checkpointing = False

    def forward(self, x_h: Tensor, x_l: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor]]:
        for module in self:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x_h, x_l = checkpoint(module, x_h, x_l, use_reentrant=False)
            else:
                x_h, x_l = module(x_h, x_l)
        return x_h, x_l


class OctResNet(ResNetContractMixin, nn.Module):
    """ResNet with octave convolutions; stages 1-3 at low fraction `oct_alpha`, stage 4 single-frequency."""

    def __init__(
            self,
            layers: Sequence[int],
            num_classes: int = 1000,
            in_chans: int = 3,
            global_pool: str = 'avg',
            output_stride: int = 32,
            drop_rate: float = 0.,
            drop_path_rate: float = 0.,
            act_layer: LayerType = nn.ReLU,
            norm_layer: LayerType = nn.BatchNorm2d,
            zero_init_last: bool = True,
            oct_alpha: float = 0.5,
            stem_width: int = 64,
            stage_widths: Sequence[int] = (64, 128, 256, 512),
            device=None,
            dtype=None,
    ):
        """
        Args:
            layers: number of bottlenecks per stage.
            oct_alpha: low-frequency fraction of the channels in stages 1-3, in (0, 1); 0.5 for the released
                weights, 0.125 / 0.25 / 0.5 / 0.75 in the paper's ablation. Stage 4 is always single-frequency.
            stage_widths: `planes` per stage; a stage outputs 4x `planes` channels (high + low together).
        """
        super().__init__()
        if not 0. < oct_alpha < 1.:
            raise ValueError(f'oct_alpha must be in (0, 1), got {oct_alpha}')
        if len(layers) != len(STAGE_NAMES) or len(stage_widths) != len(STAGE_NAMES):
            raise ValueError('layers and stage_widths need one entry per stage (4)')
        dd = dict(device=device, dtype=dtype)
        act_layer = get_act_layer(act_layer)
        norm_layer = get_norm_layer(norm_layer)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.oct_alpha = oct_alpha
        self.grad_checkpointing = False

        self._init_stem(in_chans, stem_width, act_layer, norm_layer, max_pool_stem, **dd)
        self.feature_info = [dict(num_chs=stem_width, reduction=2, module='act1')]

        stage_strides = (1, 2, 2, 2)
        stage_alphas = (oct_alpha, oct_alpha, oct_alpha, 0.)  # low fraction of each stage's output
        plan = make_stage_plan(stage_strides, output_stride, stem_stride=4)
        num_blocks = sum(layers)
        block_idx = 0
        in_chs, alpha_in, prev_dilation = stem_width, 0., 1
        for name, depth, planes, stage_stride, alpha, (stride, dilation, reduction) in zip(
                STAGE_NAMES, layers, stage_widths, stage_strides, stage_alphas, plan):
            out_chs = planes * OctBottleneck.expansion
            blocks = []
            for i in range(depth):
                first = i == 0
                downsample = None
                if first and (stage_stride != 1 or in_chs != out_chs):
                    downsample = OctSequential(OctaveConvNormAct(
                        in_chs, out_chs, 1, alpha_in, alpha, stride=stride, norm_layer=norm_layer, apply_act=False,
                        **dd))
                blocks.append(OctBottleneck(
                    in_chs,
                    planes,
                    stride=stride if first else 1,
                    dilation=dilation,
                    first_dilation=prev_dilation if first else dilation,
                    alpha_in=alpha_in,
                    alpha=alpha,
                    downsample=downsample,
                    act_layer=act_layer,
                    norm_layer=norm_layer,
                    drop_path=drop_path_rate * block_idx / max(num_blocks - 1, 1),
                    **dd,
                ))
                in_chs, alpha_in = out_chs, alpha
                block_idx += 1
            self.add_module(name, OctSequential(*blocks))
            self.feature_info.append(dict(num_chs=out_chs, reduction=reduction, module=name))
            prev_dilation = dilation

        self._init_head(in_chs, num_classes, global_pool, **dd)
        self.init_weights(zero_init_last=zero_init_last)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        for name in STAGE_NAMES:
            getattr(self, name).grad_checkpointing = enable

    def _empty_stage(self) -> nn.Module:
        stage = OctSequential()
        stage.grad_checkpointing = self.grad_checkpointing
        return stage

    def forward_intermediates(
            self,
            x: Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[Tensor], Tuple[Tensor, List[Tensor]]]:
        """Features of the stem (index 0) and of each stage (1-4), and optionally the final features.

        A stage ending in a (high, low) pair gives concat(high, nearest-upsampled low).
        `indices`: None = all, int n = the last n, list = those indices (negative from the end).
        """
        if output_fmt != 'NCHW':
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        x = self.forward_stem(x)
        if 0 in take_indices:
            intermediates.append(x)
        x_h, x_l = self.maxpool(x), None
        stages = [self.layer1, self.layer2, self.layer3, self.layer4]
        if stop_early:
            stages = stages[:max_index]
        for feat_idx, stage in enumerate(stages, start=1):
            x_h, x_l = stage(x_h, x_l)
            if feat_idx in take_indices:
                intermediates.append(merge_octave(x_h, x_l))
        if intermediates_only:
            return intermediates
        return merge_octave(x_h, x_l), intermediates

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.forward_stem(x))
        x_h, x_l = self.layer1(x, None)
        x_h, x_l = self.layer2(x_h, x_l)
        x_h, x_l = self.layer3(x_h, x_l)
        x_h, x_l = self.layer4(x_h, x_l)
        # x_l is None unless layer4 was pruned
        return merge_octave(x_h, x_l)


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, Tensor]:
    """The reference's bare state dicts load as they are (same module names); training wrappers are unwrapped."""
    return filter_checkpoint(state_dict, model, prefixes=('module.',))


def _create_oct_resnet(variant: str, pretrained: bool = False, **kwargs) -> OctResNet:
    if 'alpha' in kwargs:  # the paper's name for it; `oct_alpha` is the model's own keyword
        if 'oct_alpha' in kwargs and kwargs['oct_alpha'] != kwargs['alpha']:
            raise ValueError(f"alpha={kwargs['alpha']} and oct_alpha={kwargs['oct_alpha']} disagree; give one")
        kwargs['oct_alpha'] = kwargs.pop('alpha')
    feature_cls = kwargs.get('feature_cls') or 'getter'
    if kwargs.get('features_only') and feature_cls not in ('getter', FeatureGetterNet):
        raise ValueError(
            f"{variant}: feature_cls={feature_cls!r} is not supported: OctResNet stages return (high, low) pairs, "
            "so features come from forward_intermediates (feature_cls='getter', the default).")
    return build_tricks_model(
        OctResNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(feature_cls='getter'), **kwargs)


_cfg = partial(
    imagenet_cfg,
    origin_url='https://github.com/d-li14/octconv.pytorch',
    paper_ids='arXiv:1904.05049',
    paper_name='Drop an Octave: Reducing Spatial Redundancy in Convolutional Neural Networks with '
               'Octave Convolution',
)


default_cfgs = generate_default_cfgs({
    'oct_resnet26.untrained': _cfg(license='apache-2.0'),
    'oct_resnet200.untrained': _cfg(license='apache-2.0'),
    **{name: released_cfg(name, **_cfg()) for name in (
        'oct_resnet50.in1k', 'oct_resnet101.in1k', 'oct_resnet152.in1k',
    )},
})


@register_model
def oct_resnet26(pretrained: bool = False, **kwargs) -> OctResNet:
    """Oct-ResNet-26 (alpha 0.5; no released weights)."""
    model_args = dict(layers=(2, 2, 2, 2))
    return _create_oct_resnet('oct_resnet26', pretrained, **dict(model_args, **kwargs))


@register_model
def oct_resnet50(pretrained: bool = False, **kwargs) -> OctResNet:
    """Oct-ResNet-50 (alpha 0.5)."""
    model_args = dict(layers=(3, 4, 6, 3))
    return _create_oct_resnet('oct_resnet50', pretrained, **dict(model_args, **kwargs))


@register_model
def oct_resnet101(pretrained: bool = False, **kwargs) -> OctResNet:
    """Oct-ResNet-101 (alpha 0.5)."""
    model_args = dict(layers=(3, 4, 23, 3))
    return _create_oct_resnet('oct_resnet101', pretrained, **dict(model_args, **kwargs))


@register_model
def oct_resnet152(pretrained: bool = False, **kwargs) -> OctResNet:
    """Oct-ResNet-152 (alpha 0.5)."""
    model_args = dict(layers=(3, 8, 36, 3))
    return _create_oct_resnet('oct_resnet152', pretrained, **dict(model_args, **kwargs))


@register_model
def oct_resnet200(pretrained: bool = False, **kwargs) -> OctResNet:
    """Oct-ResNet-200 (alpha 0.5; no released weights)."""
    model_args = dict(layers=(3, 24, 36, 3))
    return _create_oct_resnet('oct_resnet200', pretrained, **dict(model_args, **kwargs))
