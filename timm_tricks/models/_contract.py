"""The parts of timm's model contract every family shares: stage plan, classifier head, feature taps, and the
inference form (`fuse_for_inference`).

Family-independent, so the ResNet skeleton (`_resnet.py`) and CSP-DenseNet both build on it.
"""
import copy
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from timm.layers import create_classifier, get_device_dtype
from timm.models import reparameterize_model
from timm.models._features import feature_take_indices
from torch import nn

STAGE_NAMES = ('layer1', 'layer2', 'layer3', 'layer4')


def fuse_for_inference(model: nn.Module, inplace: bool = False, channels_last: bool = True) -> nn.Module:
    """The inference form of any model: every foldable norm folded into the conv before it (outputs unchanged in
    eval mode), and by default the weights in channels_last, the layout oneDNN's and cuDNN's fastest conv kernels
    use (NCHW inputs are still accepted: the first conv switches the layout; 1.2-1.7x at batch 8 on a 2-core CPU).
    Our models' own `reparameterize()` (which also folds the stem); timm's `reparameterize_model` for anything else,
    such as a `features_only` wrapper (it visits the children only: the stem norm stays)."""
    if not inplace:
        model = copy.deepcopy(model)
    if hasattr(model, 'reparameterize'):
        model.reparameterize()  # in place (a block's returns None, a model's itself)
    else:
        reparameterize_model(model, inplace=True)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def make_stage_plan(stage_strides: Sequence[int], output_stride: int, stem_stride: int) -> List[Tuple[int, int, int]]:
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


class FeatureTapsMixin:
    """timm's `forward_intermediates` over `_feature_path()`: (function, feature index or -1) pairs run in order,
    whose last output is `forward_features`'. Expects `feature_info`."""

    @torch.jit.ignore
    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The tapped features (`indices`: None = all, int n = the last n, list = those, negative from the end), and
        the final features unless `intermediates_only`."""
        if output_fmt != 'NCHW':
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        for fn, feat_idx in self._feature_path():
            x = fn(x)
            if feat_idx in take_indices:
                intermediates.append(x)
            if stop_early and feat_idx == max_index:
                break
        if intermediates_only:
            return intermediates
        return x, intermediates

    def _feature_path(self) -> List[Tuple[Callable[[torch.Tensor], torch.Tensor], int]]:
        raise NotImplementedError


class ClassifierHeadMixin:
    """timm's classifier-head contract: `global_pool` + `fc` from `create_classifier`, optional dropout.

    Expects `num_features`, `drop_rate`; sets `num_classes`, `head_hidden_size`.
    """

    def _init_head(self, num_features: int, num_classes: int, global_pool: str, device=None, dtype=None) -> None:
        self.num_features = num_features
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
