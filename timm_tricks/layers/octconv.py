"""Octave convolution (Chen et al., ICCV 2019, "Drop an Octave"), scriptable, for every input size.

A feature map is a (high, low) pair: the high-frequency group at full resolution with C - int(alpha * C)
channels, the low-frequency group at half resolution with int(alpha * C) channels. An octave conv has up to
four paths, h->h, h->l (2x2 average pool, then conv), l->h (conv, then nearest x2 upsample) and l->l, with
Y_h = h2h + l2h and Y_l = h2l + l2l. The four kernels partition the plain conv's kernel, so the parameter count
equals the plain conv's exactly. Module names (`conv_h2h`, ... ; `conv`, `bn_h`, `bn_l`) are those of the
PyTorch reference (d-li14/octconv.pytorch), whose checkpoints therefore load without renaming.

Differences from the reference, all identical to it wherever it runs:

* Every input size works. Each 2x2 average pool uses `ceil_mode=True` (so a low map is always ceil(n / 2) of
  its high map) and l->h upsamples to the exact size of the h->h output; at even sizes this is the reference's
  floor-mode pool and `scale_factor=2` upsample.
* Which paths exist is fixed at construction (alpha_in, alpha_out), never decided from the input's type, so the
  layers script: they take `(x_h, x_l: Optional[Tensor])` and return `(y_h, y_l: Optional[Tensor])`.
* With alpha_out = 0 the low input only feeds l->h: it is neither pooled nor convolved for a discarded l->l.
* Stride 2 never uses a strided conv (paper): the high input is pooled first, l->h is then not upsampled.

Speed: torch's CPU kernels for `avg_pool2d` and `upsample_nearest2d` are ~10x slower on contiguous (NCHW)
tensors than on channels_last ones. For NCHW inputs of even size, `octave_pool` and `add_upsampled` use strided
slices and a broadcast add instead (bit-identical results: the same sums in the same order); channels_last
tensors, odd sizes and torch.compile use the native kernels. Both helpers are FX leaf functions.
"""
from typing import List, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from timm.layers import create_act_layer, register_notrace_function
from torch import nn

from .fold import fold_conv_scale_shift, norm_scale_shift

__all__ = [
    'OctaveConv2d', 'OctaveConvNormAct', 'OctaveDropPath', 'octave_split', 'octave_pool', 'add_upsampled',
    'upsample_to', 'merge_octave',
]

Tensor = torch.Tensor


def octave_split(chs: int, alpha: float) -> Tuple[int, int]:
    """(high, low) channels of a `chs`-channel map: low = int(alpha * chs), as the reference computes it."""
    low = int(alpha * chs)
    return chs - low, low


def _fast_path_allowed() -> bool:
    """False under torch.compile: it gets the native ops and no size-parity branches (with dynamic shapes their
    guards make symbolic shape reasoning very slow), and generates fused code anyway."""
    if not torch.jit.is_scripting():
        return not torch.compiler.is_compiling()
    return True


@register_notrace_function
def octave_pool(x: Tensor) -> Tensor:
    """2x2 average pool, stride 2, ceil mode: the output has ceil(n / 2) rows / columns.

    A window that overhangs the border (odd sizes) averages the pixels it covers, as torch's ceil-mode pool does.
    """
    h, w = x.shape[-2], x.shape[-1]
    if _fast_path_allowed() and h % 2 == 0 and w % 2 == 0 and x.dim() == 4 and x.is_contiguous():
        # avg_pool2d's sum in its order (row by row), so bit-identical, about 3x faster than its NCHW kernel
        out = x[:, :, 0::2, 0::2] + x[:, :, 0::2, 1::2]
        out += x[:, :, 1::2, 0::2]
        out += x[:, :, 1::2, 1::2]
        out *= 0.25
        return out
    return F.avg_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)


@register_notrace_function
def upsample_to(x: Tensor, size: List[int]) -> Tensor:
    """Nearest upsampling of a low map to `size` (its high map's size): pixel (i, j) copies (i // 2, j // 2)."""
    return F.interpolate(x, size=size, mode='nearest')


