"""One ResNet skeleton for the ResNet-like families, with pluggable stem pool, block and shortcut.

Module names follow torchvision / timm ResNet (`conv1`, `bn1`, `act1`, `maxpool`, `layer1..4`, `fc`), which are
also the names the authors' checkpoints use, so family filters only rename what the family itself changed.

A block class is called as
`block(in_chs, planes, stride=, dilation=, first_dilation=, downsample=, act_layer=, norm_layer=, drop_path=,
device=, dtype=, **stage_args)`, has a class attribute `expansion` and may define `zero_init_last()`.
A shortcut factory is called for the first block of every stage whose nominal stride is not 1 or whose width
changes, as `shortcut(in_chs, out_chs, stride=, stage_stride=, norm_layer=, device=, dtype=)` where `stride`
is what the block really uses (1 in a stage de-strided for `output_stride`) and `stage_stride` the architecture's.
It returns a module or None (identity).

`Bottleneck` and `BasicBlock` are torchvision's post-activation blocks with hooks (`make_conv1/2`, `make_aa`,
`make_width`) that a family overrides to change only its convs, keeping torchvision's module names.
"""
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn.functional as F
from torch import nn

from timm.layers import DropPath, create_act_layer, create_classifier, get_act_layer, get_norm_layer
from timm.layers.helpers import get_device_dtype
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint_seq

LayerType = Union[str, Callable, Type[nn.Module]]
StemPoolFactory = Callable[..., nn.Module]
ShortcutFactory = Callable[..., Optional[nn.Module]]

STAGE_NAMES = ('layer1', 'layer2', 'layer3', 'layer4')


def max_pool_stem(chs: int, device=None, dtype=None) -> nn.Module:
    """torchvision's stem pool: 3x3 max-pool, stride 2."""
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)


def conv_shortcut(
        in_chs: int,
        out_chs: int,
        stride: int,
        stage_stride: int,
        norm_layer: Type[nn.Module],
        device=None,
        dtype=None,
) -> nn.Module:
    """torchvision's projection shortcut: strided 1x1 conv + norm (`downsample.0`, `downsample.1`)."""
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False, device=device, dtype=dtype),
        norm_layer(out_chs, device=device, dtype=dtype),
    )


class Bottleneck(nn.Module):
    """Post-activation bottleneck in torchvision's layout: 1x1 -> `make_conv2` (strided) -> [`aa`] -> 1x1 (x4).

    Families subclass it and override the hooks; the block keywords beyond the protocol (`stage_args`,
    `block_args`) reach every hook as keywords. The default hooks give torchvision's Bottleneck.
    """
    expansion = 4

    def __init__(
            self,
            in_chs: int,
            planes: int,
            stride: int = 1,
            dilation: int = 1,
            first_dilation: Optional[int] = None,
            downsample: Optional[nn.Module] = None,
            act_layer: Type[nn.Module] = nn.ReLU,
            norm_layer: Type[nn.Module] = nn.BatchNorm2d,
            drop_path: Optional[nn.Module] = None,
            device=None,
            dtype=None,
            **family_args,
    ):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        width = self.make_width(planes, **family_args)
        out_chs = planes * self.expansion
        self.conv1 = nn.Conv2d(in_chs, width, 1, bias=False, **dd)
        self.bn1 = norm_layer(width, **dd)
        self.act1 = create_act_layer(act_layer, inplace=True)
        self.conv2 = self.make_conv2(
            width, stride, dilation, first_dilation or dilation, norm_layer, **family_args, **dd)
        self.bn2 = norm_layer(width, **dd)
        self.act2 = create_act_layer(act_layer, inplace=True)
        self.aa = self.make_aa(width, stride, **family_args, **dd)
        self.conv3 = nn.Conv2d(width, out_chs, 1, bias=False, **dd)
        self.bn3 = norm_layer(out_chs, **dd)
        self.downsample = downsample
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.act3 = create_act_layer(act_layer, inplace=True)

    def make_width(self, planes: int, **family_args) -> int:
        """Channels of conv1 / conv2."""
        return planes

    def make_conv2(
            self,
            chs: int,
            stride: int,
            dilation: int,
            first_dilation: int,
            norm_layer: Type[nn.Module],
            groups: int = 1,
            device=None,
            dtype=None,
    ) -> nn.Module:
        """The strided 3x3; the first block of a dilated stage keeps the previous dilation, as timm's ResNet."""
        return nn.Conv2d(
            chs, chs, 3, stride=stride, padding=first_dilation, dilation=first_dilation, groups=groups, bias=False,
            device=device, dtype=dtype)

    def make_aa(self, chs: int, stride: int, device=None, dtype=None, **family_args) -> Optional[nn.Module]:
        """Anti-aliasing after act2; None registers no module (and no key)."""
        return None

    def zero_init_last(self) -> None:
        if getattr(self.bn3, 'weight', None) is not None:
            nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        if self.aa is not None:
            x = self.aa(x)
        x = self.bn3(self.conv3(x))
        return self.act3(self.drop_path(x) + shortcut)


