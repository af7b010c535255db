"""One ResNet for every ResNet-like family: `PluggableResNet`, whose blocks take layer factories, as timm's do.

Module names follow torchvision / timm ResNet (`conv1`, `bn1`, `act1`, `maxpool`, `layer1..4`, `fc`; in a block
`conv1..3`, `bn1..3`, `aa`, `se`, `downsample`), which are also the names the authors' checkpoints use, so family
filters only rename what the family itself changed.

A family is configuration: which block class, and the layers the blocks build (a family block class exists only
where the block itself differs: Ghost-ResNet's, OctResNet's; PyConvHGResNet's only sets its expansion). The plug-in
layers every block takes travel in one record, `BlockLayers` (built by the skeleton from the model's keywords and the
`block_args` / `stage_args` of these names); the family's own layers are block keywords. Factories and their calls:

* `conv_layer(in_chs, out_chs, stride=, dilation=, groups=, device=, dtype=)`: the block's spatial conv
  (`conv2` of the bottleneck, `conv1` of the basic block; `conv2_layer` for the basic block's second), with its
  own kernel size and "same" padding for the given dilation. Default `conv3x3` (timm's `create_conv2d`).
* `aa_layer(channels, stride=, device=, dtype=)`: anti-aliasing; with it a strided block convolves at stride 1 and
  the `aa` module after the activation subsamples (timm's `aa_layer`), and the stem pool becomes max-pool at
  stride 1 + `aa`. Strings are timm's names (`'blurpc'`, `'avg'`, ...).
* `attn_layer(channels, **attn_kwargs, device=, dtype=)`: attention on the residual branch after its last norm,
  before drop-path and the add (attribute `se`, timm's place). Strings resolve through
  `timm_tricks.layers.get_attn` (ours first, then timm's).
* `mid_act_layer(channels, device=, dtype=)`: a channel-aware activation (ACON, DyReLU) replacing the one after the
  spatial conv; `act_layer` (channel-free) stays everywhere else.
* `drop_block()`: DropBlock after the spatial conv's norm (timm's `drop_blocks(drop_block_rate)` per stage).
* `shortcut(in_chs, out_chs, stride=, norm_layer=, device=, dtype=)`: the projection of a stage's first block
  where the width or the architecture's stride changes; one factory, or one per stage.
* `stem_pool(channels, aa_layer=, device=, dtype=)`: the pool after the stem (None: no pool).
* `stage_layer(*blocks)`: the stage container (`nn.Sequential`; OctResNet's enters and leaves its two-frequency
  representation there, so every stage maps a tensor to a tensor and every tap is a tensor).
"""
import math
from dataclasses import dataclass, fields, replace
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
from timm.layers import DropPath, LayerType, create_act_layer, create_conv2d, get_act_layer, get_norm_layer
from timm.layers import create_aa as timm_create_aa
from timm.models import checkpoint_seq, reparameterize_model
from timm.models._features import feature_take_indices
from timm.models.resnet import drop_blocks
from torch import nn

from ..layers import create_attn, create_channel_act, fold_norm
from ._contract import STAGE_NAMES, ClassifierHeadMixin, FeatureTapsMixin, make_stage_plan

__all__ = [
    'PluggableResNet', 'BlockLayers', 'ResidualBlock', 'Bottleneck', 'BasicBlock', 'conv3x3', 'conv1x1',
    'conv_shortcut', 'aa_shortcut', 'max_pool_stem', 'create_aa', 'fold_shortcut', 'merge_block_args',
]

ConvFactory = Callable[..., nn.Module]
ShortcutFactory = Callable[..., Optional[nn.Module]]

conv3x3 = partial(create_conv2d, kernel_size=3)
conv1x1 = partial(create_conv2d, kernel_size=1)


def create_aa(aa_layer: LayerType, channels: int, stride: int, device=None, dtype=None) -> nn.Module:
    """An anti-aliasing module: timm's names for strings, else `aa_layer(channels, stride=, device=, dtype=)`."""
    if isinstance(aa_layer, str):
        return timm_create_aa(aa_layer, channels, stride=stride, device=device, dtype=dtype)
    return aa_layer(channels, stride=stride, device=device, dtype=dtype)


