"""CSP-DenseNet and CSPPeleeNet (Wang et al., "CSPNet: A New Backbone that can Enhance Learning Capability of
CNN", CVPRW 2020, Sec. 3.1, Fig. 2b/3).

The authors never released code, cfgs or weights for the DenseNet/PeleeNet variants, so every model here is a
reconstruction from the paper text (see docs/csp_densenet.md), registered with an `.untrained` tag only.

A stage splits its input on channels (`part_ratio` γ, the first round(γ·C) channels go through the dense block),
runs the dense block on that part, applies a partial transition (`transition_b`, 1x1), concatenates
cat(skip, xT) and fuses with a final 1x1 transition ("fusion first + last"). `fusion='first'` drops the partial
transition, `fusion='last'` drops the final one (the next stage is then entered through a bare pool).

Two styles share one model class:
- `style='densenet'`: DenseNet-BC parts, pre-activation (BN-act-conv): 7x7 stem + 3x3 max-pool, dense layers
  BN-act-1x1 (bn_size·k) - BN-act-3x3 (k), final BN + act before the head.
- `style='peleenet'`: PeleeNet parts, post-activation (conv-BN-act): stem block (3x3 s2 stem, then a 2x2
  max-pool branch and a 1x1 -> 3x3 s2 branch, concatenated and fused by a 1x1), two-way dense layers.

Top-level modules run in order (`stem`, `stem_down`, `layer1`, `transition1`, ..., `layer4`, `transition4`,
`final_norm`, `global_pool`, `fc`), so timm's FeatureListNet can tap them: feature i (1-3) is the fused tensor
cat(skip, xT) of stage i, before the (pooled) final transition; feature 4 is `final_norm`'s output.

Beyond a plain reconstruction: `output_stride` 16/8 drops the pooling of the transitions entering the late
stages and dilates their 3x3 convolutions; every input size >= 32 works (the PeleeNet stem's max-pool branch
uses ceil_mode, which is identical to the original at even stem sizes, where the original runs, and matches the
strided conv branch at odd ones, where the original fails). The transitions' 2x2 average pools use ceil_mode
too: identical at even sizes, and at odd sizes the last row is kept, so every feature map is ceil(H / reduction).
"""
from functools import partial
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
from timm.layers import DropPath, LayerType, create_act_layer, get_act_layer, get_norm_layer
from timm.models import generate_default_cfgs, register_model, reparameterize_model
from timm.models._features import feature_take_indices
from timm.models._manipulate import MATCH_PREV_GROUP
from torch import nn

from ..layers import CrossStagePartial, fold_norm, partial_split
from ._builder import build_tricks_model, imagenet_cfg
from ._checkpoint import filter_checkpoint
from ._contract import ClassifierHeadMixin, FeatureTapsMixin, make_stage_plan

__all__ = ['CspDenseNet', 'DenseLayer', 'TwoWayDenseLayer', 'PeleeStemBlock', 'Transition', 'ConvNormAct']

STYLES = ('densenet', 'peleenet')
FUSIONS = ('first_last', 'first', 'last')
NUM_STAGES = 4