class BasicBlock(nn.Module):
    """Post-activation basic block in torchvision's layout: `make_conv1` (strided) -> [`aa`] -> `make_conv2`.

    Hooks as `Bottleneck`'s; the defaults give torchvision's BasicBlock.
    """
    expansion = 1

    def __init__(
            self,
            in_chs: int,
            planes: int,
            stride: int = 1,
            dilation: int = 1,
            first_dilation: Optional[int] = None,
            downsample: Optional[nn.Module] = None,
            act_layer: Type[nn.Module] = nn.ReLU,
            norm_layer: Type[nn.Module] = nn.BatchNorm2d,
            drop_path: Optional[nn.Module] = None,
            device=None,
            dtype=None,
            **family_args,
    ):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.conv1 = self.make_conv1(
            in_chs, planes, stride, dilation, first_dilation or dilation, norm_layer, **family_args, **dd)
        self.bn1 = norm_layer(planes, **dd)
        self.act1 = create_act_layer(act_layer, inplace=True)
        self.aa = self.make_aa(planes, stride, **family_args, **dd)
        self.conv2 = self.make_conv2(planes, dilation, norm_layer, **family_args, **dd)
        self.bn2 = norm_layer(planes, **dd)
        self.downsample = downsample
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.act2 = create_act_layer(act_layer, inplace=True)

    def make_conv1(
            self,
            in_chs: int,
            out_chs: int,
            stride: int,
            dilation: int,
            first_dilation: int,
            norm_layer: Type[nn.Module],
            device=None,
            dtype=None,
    ) -> nn.Module:
        return nn.Conv2d(
            in_chs, out_chs, 3, stride=stride, padding=first_dilation, dilation=first_dilation, bias=False,
            device=device, dtype=dtype)

    def make_conv2(self, chs: int, dilation: int, norm_layer: Type[nn.Module], device=None, dtype=None) -> nn.Module:
        return nn.Conv2d(chs, chs, 3, padding=dilation, dilation=dilation, bias=False, device=device, dtype=dtype)

    def make_aa(self, chs: int, stride: int, device=None, dtype=None, **family_args) -> Optional[nn.Module]:
        """Anti-aliasing after act1; None registers no module (and no key)."""
        return None

    def zero_init_last(self) -> None:
        if getattr(self.bn2, 'weight', None) is not None:
            nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        if self.aa is not None:
            x = self.aa(x)
        x = self.bn2(self.conv2(x))
        return self.act2(self.drop_path(x) + shortcut)


def make_stage_plan(
        stage_strides: Sequence[int],
        output_stride: int,
        stem_stride: int,
) -> List[Tuple[int, int, int]]:
    """(stride, dilation, reduction) per stage: strides beyond `output_stride` become dilation, as in timm."""
    if output_stride not in (8, 16, 32):
        raise ValueError(f'output_stride must be 8, 16 or 32, got {output_stride}')
    plan = []
    net_stride, dilation = stem_stride, 1
    for stride in stage_strides:
        if net_stride * stride > output_stride:
            dilation *= stride
            stride = 1
        net_stride *= stride
        plan.append((stride, dilation, net_stride))
    return plan