def max_pool_stem(channels: int, aa_layer: Optional[LayerType] = None, kernel_size: int = 3, device=None,
                  dtype=None) -> nn.Module:
    """Max-pool, stride 2 (torchvision's 3x3); with `aa_layer` the pool runs at stride 1 and `aa` subsamples."""
    padding = (kernel_size - 1) // 2
    if aa_layer is None:
        return nn.MaxPool2d(kernel_size, stride=2, padding=padding)
    return nn.Sequential(
        nn.MaxPool2d(kernel_size, stride=1, padding=padding),
        create_aa(aa_layer, channels, stride=2, device=device, dtype=dtype),
    )


def conv_shortcut(in_chs: int, out_chs: int, stride: int, norm_layer: Type[nn.Module], bias: bool = False, device=None,
                  dtype=None) -> nn.Module:
    """torchvision's projection shortcut: strided 1x1 conv + norm (`downsample.0`, `downsample.1`)."""
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=bias, device=device, dtype=dtype),
        norm_layer(out_chs, device=device, dtype=dtype),
    )


def aa_shortcut(in_chs: int, out_chs: int, stride: int, norm_layer: Type[nn.Module], aa_layer: LayerType, device=None,
                dtype=None) -> nn.Module:
    """Anti-aliased projection: `aa` (Identity at stride 1), then `conv_shortcut` at stride 1
    (`downsample.0/.1/.2`)."""
    aa = create_aa(aa_layer, in_chs, stride=stride, device=device, dtype=dtype) if stride > 1 else nn.Identity()
    return nn.Sequential(aa, *conv_shortcut(in_chs, out_chs, 1, norm_layer, device=device, dtype=dtype))


@torch.no_grad()
def fold_shortcut(downsample: Optional[nn.Module]) -> Optional[nn.Module]:
    """A projection shortcut with every (conv, norm) pair folded (`nn.Sequential` shortcuts; others as they are)."""
    if not isinstance(downsample, nn.Sequential):
        return downsample
    layers = list(downsample)
    for i in range(len(layers) - 1):
        layers[i], layers[i + 1] = fold_norm(layers[i], layers[i + 1])
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class BlockLayers:
    """The layers a residual block builds besides its own convs: the plug-in protocol (module docstring).

    The skeleton builds one per block from the model's keywords and the `block_args` / `stage_args` of these names,
    so a new plug-in is one field here, not a keyword in every block.
    """
    act_layer: LayerType = nn.ReLU
    norm_layer: LayerType = nn.BatchNorm2d
    aa_layer: Optional[LayerType] = None
    attn_layer: Optional[LayerType] = None
    attn_kwargs: Optional[Dict[str, Any]] = None
    mid_act_layer: Optional[LayerType] = None
    drop_block: Optional[Callable[[], nn.Module]] = None
    drop_path_rate: float = 0.

    def act(self) -> nn.Module:
        return create_act_layer(self.act_layer, inplace=True)

    def mid_act(self, channels: int, device=None, dtype=None) -> nn.Module:
        """The activation after the spatial conv: channel-aware where `mid_act_layer` is set."""
        if self.mid_act_layer is None:
            return self.act()
        return create_channel_act(self.mid_act_layer, channels, device=device, dtype=dtype)

    def norm(self, channels: int, device=None, dtype=None) -> nn.Module:
        return self.norm_layer(channels, device=device, dtype=dtype)

    def uses_aa(self, stride: int) -> bool:
        return self.aa_layer is not None and stride > 1

    def aa(self, channels: int, stride: int, device=None, dtype=None) -> nn.Module:
        if not self.uses_aa(stride):
            return nn.Identity()
        return create_aa(self.aa_layer, channels, stride, device=device, dtype=dtype)

    def attn(self, channels: int, device=None, dtype=None) -> Optional[nn.Module]:
        return create_attn(self.attn_layer, channels, **(self.attn_kwargs or {}), device=device, dtype=dtype)

    def dropblock(self) -> nn.Module:
        return self.drop_block() if self.drop_block is not None else nn.Identity()

    def drop_path(self) -> nn.Module:
        return DropPath(self.drop_path_rate) if self.drop_path_rate > 0. else nn.Identity()