class ConvNormAct(nn.Module):
    """conv (no bias) -> norm -> act, with plain norm and activation modules (post-activation)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, dilation: int = 1,
                 act_layer: Type[nn.Module] = nn.ReLU, norm_layer: Type[nn.Module] = nn.BatchNorm2d, device=None,
                 dtype=None):
        super().__init__()
        padding = dilation * (kernel_size // 2)
        self.conv = nn.Conv2d(
            in_chs, out_chs, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False,
            device=device, dtype=dtype)
        self.norm = norm_layer(out_chs, device=device, dtype=dtype)
        self.act = create_act_layer(act_layer, inplace=True)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the norm into the conv, for inference (timm's `reparameterize_model` calls this)."""
        self.conv, self.norm = fold_norm(self.conv, self.norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class NormAct(nn.Module):
    """norm -> act (the pre-activation of DenseNet; also its final norm)."""

    def __init__(self, chs: int, act_layer: Type[nn.Module], norm_layer: Type[nn.Module], device=None, dtype=None):
        super().__init__()
        self.norm = norm_layer(chs, device=device, dtype=dtype)
        self.act = create_act_layer(act_layer, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(x))


class DenseLayer(nn.Module):
    """DenseNet-BC layer: BN-act-1x1 (bn_size·growth) - BN-act-3x3 (growth); returns cat(x, new features).

    `drop_path` (stochastic depth of dense nets) drops a sample's new features as a whole.
    """

    def __init__(self, in_chs: int, growth_rate: int, bn_size: int = 4, dilation: int = 1,
                 act_layer: Type[nn.Module] = nn.ReLU, norm_layer: Type[nn.Module] = nn.BatchNorm2d,
                 drop_path: Optional[nn.Module] = None, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        mid_chs = bn_size * growth_rate
        self.norm1 = norm_layer(in_chs, **dd)
        self.act1 = create_act_layer(act_layer, inplace=True)
        self.conv1 = nn.Conv2d(in_chs, mid_chs, 1, bias=False, **dd)
        self.norm2 = norm_layer(mid_chs, **dd)
        self.act2 = create_act_layer(act_layer, inplace=True)
        self.conv2 = nn.Conv2d(mid_chs, growth_rate, 3, padding=dilation, dilation=dilation, bias=False, **dd)
        self.drop_path = drop_path if drop_path is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = self.conv1(self.act1(self.norm1(x)))
        new = self.conv2(self.act2(self.norm2(new)))
        return torch.cat([x, self.drop_path(new)], dim=1)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold `norm2` into `conv1`, which it directly follows; `norm1` follows the concatenation and stays."""
        self.conv1, self.norm2 = fold_norm(self.conv1, self.norm2)


def pelee_inter_chs(in_chs: int, half_growth: int, bottleneck_width: int) -> int:
    """PeleeNet's bottleneck width rule (official peleenet.py): int(k/2 · bw / 4) · 4, capped when > in/2."""
    inter_chs = int(half_growth * bottleneck_width / 4) * 4
    if inter_chs > in_chs / 2:
        inter_chs = int(in_chs / 8) * 4
    return inter_chs


class TwoWayDenseLayer(nn.Module):
    """PeleeNet layer: branch 1 = 1x1 -> 3x3, branch 2 = 1x1 -> 3x3 -> 3x3 (k/2 each); returns cat(x, b1, b2).

    `drop_path` drops each branch of a sample independently (drop-path in its original, per-path sense).
    """

    def __init__(self, in_chs: int, growth_rate: int, bottleneck_width: int = 4, dilation: int = 1,
                 act_layer: Type[nn.Module] = nn.ReLU, norm_layer: Type[nn.Module] = nn.BatchNorm2d,
                 drop_path: Optional[nn.Module] = None, device=None, dtype=None):
        super().__init__()
        if growth_rate % 2:
            raise ValueError(f'the two-way dense layer needs an even growth rate, got {growth_rate}')
        dd = dict(device=device, dtype=dtype)
        ca = dict(act_layer=act_layer, norm_layer=norm_layer, **dd)
        half = growth_rate // 2
        inter_chs = pelee_inter_chs(in_chs, half, bottleneck_width)
        self.branch1a = ConvNormAct(in_chs, inter_chs, 1, **ca)
        self.branch1b = ConvNormAct(inter_chs, half, 3, dilation=dilation, **ca)
        self.branch2a = ConvNormAct(in_chs, inter_chs, 1, **ca)
        self.branch2b = ConvNormAct(inter_chs, half, 3, dilation=dilation, **ca)
        self.branch2c = ConvNormAct(half, half, 3, dilation=dilation, **ca)
        self.drop_path = drop_path if drop_path is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1b(self.branch1a(x))
        b2 = self.branch2c(self.branch2b(self.branch2a(x)))
        return torch.cat([x, self.drop_path(b1), self.drop_path(b2)], dim=1)


class PeleeStemBlock(nn.Module):
    """The PeleeNet stem's downsampling part, after `stem1`: cat(max-pool 2x2, 1x1 -> 3x3 s2) -> 1x1.

    The max-pool uses ceil_mode: at even input sizes this is the original floor pool (where the original runs);
    at odd sizes it yields ceil(n/2) rows like the strided 3x3 conv branch, where the original fails to concat.
    """

    def __init__(self, chs: int, act_layer: Type[nn.Module] = nn.ReLU, norm_layer: Type[nn.Module] = nn.BatchNorm2d,
                 device=None, dtype=None):
        super().__init__()
        ca = dict(act_layer=act_layer, norm_layer=norm_layer, device=device, dtype=dtype)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
        self.stem2a = ConvNormAct(chs, chs // 2, 1, **ca)
        self.stem2b = ConvNormAct(chs // 2, chs, 3, stride=2, **ca)
        self.stem3 = ConvNormAct(2 * chs, chs, 1, **ca)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem3(torch.cat([self.pool(x), self.stem2b(self.stem2a(x))], dim=1))


class Transition(nn.Module):
    """1x1 transition, optionally with a 2x2 average pool before (`pool_first`) or after the conv.

    Pre-activation (DenseNet): norm-act-[pool]-conv-[pool]. Post-activation (PeleeNet): [pool]-conv-norm-act-[pool].
    With `out_chs=None` it is the bare pool (entering a stage after a "fusion last" stage).
    """

    def __init__(self, in_chs: int, out_chs: Optional[int], pool: bool = True, pool_first: bool = True,
                 pre_act: bool = True, act_layer: Type[nn.Module] = nn.ReLU,
                 norm_layer: Type[nn.Module] = nn.BatchNorm2d, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.pre_act = pre_act
        self.pool_first = pool_first
        # ceil_mode: the original floor pool at even sizes; at odd sizes the last row/column is averaged alone
        # instead of dropped, so every feature map is ceil(H / reduction) like the strided convs'
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2, ceil_mode=True) if pool else None
        if out_chs is None:
            self.norm, self.act, self.conv = None, None, None
        else:
            self.norm = norm_layer(in_chs if pre_act else out_chs, **dd)
            self.act = create_act_layer(act_layer, inplace=True)
            self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=False, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_act:
            if self.norm is not None and self.act is not None:
                x = self.act(self.norm(x))
        if self.pool_first:
            if self.pool is not None:
                x = self.pool(x)
        if self.conv is not None:
            x = self.conv(x)
        if not self.pre_act:
            if self.norm is not None and self.act is not None:
                x = self.act(self.norm(x))
        if not self.pool_first:
            if self.pool is not None:
                x = self.pool(x)
        return x

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Post-activation: fold the norm into the conv before it (the pool never sits between them)."""
        if not self.pre_act and self.conv is not None and self.norm is not None:
            self.conv, self.norm = fold_norm(self.conv, self.norm)


class CspDenseNet(FeatureTapsMixin, ClassifierHeadMixin, nn.Module):
    """Cross Stage Partial DenseNet / PeleeNet (see the module docstring)."""

    def __init__(self, block_config: Sequence[int] = (6, 12, 24, 16), style: str = 'densenet', growth_rate: int = 32,
                 bn_size: int = 4, bottleneck_widths: Sequence[int] = (1, 2, 4, 4), stem_width: int = 64,
                 compression: float = 0.5, part_ratio: float = 0.5, trans_b_ratio: float = 0.5,
                 fusion: str = 'first_last', pool_first: bool = True, num_classes: int = 1000, in_chans: int = 3,
                 global_pool: str = 'avg', output_stride: int = 32, drop_rate: float = 0., drop_path_rate: float = 0.,
                 act_layer: LayerType = nn.ReLU, norm_layer: LayerType = nn.BatchNorm2d, zero_init_last: bool = True,
                 device=None, dtype=None):
        """
        Args:
            block_config: dense layers per stage (4 stages).
            style: 'densenet' (DenseNet-BC parts, pre-activation) or 'peleenet' (PeleeNet stem block and two-way
                dense layers, post-activation, no final norm).
            growth_rate: channels each dense layer adds (k).
            bn_size: DenseNet bottleneck multiplier (1x1 conv to bn_size·k); densenet style only.
            bottleneck_widths: PeleeNet bottleneck widths per stage; peleenet style only.
            stem_width: stem output channels.
            compression: θ, the plain network's transition compression; a stage outputs
                int(θ · (stage input + layers · k)) channels, the last stage (in + layers · k) uncompressed.
            part_ratio: γ, fraction of a stage's input channels that goes through its dense block (the first ones).
            trans_b_ratio: width of the partial transition relative to the dense block output ("first_last" only).
            fusion: 'first_last' (paper's CSPDenseNet, Fig. 3b), 'first' (Fig. 3c) or 'last' (Fig. 3d).
            pool_first: 2x2 average pool before (True) or after (False) the final transition's 1x1 conv.
            output_stride: 32, 16 or 8 (the late stages drop their entry pool and dilate their 3x3 convs).
            drop_path_rate: stochastic depth of the dense layers' new features, linear over all dense layers.
            zero_init_last: accepted for interface compatibility; dense layers have no residual branch to zero.
        """
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        if style not in STYLES:
            raise ValueError(f'style must be one of {STYLES}, got {style!r}')
        if fusion not in FUSIONS:
            raise ValueError(f'fusion must be one of {FUSIONS}, got {fusion!r}')
        if len(block_config) != NUM_STAGES:
            raise ValueError(f'block_config needs one entry per stage ({NUM_STAGES}), got {tuple(block_config)}')
        if style == 'peleenet' and len(bottleneck_widths) != NUM_STAGES:
            raise ValueError(f'bottleneck_widths needs one entry per stage ({NUM_STAGES})')
        if not 0. < trans_b_ratio <= 1.:
            raise ValueError(f'trans_b_ratio must be in (0, 1], got {trans_b_ratio}')
        act_layer = get_act_layer(act_layer)
        norm_layer = get_norm_layer(norm_layer)
        ca = dict(act_layer=act_layer, norm_layer=norm_layer, **dd)
        pre_act = style == 'densenet'
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.grad_checkpointing = False

        if pre_act:
            self.stem = ConvNormAct(in_chans, stem_width, 7, stride=2, **ca)
            self.stem_down = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.stem = ConvNormAct(in_chans, stem_width, 3, stride=2, **ca)
            self.stem_down = PeleeStemBlock(stem_width, **ca)
        self.feature_info = [dict(num_chs=stem_width, reduction=2, module='stem')]

        plan = make_stage_plan((1, 2, 2, 2), output_stride, stem_stride=4)
        num_layers = sum(block_config)
        layer_idx = 0
        in_chs = stem_width
        for i, depth in enumerate(block_config):
            _, dilation, reduction = plan[i]
            last = i == NUM_STAGES - 1
            dense_chs, skip_chs = partial_split(in_chs, part_ratio)
            layers = []
            for j in range(depth):
                dpr = drop_path_rate * layer_idx / max(num_layers - 1, 1)
                layer_args = dict(dilation=dilation, drop_path=DropPath(dpr) if dpr > 0. else None, **ca)
                layer_in = dense_chs + j * growth_rate
                if pre_act:
                    layers.append(DenseLayer(layer_in, growth_rate, bn_size=bn_size, **layer_args))
                else:
                    layers.append(TwoWayDenseLayer(layer_in, growth_rate, bottleneck_widths[i], **layer_args))
                layer_idx += 1
            dense_out = dense_chs + depth * growth_rate
            plain_out = in_chs + depth * growth_rate
            out_chs = plain_out if last else int(plain_out * compression)

            if fusion == 'first':
                trans_b = None
                fused_chs = skip_chs + dense_out
            else:
                trans_b_chs = int(round(dense_out * trans_b_ratio)) if fusion == 'first_last' else out_chs - skip_chs
                if trans_b_chs < 1:
                    raise ValueError(f'stage {i + 1}: the partial transition would have {trans_b_chs} channels')
                trans_b = Transition(dense_out, trans_b_chs, pool=False, pre_act=pre_act, **ca)
                fused_chs = skip_chs + trans_b_chs
            stage = CrossStagePartial(in_chs, nn.Sequential(*layers), trans_b, part_ratio=part_ratio)

            pool = not last and plan[i + 1][0] == 2  # the next stage's stride, unless turned into dilation
            if fusion == 'last':
                transition = Transition(fused_chs, None, pool=True, **ca) if pool else nn.Identity()
            else:
                transition = Transition(fused_chs, out_chs, pool=pool, pool_first=pool_first, pre_act=pre_act, **ca)
            self.add_module(f'layer{i + 1}', stage)
            self.add_module(f'transition{i + 1}', transition)
            if not last:
                self.feature_info.append(dict(num_chs=fused_chs, reduction=reduction, module=f'layer{i + 1}'))
            else:
                self.feature_info.append(dict(num_chs=out_chs, reduction=reduction, module='final_norm'))
            in_chs = out_chs

        self.final_norm = NormAct(in_chs, **ca) if pre_act else nn.Identity()
        self._init_head(in_chs, num_classes, global_pool, **dd)
        self.init_weights(zero_init_last=zero_init_last)

    @torch.jit.ignore
    def init_weights(self, zero_init_last: bool = True) -> None:
        # fan_in (torchvision DenseNet's init): the 1x1 convs narrow wide concatenations (e.g. 1000 -> 128), where
        # fan_out would amplify the variance of every layer. zero_init_last has nothing to act on: no dense
        # layer ends a residual branch.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_in', nonlinearity='relu')
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def _stages(self) -> List[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def _transitions(self) -> List[nn.Module]:
        return [self.transition1, self.transition2, self.transition3, self.transition4]

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        if coarse:
            blocks = [(r'^(?:layer|transition)(\d+)', None), (r'^final_norm', MATCH_PREV_GROUP)]
        else:
            blocks = [
                (r'^layer(\d+)\.blocks\.(\d+)', None),
                (r'^layer(\d+)\.transition_b', MATCH_PREV_GROUP),
                (r'^transition(\d+)', MATCH_PREV_GROUP),
                (r'^final_norm', MATCH_PREV_GROUP),
            ]
        return dict(stem=r'^stem', blocks=blocks)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        for stage in self._stages():
            if isinstance(stage, CrossStagePartial):
                stage.grad_checkpointing = enable

    @torch.no_grad()
    def reparameterize(self) -> 'CspDenseNet':
        """Fold every norm that directly follows a conv, in place, for inference: all of PeleeNet's; in DenseNet each
        layer's second norm. The norms that follow a concatenation or a stage (DenseNet's pre-activation `norm1`,
        its transitions' and the final norm) have no conv to go into and stay."""
        return reparameterize_model(self, inplace=True)

    @torch.jit.ignore
    def _feature_path(self) -> List[Tuple[nn.Module, int]]:
        """Stem (feature 0), the fused tensors of stages 1-3 (1-3) and the final features (4)."""
        path = [(self.stem, 0), (self.stem_down, -1)]
        for i, (stage, transition) in enumerate(zip(self._stages(), self._transitions()), start=1):
            path += [(stage, i if i < NUM_STAGES else -1), (transition, -1)]
        return path + [(self.final_norm, NUM_STAGES)]

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Replace every module after the last needed feature by Identity; return the kept indices.

        `prune_norm` is ignored: the final norm produces feature 4 itself.
        """
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        names = ['stem', 'stem_down']
        for i in range(1, NUM_STAGES + 1):
            names += [f'layer{i}', f'transition{i}']
        names.append('final_norm')
        keep_until = names.index(self.feature_info[max_index]['module'])
        for name in names[keep_until + 1:]:
            setattr(self, name, nn.Identity())
        if max_index < NUM_STAGES:
            # the head is sized for the final features, so it goes with them
            self.num_features = self.head_hidden_size = self.feature_info[max_index]['num_chs']
        if prune_head or max_index < NUM_STAGES:
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_down(self.stem(x))
        x = self.transition1(self.layer1(x))
        x = self.transition2(self.layer2(x))
        x = self.transition3(self.layer3(x))
        x = self.transition4(self.layer4(x))
        return self.final_norm(x)


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """No released checkpoints exist; accept our own (bare, `state_dict`/`model` wrapped, `module.` prefixed)."""
    return filter_checkpoint(state_dict, model)


# the ResNet families' plug-in keywords; CSP-DenseNet has no residual block to put them in
RESNET_PLUGIN_KWARGS = ('block_args', 'stage_args', 'drop_block_rate', 'aa_layer')


def _create_csp_densenet(variant: str, pretrained: bool = False, **kwargs) -> CspDenseNet:
    given = [k for k in RESNET_PLUGIN_KWARGS if kwargs.get(k) is not None]
    if given:
        raise ValueError(
            f"{variant} does not take {', '.join(given)}: its dense layers concatenate instead of adding a residual "
            'branch, so there is no place for block attention, DropBlock or anti-aliased strides. It supports '
            'drop_path_rate (on each dense layer\'s new features), drop_rate, act_layer, norm_layer and output_stride; '
            'for attention on its features, apply a plug-in from timm_tricks.layers to features_only outputs.')
    return build_tricks_model(
        CspDenseNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn, **kwargs)


_cfg = partial(
    imagenet_cfg,
    first_conv='stem.conv',
    origin_url='https://github.com/WongKinYiu/CrossStagePartialNetworks',
    paper_ids='arXiv:1911.11929',
    paper_name='CSPNet: A New Backbone that can Enhance Learning Capability of CNN',
    license='mit',
    notes=('Reconstruction from the paper text; the authors released no code, cfg or weights for it.',),
)


default_cfgs = generate_default_cfgs({
    'cspdensenet121.untrained': _cfg(),
    'cspdensenet169.untrained': _cfg(),
    'cspdensenet201.untrained': _cfg(),
    'csppeleenet.untrained': _cfg(),
})


def _densenet_args(block_config: Sequence[int]) -> Dict[str, Any]:
    return dict(
        block_config=block_config, style='densenet', growth_rate=32, bn_size=4, stem_width=64, compression=0.5,
        trans_b_ratio=0.5)


@register_model
def cspdensenet121(pretrained: bool = False, **kwargs) -> CspDenseNet:
    """CSP-DenseNet-121 (DenseNet-BC k=32, γ=0.5, fusion first+last; our reconstruction, no weights)."""
    model_args = _densenet_args((6, 12, 24, 16))
    return _create_csp_densenet('cspdensenet121', pretrained, **dict(model_args, **kwargs))


@register_model
def cspdensenet169(pretrained: bool = False, **kwargs) -> CspDenseNet:
    """CSP-DenseNet-169 (our reconstruction, no weights)."""
    model_args = _densenet_args((6, 12, 32, 32))
    return _create_csp_densenet('cspdensenet169', pretrained, **dict(model_args, **kwargs))


@register_model
def cspdensenet201(pretrained: bool = False, **kwargs) -> CspDenseNet:
    """CSP-DenseNet-201 (our reconstruction, no weights; the paper's Elastic variant is not rebuildable)."""
    model_args = _densenet_args((6, 12, 48, 32))
    return _create_csp_densenet('cspdensenet201', pretrained, **dict(model_args, **kwargs))


@register_model
def csppeleenet(pretrained: bool = False, **kwargs) -> CspDenseNet:
    """CSPPeleeNet (paper: 2.83 M params, 0.888 BFLOPs; our reconstruction, no weights)."""
    model_args = dict(
        block_config=(3, 4, 8, 6), style='peleenet', growth_rate=32, bottleneck_widths=(1, 2, 4, 4), stem_width=32,
        compression=1.0, trans_b_ratio=1.0)
    return _create_csp_densenet('csppeleenet', pretrained, **dict(model_args, **kwargs))