class ClassifierHeadMixin:
    """timm's classifier-head contract: `global_pool` + `fc` from `create_classifier`, optional dropout.

    Expects `num_features`, `drop_rate`; sets `num_classes`, `head_hidden_size`.
    """

    def _init_head(self, num_features: int, num_classes: int, global_pool: str, device=None, dtype=None) -> None:
        self.num_features = self.head_hidden_size = num_features
        self.global_pool, self.fc = create_classifier(
            self.num_features, num_classes, pool_type=global_pool, device=device, dtype=dtype)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> Union[str, nn.Module]:
        return 'fc' if name_only else self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        dd = get_device_dtype(self)
        self.num_classes = num_classes
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool, **dd)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.global_pool.train(self.training)
        self.fc.train(self.training)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class ResNetContractMixin(ClassifierHeadMixin):
    """The parts of the timm contract that every ResNet-like model here shares (TricksResNet, OctResNet).

    Expects the torchvision / timm ResNet attributes: a stem `conv1`, `bn1`, `act1`, `maxpool`, stages
    `layer1..4` (STAGE_NAMES), a head `global_pool` + `fc` built by `create_classifier`, and `num_features`,
    `feature_info`, `drop_rate`, `grad_checkpointing`. A subclass implements `forward_features` and
    `forward_intermediates`, and `_empty_stage()` if its stages are not plain `nn.Sequential`s.
    """

    def _init_stem(
            self,
            in_chans: int,
            stem_width: int,
            act_layer: Type[nn.Module],
            norm_layer: Type[nn.Module],
            stem_pool: Optional[StemPoolFactory],
            device=None,
            dtype=None,
    ) -> None:
        """torchvision's stem: 7x7 stride-2 conv, norm, activation, then the stem pool (if any)."""
        dd = dict(device=device, dtype=dtype)
        self.conv1 = nn.Conv2d(in_chans, stem_width, 7, stride=2, padding=3, bias=False, **dd)
        self.bn1 = norm_layer(stem_width, **dd)
        self.act1 = create_act_layer(act_layer, inplace=True)
        self.maxpool = stem_pool(stem_width, **dd) if stem_pool is not None else nn.Identity()

    @torch.jit.ignore
    def init_weights(self, zero_init_last: bool = True) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        if zero_init_last:
            for m in self.modules():
                if hasattr(m, 'zero_init_last'):
                    m.zero_init_last()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, str]:
        return dict(stem=r'^conv1|^bn1|^maxpool', blocks=r'^layer(\d+)' if coarse else r'^layer(\d+)\.(\d+)')

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv1(x)))

    def _empty_stage(self) -> nn.Module:
        """What a pruned stage becomes: empty, not Identity, so checkpoint_seq can iterate it."""
        return nn.Sequential()

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        """Drop the stages after the last index in `indices`; return the kept indices."""
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        for name in STAGE_NAMES[max_index:]:
            setattr(self, name, self._empty_stage())
        if max_index == 0:
            self.maxpool = nn.Identity()
        if max_index < len(STAGE_NAMES):
            # the head is sized for the last stage, so it goes with it
            self.num_features = self.head_hidden_size = self.feature_info[max_index]['num_chs']
        if prune_head or max_index < len(STAGE_NAMES):
            self.reset_classifier(0, '')
        return take_indices