# the BlockLayers fields `block_args` / `stage_args` may set; the others are model keywords (they also shape the stem
# and the shortcuts, or are scheduled over the depth)
BLOCK_PLUGIN_NAMES = frozenset({'attn_layer', 'attn_kwargs', 'mid_act_layer'})
MODEL_LAYER_NAMES = frozenset(f.name for f in fields(BlockLayers)) - BLOCK_PLUGIN_NAMES


def merge_block_args(base: Optional[Dict[str, Any]], override: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """`base` updated by `override` (the override wins), their `first_block` dicts merged the same way. Returns new
    dicts: the skeleton pops keys from the result, never from the caller's."""
    base, override = base or {}, override or {}
    merged = dict(base, **override)
    if 'first_block' in merged:
        merged['first_block'] = dict(base.get('first_block') or {}, **(override.get('first_block') or {}))
    return merged


def _pop_plugins(args: Dict[str, Any]) -> Dict[str, Any]:
    """Take the plug-in keywords out of a block's `args`; a model keyword given there is an error, not ignored."""
    misplaced = sorted(MODEL_LAYER_NAMES & set(args))
    if misplaced:
        raise ValueError(
            f"{', '.join(misplaced)} cannot be set in block_args / stage_args: they are model keywords (they shape the "
            'stem and the shortcuts too, or are scheduled over the depth); pass them to create_model')
    return {k: args.pop(k) for k in BLOCK_PLUGIN_NAMES & set(args)}


class ResidualBlock(nn.Module):
    """What the residual blocks share: attention on the branch's end (`se`), drop-path, the projection shortcut
    (`downsample`), the norm folding and the zero init of the branch's last norm.

    A subclass builds its branch, then calls `_init_residual`, names its (conv, norm) pairs in `conv_norm_pairs` (the
    last pair's norm ends the branch) and ends `forward` with `act(self.residual(branch, x))`.
    """
    conv_norm_pairs: Tuple[Tuple[str, str], ...] = ()

    def _init_residual(self, out_chs: int, downsample: Optional[nn.Module], layers: BlockLayers, device=None,
                       dtype=None) -> None:
        self.se = layers.attn(out_chs, device=device, dtype=dtype)
        self.downsample = downsample
        self.drop_path = layers.drop_path()

    def zero_init_last(self) -> None:
        norm = getattr(self, self.conv_norm_pairs[-1][1])
        if getattr(norm, 'weight', None) is not None:
            nn.init.zeros_(norm.weight)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold every norm into the conv before it, for inference (timm's `reparameterize_model` calls this)."""
        for conv_name, norm_name in self.conv_norm_pairs:
            conv, norm = fold_norm(getattr(self, conv_name), getattr(self, norm_name))
            setattr(self, conv_name, conv)
            setattr(self, norm_name, norm)
        self.downsample = fold_shortcut(self.downsample)

    def residual(self, branch: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """[se] -> drop-path -> + shortcut (the activation after the add is the subclass's)."""
        if self.se is not None:
            branch = self.se(branch)
        branch = self.drop_path(branch)
        if self.downsample is not None:
            x = self.downsample(x)
        return branch + x


class Bottleneck(ResidualBlock):
    """Post-activation bottleneck, torchvision's layout: 1x1 -> `conv_layer` (strided) -> [aa] -> 1x1 (x4) [-> se]."""
    expansion = 4
    conv_norm_pairs = (('conv1', 'bn1'), ('conv2', 'bn2'), ('conv3', 'bn3'))

    def __init__(self, in_chs: int, planes: int, stride: int = 1, dilation: int = 1,
                 first_dilation: Optional[int] = None, downsample: Optional[nn.Module] = None,
                 layers: BlockLayers = BlockLayers(), cardinality: int = 1, base_width: int = 64,
                 conv_layer: ConvFactory = conv3x3, conv_bias: bool = False, stride_in_1x1: bool = False, device=None,
                 dtype=None):
        """`conv_bias`: biases on the two 1x1 convs (ACON's ResNets); `stride_in_1x1`: the stride on `conv1`
        instead of the spatial conv (the original ResNet / Caffe layout, ACON's ResNets)."""
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        width = int(math.floor(planes * (base_width / 64)) * cardinality)
        out_chs = planes * self.expansion
        if stride_in_1x1 and layers.aa_layer is not None:
            raise ValueError("stride_in_1x1 and aa_layer cannot be combined: the anti-aliased stride is the 3x3's")
        stride_1x1, stride_kxk = (stride, 1) if stride_in_1x1 else (1, 1 if layers.uses_aa(stride) else stride)
        self.conv1 = nn.Conv2d(in_chs, width, 1, stride=stride_1x1, bias=conv_bias, **dd)
        self.bn1 = layers.norm(width, **dd)
        self.act1 = layers.act()
        self.conv2 = conv_layer(
            width, width, stride=stride_kxk, dilation=first_dilation or dilation, groups=cardinality, **dd)
        self.bn2 = layers.norm(width, **dd)
        self.drop_block = layers.dropblock()
        self.act2 = layers.mid_act(width, **dd)
        self.aa = layers.aa(width, stride, **dd)
        self.conv3 = nn.Conv2d(width, out_chs, 1, bias=conv_bias, **dd)
        self.bn3 = layers.norm(out_chs, **dd)
        self.act3 = layers.act()
        self._init_residual(out_chs, downsample, layers, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.aa(self.act2(self.drop_block(self.bn2(self.conv2(y)))))
        return self.act3(self.residual(self.bn3(self.conv3(y)), x))


class BasicBlock(ResidualBlock):
    """Post-activation basic block, torchvision's layout: `conv_layer` (strided) -> [aa] -> `conv2_layer` [-> se]."""
    expansion = 1
    conv_norm_pairs = (('conv1', 'bn1'), ('conv2', 'bn2'))

    def __init__(self, in_chs: int, planes: int, stride: int = 1, dilation: int = 1,
                 first_dilation: Optional[int] = None, downsample: Optional[nn.Module] = None,
                 layers: BlockLayers = BlockLayers(), conv_layer: ConvFactory = conv3x3,
                 conv2_layer: Optional[ConvFactory] = None, device=None, dtype=None):
        """`conv2_layer`: the second conv (default: `conv_layer` at stride 1)."""
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.conv1 = conv_layer(
            in_chs, planes, stride=1 if layers.uses_aa(stride) else stride, dilation=first_dilation or dilation,
            groups=1, **dd)
        self.bn1 = layers.norm(planes, **dd)
        self.drop_block = layers.dropblock()
        self.act1 = layers.mid_act(planes, **dd)
        self.aa = layers.aa(planes, stride, **dd)
        self.conv2 = (conv2_layer or conv_layer)(planes, planes, stride=1, dilation=dilation, groups=1, **dd)
        self.bn2 = layers.norm(planes, **dd)
        self.act2 = layers.act()
        self._init_residual(planes, downsample, layers, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aa(self.act1(self.drop_block(self.bn1(self.conv1(x)))))
        return self.act2(self.residual(self.bn2(self.conv2(y)), x))


def _has_own_init(module: nn.Module) -> bool:
    """Whether `module` defines a `reset_parameters` beyond torch's (a plug-in's designed init: zero offsets, identity
    transforms), which the He init of every conv would otherwise overwrite. Judged by where the method is defined, so
    a timm norm or conv that inherits torch's keeps the He init."""
    reset = getattr(type(module), 'reset_parameters', None)
    return reset is not None and not reset.__module__.startswith('torch.')


def _checkpointed(stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Gradient checkpointing per block; a stage container with its own `grad_checkpointing` does it itself."""
    if hasattr(stage, 'grad_checkpointing'):
        return stage(x)
    return checkpoint_seq(stage, x)


class PluggableResNet(FeatureTapsMixin, ClassifierHeadMixin, nn.Module):
    """The ResNet skeleton of every ResNet-like family (see the module docstring for the factories)."""

    def __init__(self, block: Type[nn.Module], layers: Sequence[int], num_classes: int = 1000, in_chans: int = 3,
                 global_pool: str = 'avg', output_stride: int = 32, drop_rate: float = 0., drop_path_rate: float = 0.,
                 drop_block_rate: float = 0., act_layer: LayerType = nn.ReLU, norm_layer: LayerType = nn.BatchNorm2d,
                 aa_layer: Optional[LayerType] = None, zero_init_last: bool = True, stem_width: int = 64,
                 stem_bias: bool = False, stem_pool: Optional[Callable[..., nn.Module]] = max_pool_stem,
                 stage_widths: Sequence[int] = (64, 128, 256, 512), stage_strides: Sequence[int] = (1, 2, 2, 2),
                 stage_args: Optional[Sequence[Dict[str, Any]]] = None, block_args: Optional[Dict[str, Any]] = None,
                 shortcut: Union[ShortcutFactory, Sequence[ShortcutFactory]] = conv_shortcut,
                 stage_layer: Callable[..., nn.Module] = nn.Sequential, dilate_first_block: bool = False, device=None,
                 dtype=None):
        """
        Args:
            block: residual block class (`Bottleneck`, `BasicBlock` or a family's), with class attribute `expansion`.
            layers: number of blocks per stage.
            drop_block_rate: DropBlock in stages 3-4 (timm's `drop_blocks`).
            aa_layer: anti-aliasing in strided blocks and the stem pool (timm's `aa_layer`).
            stem_bias: a bias on the stem conv (ACON's ResNets).
            stem_pool: factory of the pool after the stem's activation (None: no stem pool, stem reduces by 2).
            stage_widths: `planes` of each stage; a stage outputs `planes * block.expansion` channels.
            stage_strides: stride of each stage's first block before `output_stride` turns strides into dilation.
            stage_args: per-stage block keywords (e.g. a stage's conv_layer); they override `block_args`. The key
                `first_block` holds keywords for the stage's first block only.
            block_args: keywords for every block: timm's plug-in names (`attn_layer`, `attn_kwargs`,
                `mid_act_layer`) and the block class's own (`conv_layer`, `cardinality`, ...). The other layer
                keywords (`act_layer`, `norm_layer`, `aa_layer`, the drop rates) are model keywords only.
            shortcut: projection shortcut factory, or one per stage.
            stage_layer: the stage container, called with the stage's blocks.
            dilate_first_block: in a stage de-strided for `output_stride`, the first block's spatial conv uses the
                stage's dilation (iduta/pyconvsegnet) instead of the previous stage's (torchvision, timm).
        """
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        act_layer = get_act_layer(act_layer)
        norm_layer = get_norm_layer(norm_layer)
        num_stages = len(STAGE_NAMES)
        stage_args = list(stage_args or [{}] * num_stages)
        shortcuts = list(shortcut) if isinstance(shortcut, (list, tuple)) else [shortcut] * num_stages
        if not len(layers) == len(stage_widths) == len(stage_strides) == len(stage_args) == len(shortcuts) \
                == num_stages:
            raise ValueError(f'layers, stage_widths, stage_strides, stage_args and shortcut need one entry per stage '
                             f'({num_stages})')
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.grad_checkpointing = False

        self.conv1 = nn.Conv2d(in_chans, stem_width, 7, stride=2, padding=3, bias=stem_bias, **dd)
        self.bn1 = norm_layer(stem_width, **dd)
        self.act1 = create_act_layer(act_layer, inplace=True)
        self.maxpool = stem_pool(stem_width, aa_layer=aa_layer, **dd) if stem_pool is not None else nn.Identity()
        self.feature_info = [dict(num_chs=stem_width, reduction=2, module='act1')]

        plan = make_stage_plan(stage_strides, output_stride, stem_stride=4 if stem_pool is not None else 2)
        drop_block_fns = drop_blocks(drop_block_rate)
        num_blocks = sum(layers)
        block_idx = 0
        in_chs, prev_dilation = stem_width, 1
        for name, depth, planes, stage_stride, (stride, dilation, reduction), args, make_shortcut, db in zip(
                STAGE_NAMES, layers, stage_widths, stage_strides, plan, stage_args, shortcuts, drop_block_fns):
            args = merge_block_args(block_args, args)
            first_args = args.pop('first_block', {})
            # the plug-in keywords (timm's block_args names) become the blocks' BlockLayers, the rest block keywords
            stage_layers = BlockLayers(
                act_layer=act_layer, norm_layer=norm_layer, aa_layer=aa_layer, drop_block=db, **_pop_plugins(args))
            first_layers = replace(stage_layers, **_pop_plugins(first_args))
            out_chs = planes * block.expansion
            blocks = []
            for i in range(depth):
                first = i == 0
                downsample = None
                if first and (stage_stride != 1 or in_chs != out_chs):
                    downsample = make_shortcut(in_chs, out_chs, stride=stride, norm_layer=norm_layer, **dd)
                blocks.append(block(
                    in_chs,
                    planes,
                    stride=stride if first else 1,
                    dilation=dilation,
                    first_dilation=prev_dilation if first and not dilate_first_block else dilation,
                    downsample=downsample,
                    layers=replace(
                        first_layers if first else stage_layers,
                        drop_path_rate=drop_path_rate * block_idx / max(num_blocks - 1, 1)),
                    **args,
                    **(first_args if first else {}),
                    **dd,
                ))
                in_chs = out_chs
                block_idx += 1
            self.add_module(name, stage_layer(*blocks))
            self.feature_info.append(dict(num_chs=out_chs, reduction=reduction, module=name))
            prev_dilation = dilation

        self._init_head(in_chs, num_classes, global_pool, **dd)
        self.init_weights(zero_init_last=zero_init_last)

    @torch.jit.ignore
    def init_weights(self, zero_init_last: bool = True) -> None:
        """He (fan-out) for every conv; then every layer with its own `reset_parameters` (plug-ins, deformable
        convs) restores its designed zero / identity init; last, the last norm of each residual branch is zeroed."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        for m in self.modules():
            if _has_own_init(m):
                m.reset_parameters()
        if zero_init_last:
            for m in self.modules():
                if hasattr(m, 'zero_init_last'):
                    m.zero_init_last()

    @torch.no_grad()
    def reparameterize(self) -> 'PluggableResNet':
        """Fold every BatchNorm into the conv before it, in place, for inference; outputs stay the same (within
        float32 rounding). Uses the running statistics: call it on a trained model and use the result in eval mode.
        timm's `reparameterize_model(model)` does the same except the stem's norm, which only this method folds
        (timm's function visits the model's children, not the model itself)."""
        self.conv1, self.bn1 = fold_norm(self.conv1, self.bn1)
        return reparameterize_model(self, inplace=True)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, str]:
        return dict(stem=r'^conv1|^bn1|^maxpool', blocks=r'^layer(\d+)' if coarse else r'^layer(\d+)\.(\d+)')

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        for name in STAGE_NAMES:
            stage = getattr(self, name)
            if hasattr(stage, 'grad_checkpointing'):
                stage.grad_checkpointing = enable

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv1(x)))

    def _stage_fn(self, stage: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        return partial(_checkpointed, stage) if self.grad_checkpointing else stage

    @torch.jit.ignore
    def _feature_path(self) -> List[Tuple[Callable[[torch.Tensor], torch.Tensor], int]]:
        """Stem (feature 0), stem pool, stages (features 1-4), for `forward_intermediates`."""
        path = [(self.forward_stem, 0), (self.maxpool, -1)]
        for i, name in enumerate(STAGE_NAMES, start=1):
            path.append((self._stage_fn(getattr(self, name)), i))
        return path

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drop the stages after the last index in `indices`; return the kept indices."""
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        for name in STAGE_NAMES[max_index:]:
            setattr(self, name, nn.Sequential())  # empty, not Identity, so checkpoint_seq can iterate it
        if max_index == 0:
            self.maxpool = nn.Identity()
        if max_index < len(STAGE_NAMES):
            # the head is sized for the last stage, so it goes with it
            self.num_features = self.head_hidden_size = self.feature_info[max_index]['num_chs']
        if prune_head or max_index < len(STAGE_NAMES):
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.forward_stem(x))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            for name in STAGE_NAMES:
                x = _checkpointed(getattr(self, name), x)
        else:
            x = self.layer1(x)
            x = self.layer2(x)
            x = self.layer3(x)
            x = self.layer4(x)
        return x