@register_notrace_function
def add_upsampled(x_h: Tensor, x_l: Tensor) -> Tensor:
    """x_h + nearest upsampling of x_l (half x_h's size, rounded up) to x_h's size, as a new tensor."""
    n, c, h, w = x_h.shape[0], x_h.shape[1], x_h.shape[2], x_h.shape[3]
    if _fast_path_allowed() and h % 2 == 0 and w % 2 == 0 and x_h.is_contiguous():
        # double x_l's columns, then add each low row to its two high rows by broadcasting: 2-3x faster than
        # NCHW upsample_nearest2d + add, and no full-size upsampled copy
        cols = x_l[:, :, :, :, None].expand(n, c, h // 2, w // 2, 2).reshape(n, c, h // 2, 1, w)
        return (x_h.view(n, c, h // 2, 2, w) + cols).view(n, c, h, w)
    return x_h + F.interpolate(x_l, size=[h, w], mode='nearest')


def merge_octave(x_h: Tensor, x_l: Optional[Tensor]) -> Tensor:
    """One tensor from a (high, low) pair: concat(high, upsampled low) along channels; high alone without low."""
    if x_l is None:
        return x_h
    return torch.cat([x_h, upsample_to(x_l, [x_h.shape[-2], x_h.shape[-1]])], dim=1)


class OctaveConv2d(nn.Module):
    """Octave convolution with paths fixed by `alpha_in` / `alpha_out` (each in [0, 1)).

    `alpha_in=0`: the first layer (single-frequency input; h->h and h->l only). `alpha_out=0`: the last layer
    (low merged into high; h->h and l->h only). Both 0: a plain conv (stride 2 still as pool + conv).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, alpha_in: float = 0.5, alpha_out: float = 0.5,
                 stride: int = 1, dilation: int = 1, bias: bool = False, device=None, dtype=None):
        super().__init__()
        if not (0. <= alpha_in < 1. and 0. <= alpha_out < 1.):
            raise ValueError(f'alpha_in and alpha_out must be in [0, 1), got {alpha_in}, {alpha_out}')
        if stride not in (1, 2):
            raise ValueError(f'OctaveConv2d supports stride 1 or 2, got {stride}')
        if kernel_size % 2 != 1:
            raise ValueError(f'OctaveConv2d needs an odd kernel size, got {kernel_size}')
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride
        self.in_h, self.in_l = octave_split(in_chs, alpha_in)
        self.out_h, self.out_l = octave_split(out_chs, alpha_out)
        if self.in_h == 0 or self.out_h == 0:
            raise ValueError(f'alpha leaves no high-frequency channels ({in_chs} -> {out_chs})')
        if (alpha_in > 0 and self.in_l == 0) or (alpha_out > 0 and self.out_l == 0):
            raise ValueError(
                f'alpha_in={alpha_in} / alpha_out={alpha_out} leave no low-frequency channels ({in_chs} -> {out_chs})')

        def conv(i: int, o: int) -> nn.Conv2d:
            return nn.Conv2d(
                i, o, kernel_size, padding=dilation * (kernel_size // 2), dilation=dilation, bias=bias,
                device=device, dtype=dtype)

        self.conv_h2h = conv(self.in_h, self.out_h)
        self.conv_h2l = conv(self.in_h, self.out_l) if self.out_l else None
        self.conv_l2h = conv(self.in_l, self.out_h) if self.in_l else None
        self.conv_l2l = conv(self.in_l, self.out_l) if self.in_l and self.out_l else None

    def forward(self, x_h: Tensor, x_l: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor]]:
        if self.stride == 2:
            x_h = octave_pool(x_h)
        y_h = self.conv_h2h(x_h)
        if self.conv_l2h is not None:
            assert x_l is not None, 'this octave conv needs a low-frequency input'
            l2h = self.conv_l2h(x_l)
            # stride 2: the low input already has the new high size (both are ceil(n / 2) of the old high size)
            y_h = y_h + l2h if self.stride == 2 else add_upsampled(y_h, l2h)
        y_l: Optional[Tensor] = None
        if self.conv_h2l is not None:
            y_l = self.conv_h2l(octave_pool(x_h))
            if self.conv_l2l is not None:
                assert x_l is not None, 'this octave conv needs a low-frequency input'
                y_l = y_l + self.conv_l2l(octave_pool(x_l) if self.stride == 2 else x_l)
        return y_h, y_l

    def extra_repr(self) -> str:
        return f'{self.in_h}+{self.in_l} -> {self.out_h}+{self.out_l} (high+low), stride={self.stride}'


class OctaveConvNormAct(nn.Module):
    """Octave conv, a norm per frequency (`bn_h`, `bn_l`) and optionally an activation per frequency.

    The reference's `Conv_BN` (`apply_act=False`) and `Conv_BN_ACT`; state-dict keys `conv.conv_*`, `bn_h`, `bn_l`.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, alpha_in: float = 0.5, alpha_out: float = 0.5,
                 stride: int = 1, dilation: int = 1, norm_layer: Type[nn.Module] = nn.BatchNorm2d,
                 act_layer: Optional[Type[nn.Module]] = nn.ReLU, apply_act: bool = True, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.conv = OctaveConv2d(in_chs, out_chs, kernel_size, alpha_in, alpha_out, stride, dilation, **dd)
        self.bn_h = norm_layer(self.conv.out_h, **dd)
        self.bn_l = norm_layer(self.conv.out_l, **dd) if self.conv.out_l else None
        use_act = apply_act and act_layer is not None
        self.act_h = create_act_layer(act_layer, inplace=True) if use_act else None
        self.act_l = create_act_layer(act_layer, inplace=True) if use_act and self.conv.out_l else None

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold `bn_h` into the paths that make the high output (h->h carries the shift) and `bn_l` into those
        that make the low one, for inference (timm's `reparameterize_model` calls this); idempotent."""
        conv = self.conv
        for norm_name, paths in (('bn_h', ('conv_h2h', 'conv_l2h')), ('bn_l', ('conv_h2l', 'conv_l2l'))):
            norm = getattr(self, norm_name)
            if norm is None or isinstance(norm, nn.Identity):
                continue
            scale, shift = norm_scale_shift(norm)
            for i, name in enumerate(paths):
                path = getattr(conv, name)
                if path is not None:
                    path_shift = shift if i == 0 else torch.zeros_like(shift)  # the shift once per output
                    setattr(conv, name, fold_conv_scale_shift(path, scale, path_shift))
            setattr(self, norm_name, nn.Identity())

    def forward(self, x_h: Tensor, x_l: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor]]:
        y_h, y_l = self.conv(x_h, x_l)
        y_h = self.bn_h(y_h)
        if self.act_h is not None:
            y_h = self.act_h(y_h)
        if self.bn_l is not None:
            assert y_l is not None
            y_l = self.bn_l(y_l)
            if self.act_l is not None:
                y_l = self.act_l(y_l)
        return y_h, y_l


class OctaveDropPath(nn.Module):
    """Stochastic depth for a (high, low) residual branch: one keep/drop draw per sample for both frequencies."""

    def __init__(self, drop_prob: float = 0., scale_by_keep: bool = True):
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x_h: Tensor, x_l: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor]]:
        if self.drop_prob == 0. or not self.training:
            return x_h, x_l
        keep = 1. - self.drop_prob
        mask = x_h.new_empty((x_h.shape[0], 1, 1, 1)).bernoulli_(keep)
        if keep > 0. and self.scale_by_keep:
            mask.div_(keep)
        return x_h * mask, (x_l * mask if x_l is not None else None)

    def extra_repr(self) -> str:
        return f'drop_prob={round(self.drop_prob, 3):0.3f}'