class TricksResNet(ResNetContractMixin, nn.Module):
    """ResNet skeleton shared by the PyConv, SPConv, BlurPool, DCNv2 and Ghost families."""

    def __init__(
            self,
            block: Type[nn.Module],
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
            stem_width: int = 64,
            stem_pool: Optional[StemPoolFactory] = max_pool_stem,
            stage_widths: Sequence[int] = (64, 128, 256, 512),
            stage_strides: Sequence[int] = (1, 2, 2, 2),
            stage_args: Optional[Sequence[Dict[str, Any]]] = None,
            block_args: Optional[Dict[str, Any]] = None,
            shortcut: ShortcutFactory = conv_shortcut,
            device=None,
            dtype=None,
    ):
        """
        Args:
            block: residual block class (see the module docstring for its call signature).
            layers: number of blocks per stage.
            stem_pool: factory of the pool after the stem's activation (None: no stem pool, stem reduces by 2).
            stage_widths: `planes` of each stage; a stage outputs `planes * block.expansion` channels.
            stage_strides: stride of each stage's first block before `output_stride` turns strides into dilation.
            stage_args: per-stage keyword arguments for the block (e.g. a stage's pyramid of kernels).
            block_args: keyword arguments for every block (e.g. a family's ratio).
            shortcut: projection shortcut factory (see the module docstring).
        """
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        act_layer = get_act_layer(act_layer)
        norm_layer = get_norm_layer(norm_layer)
        stage_args = stage_args or [{}] * len(layers)
        block_args = block_args or {}
        if not len(layers) == len(stage_widths) == len(stage_strides) == len(stage_args) == len(STAGE_NAMES):
            raise ValueError('layers, stage_widths, stage_strides and stage_args need one entry per stage (4)')
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.grad_checkpointing = False

        self._init_stem(in_chans, stem_width, act_layer, norm_layer, stem_pool, **dd)
        self.feature_info = [dict(num_chs=stem_width, reduction=2, module='act1')]

        plan = make_stage_plan(stage_strides, output_stride, stem_stride=4 if stem_pool is not None else 2)
        num_blocks = sum(layers)
        block_idx = 0
        in_chs, prev_dilation = stem_width, 1
        for name, depth, planes, stage_stride, (stride, dilation, reduction), args in zip(
                STAGE_NAMES, layers, stage_widths, stage_strides, plan, stage_args):
            out_chs = planes * block.expansion
            blocks = []
            for i in range(depth):
                first = i == 0
                downsample = None
                if first and (stage_stride != 1 or in_chs != out_chs):
                    downsample = shortcut(
                        in_chs, out_chs, stride=stride, stage_stride=stage_stride, norm_layer=norm_layer, **dd)
                block_dpr = drop_path_rate * block_idx / max(num_blocks - 1, 1)
                blocks.append(block(
                    in_chs,
                    planes,
                    stride=stride if first else 1,
                    dilation=dilation,
                    first_dilation=prev_dilation if first else dilation,
                    downsample=downsample,
                    act_layer=act_layer,
                    norm_layer=norm_layer,
                    drop_path=DropPath(block_dpr) if block_dpr > 0. else None,
                    **args,
                    **block_args,
                    **dd,
                ))
                in_chs = out_chs
                block_idx += 1
            self.add_module(name, nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=out_chs, reduction=reduction, module=name))
            prev_dilation = dilation

        self._init_head(in_chs, num_classes, global_pool, **dd)
        self.init_weights(zero_init_last=zero_init_last)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Features of the stem (index 0) and of each stage (1-4), and optionally the final features.

        `indices`: None = all, int n = the last n, list = those indices (negative from the end).
        """
        if output_fmt != 'NCHW':
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        x = self.forward_stem(x)
        if 0 in take_indices:
            intermediates.append(x)
        x = self.maxpool(x)
        stages = [self.layer1, self.layer2, self.layer3, self.layer4]
        if stop_early:
            stages = stages[:max_index]
        for feat_idx, stage in enumerate(stages, start=1):
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint_seq(stage, x)
            else:
                x = stage(x)
            if feat_idx in take_indices:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.forward_stem(x))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq([self.layer1, self.layer2, self.layer3, self.layer4], x, flatten=True)
        else:
            x = self.layer1(x)
            x = self.layer2(x)
            x = self.layer3(x)
            x = self.layer4(x)
        return x
