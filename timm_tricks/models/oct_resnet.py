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

The model is `PluggableResNet` configuration: `OctBottleneck` blocks, one `OctaveStage` per stage. A stage maps a
tensor to a tensor: it enters the two-frequency representation from concat(high, nearest-upsampled low) (the low
map is every second pixel of the upsampled part, exactly) and leaves it the same way, so every tap
(`features_only` with any `feature_cls`, `forward_intermediates`, `feature_info`) is one tensor per level,
reductions 2/4/8/16/32: 256 / 512 / 1024 / 2048 channels for any alpha, the widths of ResNet-50, so necks sized
for ResNet-50 fit unchanged and no channel of the representation is dropped.

Plug-ins: attention (`block_args=dict(attn_layer=...)`) is applied to each frequency of the block's output
separately, before the add (`se` on the high map, `se_l` on the low map, each its own module); DropBlock to each
frequency after the 3x3. Refused with a clear error: `aa_layer` (the octave conv already subsamples by 2x2
average pooling) and `mid_act_layer` (the activations sit inside the octave conv-norm-act units).
"""
from functools import partial
from typing import Any, Dict, Optional, Tuple, Type

import torch
from timm.models import generate_default_cfgs, register_model
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..layers.octconv import OctaveConvNormAct, OctaveDropPath, merge_octave
from ..weights import released_cfg
from ._builder import build_tricks_model, imagenet_cfg, merge_model_args
from ._checkpoint import filter_checkpoint
from ._resnet import BlockLayers, PluggableResNet

__all__ = ['OctBottleneck', 'OctSequential', 'OctaveStage', 'oct_shortcut']

Tensor = torch.Tensor


class OctBottleneck(nn.Module):
    """1x1 -> 3x3 (stride, as avg-pool + conv) -> 1x1 (x4), every conv an octave conv; post-activation.

    `alpha_in` is the input's low fraction (default `alpha`), `alpha` the fraction inside the block and of its output.
    """
    expansion = 4

    def __init__(self, in_chs: int, planes: int, stride: int = 1, dilation: int = 1,
                 first_dilation: Optional[int] = None, downsample: Optional[nn.Module] = None,
                 layers: BlockLayers = BlockLayers(), alpha_in: Optional[float] = None, alpha: float = 0.5, device=None,
                 dtype=None):
        super().__init__()
        if layers.aa_layer is not None:
            raise ValueError('oct_resnet: aa_layer is not supported: the octave conv subsamples by 2x2 average pooling')
        if layers.mid_act_layer is not None:
            raise ValueError('oct_resnet: mid_act_layer is not supported: the activations sit inside the octave '
                             'conv-norm-act units (one per frequency); use act_layer')
        dd = dict(device=device, dtype=dtype)
        alpha_in = alpha if alpha_in is None else alpha_in
        out_chs = planes * self.expansion
        kw = dict(norm_layer=layers.norm_layer, act_layer=layers.act_layer, **dd)
        self.conv1 = OctaveConvNormAct(in_chs, planes, 1, alpha_in, alpha, **kw)
        self.conv2 = OctaveConvNormAct(
            planes, planes, 3, alpha, alpha, stride=stride, dilation=first_dilation or dilation, **kw)
        self.drop_block = layers.dropblock()
        self.conv3 = OctaveConvNormAct(planes, out_chs, 1, alpha, alpha, apply_act=False, **kw)
        out_h, out_l = self.conv3.conv.out_h, self.conv3.conv.out_l
        self.se = layers.attn(out_h, **dd)
        self.se_l = layers.attn(out_l, **dd) if out_l else None
        self.downsample = downsample
        # one keep/drop draw per sample for both frequencies
        self.drop_path = OctaveDropPath(layers.drop_path_rate) if layers.drop_path_rate > 0. else None
        self.act_h = layers.act()
        self.act_l = layers.act() if out_l else None

    def zero_init_last(self) -> None:
        for bn in (self.conv3.bn_h, self.conv3.bn_l):
            if bn is not None and getattr(bn, 'weight', None) is not None:
                nn.init.zeros_(bn.weight)

    def forward(self, x_h: Tensor, x_l: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor]]:
        y_h, y_l = self.conv1(x_h, x_l)
        y_h, y_l = self.conv2(y_h, y_l)
        y_h = self.drop_block(y_h)
        if y_l is not None:
            y_l = self.drop_block(y_l)
        y_h, y_l = self.conv3(y_h, y_l)
        if self.se is not None:
            y_h = self.se(y_h)
        if self.se_l is not None and y_l is not None:
            y_l = self.se_l(y_l)
        if self.drop_path is not None:
            y_h, y_l = self.drop_path(y_h, y_l)
        if self.downsample is not None:
            x_h, x_l = self.downsample(x_h, x_l)
        y_h = self.act_h(y_h + x_h)
        out_l: Optional[Tensor] = None
        if self.act_l is not None:
            assert y_l is not None and x_l is not None
            out_l = self.act_l(y_l + x_l)
        return y_h, out_l


class OctSequential(nn.Sequential):
    """Modules that map a (high, low) pair to a pair, in order: the projection shortcut (`downsample.0.…`)."""

    def forward(self, x_h: Tensor, x_l: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor]]:
        for module in self:
            x_h, x_l = module(x_h, x_l)
        return x_h, x_l


class OctaveStage(nn.Sequential):
    """A stage of octave bottlenecks that takes and returns one tensor, concat(high, nearest-upsampled low).

    Entering recovers the low map exactly (every second row and column of the upsampled part); leaving is
    `merge_octave`. Keys stay `layerN.B.…`. Gradient checkpointing is per block (`grad_checkpointing`).
    """

    def __init__(self, *blocks: OctBottleneck):
        super().__init__(*blocks)
        first = blocks[0].conv1.conv
        self.in_high, self.in_low = first.in_h, first.in_l
        self.grad_checkpointing = False

    def forward(self, x: Tensor) -> Tensor:
        x_h = x[:, :self.in_high]
        x_l: Optional[Tensor] = None
        if self.in_low > 0:
            x_l = x[:, self.in_high:, ::2, ::2].contiguous()
        for block in self:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x_h, x_l = checkpoint(block, x_h, x_l, use_reentrant=False)
            else:
                x_h, x_l = block(x_h, x_l)
        return merge_octave(x_h, x_l)


def oct_shortcut(in_chs: int, out_chs: int, stride: int, norm_layer: Type[nn.Module], alpha_in: float, alpha_out: float,
                 device=None, dtype=None) -> OctSequential:
    """Projection shortcut: strided 1x1 octave conv + a norm per frequency (`downsample.0.conv.*`, `.bn_h`, `.bn_l`)."""
    return OctSequential(OctaveConvNormAct(
        in_chs, out_chs, 1, alpha_in, alpha_out, stride=stride, norm_layer=norm_layer, apply_act=False,
        device=device, dtype=dtype))


def oct_resnet_args(layers, oct_alpha: float = 0.5) -> Dict[str, Any]:
    """Stages 1-3 at low fraction `oct_alpha`, stage 4 single-frequency; the stem output enters at alpha 0."""
    if not 0. < oct_alpha < 1.:
        raise ValueError(f'oct_alpha must be in (0, 1), got {oct_alpha}')
    alphas = (oct_alpha, oct_alpha, oct_alpha, 0.)
    alphas_in = (0., *alphas[:-1])
    return dict(
        block=OctBottleneck,
        layers=layers,
        stage_layer=OctaveStage,
        stage_args=[dict(alpha=a, first_block=dict(alpha_in=a_in)) for a, a_in in zip(alphas, alphas_in)],
        shortcut=[partial(oct_shortcut, alpha_in=a_in, alpha_out=a) for a, a_in in zip(alphas, alphas_in)],
    )


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, Tensor]:
    """The reference's bare state dicts load as they are (same module names); training wrappers are unwrapped."""
    return filter_checkpoint(state_dict, model)


