"""Folding an inference-mode BatchNorm into the convolution before it (timm's `reparameterize` convention).

`fold_norm(conv, norm)` is the one entry point the blocks use: a layer with its own `fuse(norm)` (SPConv, PyConv,
the deformable conv) folds itself, a plain `nn.Conv2d` is folded here, anything else is left as it is.
"""
from typing import Optional, Tuple

import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

__all__ = ['norm_scale_shift', 'conv_like', 'fold_conv_norm', 'fold_conv_scale_shift', 'fold_norm']


def norm_scale_shift(norm: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) of an inference-mode BatchNorm: `norm(x) == x * scale + shift`."""
    if isinstance(norm, nn.modules.batchnorm._BatchNorm):
        if norm.running_mean is None or norm.running_var is None:
            raise TypeError(f'cannot fold {type(norm).__name__} without running statistics')
    elif not isinstance(norm, FrozenBatchNorm2d):
        raise TypeError(
            f'cannot fold a {type(norm).__name__} into a convolution: only BatchNorm layers with running '
            'statistics (nn.BatchNorm2d, SyncBatchNorm, FrozenBatchNorm2d) can be folded')
    mean, var = norm.running_mean.detach(), norm.running_var.detach()
    scale = torch.rsqrt(var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.detach()
    shift = -mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias.detach()
    return scale, shift


def conv_like(conv: nn.Conv2d, weight: torch.Tensor, bias: Optional[torch.Tensor], **overrides) -> nn.Conv2d:
    """A conv with `conv`'s geometry (unless overridden) holding `weight` and `bias`."""
    args = dict(
        stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups)
    args.update(overrides)
    out = nn.Conv2d(
        weight.shape[1] * args['groups'], weight.shape[0], weight.shape[2:], bias=bias is not None,
        device=weight.device, dtype=weight.dtype, **args)
    with torch.no_grad():
        out.weight.copy_(weight)
        if bias is not None:
            out.bias.copy_(bias)
    return out


def fold_conv_norm(conv: nn.Conv2d, norm: nn.Module) -> nn.Conv2d:
    """`norm(conv(x))` as one conv with bias (inference-mode BatchNorm statistics)."""
    return fold_conv_scale_shift(conv, *norm_scale_shift(norm))


def fold_conv_scale_shift(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> nn.Conv2d:
    """`conv(x) * scale + shift` (per output channel) as one conv with bias."""
    weight = conv.weight.detach() * scale.view(-1, 1, 1, 1)
    bias = shift if conv.bias is None else conv.bias.detach() * scale + shift
    return conv_like(conv, weight, bias)


@torch.no_grad()
def fold_norm(conv: nn.Module, norm: nn.Module) -> Tuple[nn.Module, nn.Module]:
    """(conv, norm) -> (folded conv, Identity); unchanged where `norm` is already gone or `conv` has no folded form.

    A norm that cannot be folded (no running statistics) raises TypeError naming it.
    """
    if isinstance(norm, nn.Identity):
        return conv, norm
    if hasattr(conv, 'fuse'):
        return conv.fuse(norm), nn.Identity()
    if type(conv) is nn.Conv2d:
        return fold_conv_norm(conv, norm), nn.Identity()
    return conv, norm