def _create_oct_resnet(variant: str, pretrained: bool = False, layers=(3, 4, 6, 3), oct_alpha: float = 0.5,
                       **kwargs) -> PluggableResNet:
    return build_tricks_model(
        PluggableResNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
        **merge_model_args(oct_resnet_args(layers, oct_alpha), kwargs))


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
def oct_resnet26(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Oct-ResNet-26 (alpha 0.5; no released weights)."""
    return _create_oct_resnet('oct_resnet26', pretrained, **dict(dict(layers=(2, 2, 2, 2)), **kwargs))


@register_model
def oct_resnet50(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Oct-ResNet-50 (alpha 0.5)."""
    return _create_oct_resnet('oct_resnet50', pretrained, **dict(dict(layers=(3, 4, 6, 3)), **kwargs))


@register_model
def oct_resnet101(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Oct-ResNet-101 (alpha 0.5)."""
    return _create_oct_resnet('oct_resnet101', pretrained, **dict(dict(layers=(3, 4, 23, 3)), **kwargs))


@register_model
def oct_resnet152(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Oct-ResNet-152 (alpha 0.5)."""
    return _create_oct_resnet('oct_resnet152', pretrained, **dict(dict(layers=(3, 8, 36, 3)), **kwargs))


@register_model
def oct_resnet200(pretrained: bool = False, **kwargs) -> PluggableResNet:
    """Oct-ResNet-200 (alpha 0.5; no released weights)."""
    return _create_oct_resnet('oct_resnet200', pretrained, **dict(dict(layers=(3, 24, 36, 3)), **kwargs))
