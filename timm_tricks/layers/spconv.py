"""SPConv (Zhang et al., "Split to Be Slim: An Overlooked Redundancy in Vanilla Convolution", IJCAI 2020).

A 3x3 convolution whose input channels are split by a ratio alpha: the first `int(alpha * C_in)`
("representative") channels go through a 2-group 3x3 plus a point-wise 1x1 (summed, then BatchNorm), the rest
("redundant") through a single 1x1 with bias (then BatchNorm). The two results are fused per channel by a
parameter-free softmax over their global averages.

Module names (`gwc`, `pwc`, `conv1x1`, `bn1`, `bn2`) are the authors', so their checkpoints load unchanged.

Beyond the reference (qiulinzhang/SPConv.pytorch):
- stride-2 pooling is `AvgPool2d(2, 2, ceil_mode=True)`: both paths give ceil(H / 2) at every size, where the
  reference crashes unless ceil(H / 4) is a multiple of 8 (and equals it wherever it runs: inputs are even there);
- the split sizes are fixed at construction and the softmax is functional, so it scripts and FX-traces;
- `fuse()` returns `SPConv2dFused`, the inference form with the BatchNorms (optionally also the BatchNorm that
  follows the layer) folded into the convolutions; see its docstring.
"""
from typing import Optional, Type

import torch
import torch.nn.functional as F
from torch import nn

from .fold import conv_like, norm_scale_shift

__all__ = ['SPConv2d', 'SPConv2dFused']


class SPConv2d(nn.Module):
    """SPConv replacement of a 3x3 conv (the authors' `SPConv_3x3`), training / checkpoint form.

    Args:
        in_chs: input channels; the first `int(in_chs * ratio)` are the representative part.
        out_chs: output channels of both paths (and of the fused output).
        stride: 1 or 2 (any s > 1 works: s x s average pooling with ceil_mode on the 1x1 paths).
        dilation: dilation of the 3x3 (for output_stride 8/16 in a de-strided stage; stride must then be 1).
        ratio: alpha, the representative fraction of the input channels.
        gwc_groups: groups of the 3x3 on the representative part; the authors use 2 for every alpha.
        groups: a block's cardinality; SPConv has no grouped (ResNeXt) form, so only 1.
        norm_layer: the two inner norms (`bn1` after gwc + pwc, `bn2` after the 1x1).
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, dilation: int = 1, ratio: float = 0.5,
                 gwc_groups: int = 2, groups: int = 1, norm_layer: Type[nn.Module] = nn.BatchNorm2d, device=None,
                 dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        if groups != 1:
            raise ValueError(f'SPConv2d has no grouped form (groups={groups}): use it in blocks with cardinality 1')
        rep_chs = int(in_chs * ratio)
        if not 0 < rep_chs < in_chs:
            raise ValueError(
                f'SPConv ratio {ratio} splits {in_chs} channels into {rep_chs} representative and '
                f'{in_chs - rep_chs} redundant ones; both parts must be non-empty')
        if rep_chs % gwc_groups or out_chs % gwc_groups:
            raise ValueError(
                f'SPConv: the {rep_chs} representative channels (int({in_chs} * {ratio})) and the {out_chs} output '
                f'channels must be divisible by the 3x3 groups ({gwc_groups})')
        if stride > 1 and dilation > 1:
            raise ValueError('SPConv: stride > 1 and dilation > 1 together are not supported')
        self.in_chs = in_chs
        self.out_chs = out_chs
        self.rep_chs = rep_chs
        self.red_chs = in_chs - rep_chs
        self.stride = stride
        self.dilation = dilation

        self.gwc = nn.Conv2d(
            rep_chs, out_chs, 3, stride=stride, padding=dilation, dilation=dilation, groups=gwc_groups, bias=False,
            **dd)
        self.pwc = nn.Conv2d(rep_chs, out_chs, 1, bias=False, **dd)
        self.conv1x1 = nn.Conv2d(self.red_chs, out_chs, 1, bias=True, **dd)
        # ceil_mode: a partial last window averages the real elements only, so the pooled paths give
        # ceil(H / stride) like the strided 3x3; on even inputs (the only ones the reference accepts) it is a no-op
        self.pool = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()
        self.bn1 = norm_layer(out_chs, **dd)
        self.bn2 = norm_layer(out_chs, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_rep = x[:, :self.rep_chs]
        x_red = x[:, self.rep_chs:]
        out_rep = self.bn1(self.gwc(x_rep) + self.pwc(self.pool(x_rep)))
        out_red = self.bn2(self.conv1x1(self.pool(x_red)))
        # per-channel softmax over the two paths' global averages (adaptive_avg_pool2d as the reference: fvcore
        # counts it); B x C x 1 x 1 weights without squeeze, so batch 1 works
        logits = torch.stack([F.adaptive_avg_pool2d(out_rep, 1), F.adaptive_avg_pool2d(out_red, 1)], dim=0)
        w = torch.softmax(logits, dim=0)
        return out_red * w[1] + out_rep * w[0]

    @torch.no_grad()
    def fuse(self, norm: Optional[nn.Module] = None, merge: str = 'auto') -> 'SPConv2dFused':
        """The inference form (see `SPConv2dFused`), optionally absorbing `norm`, the BatchNorm applied next.

        `merge` picks which parallel convs become one: 'none' (gwc, pwc and conv1x1 stay three convs), 'pointwise'
        (pwc and conv1x1 as one 1x1 over the whole input: a 2-group conv at ratio 1/2, dense with zero blocks
        otherwise), 'kxk' (pwc folded into the centre of a dense 3x3 with gwc; stride-1 layers only) or 'auto'
        (= 'none': fastest on CPU at batch 1, within 2 % of 'kxk' at batch 8; benchmarks/spconv_cpu.py,
        docs/spconv_resnet.md). All give the same outputs within float32 rounding.
        """
        if merge == 'auto':
            merge = 'none'
        if merge not in ('none', 'pointwise', 'kxk'):
            raise ValueError(f"merge must be 'auto', 'none', 'pointwise' or 'kxk', got {merge!r}")
        if merge == 'kxk' and self.stride != 1:
            merge = 'none'  # the pooled 1x1 does not fold into a strided 3x3 exactly at odd sizes
        s1, t1 = norm_scale_shift(self.bn1)
        s2, t2 = norm_scale_shift(self.bn2)
        gwc_w = self.gwc.weight * s1.view(-1, 1, 1, 1)
        pwc_w = self.pwc.weight * s1.view(-1, 1, 1, 1)
        red_w = self.conv1x1.weight * s2.view(-1, 1, 1, 1)
        rep_b = t1
        red_b = self.conv1x1.bias * s2 + t2
        # the norm after the fusion: s * (w * a + (1 - w) * b) + t == w * (s * a + t) + (1 - w) * (s * b + t),
        # and the softmax weight w = sigmoid(mean(a - b)) = sigmoid(mean(a' - b') / s) with a' = s * a + t
        inv_scale = torch.ones_like(s1)
        if norm is not None:
            so, to = norm_scale_shift(norm)
            gwc_w, pwc_w, red_w = (w * so.view(-1, 1, 1, 1) for w in (gwc_w, pwc_w, red_w))
            rep_b, red_b = rep_b * so + to, red_b * so + to
            # a zero scale makes both paths the constant t: any weight gives the same output
            inv_scale = torch.where(so != 0, 1. / torch.where(so != 0, so, torch.ones_like(so)), torch.zeros_like(so))

        if merge == 'kxk':
            dense = gwc_w.new_zeros(self.out_chs, self.rep_chs, 3, 3)
            g = self.gwc.groups
            oc, ic = self.out_chs // g, self.rep_chs // g
            for i in range(g):
                dense[i * oc:(i + 1) * oc, i * ic:(i + 1) * ic] = gwc_w[i * oc:(i + 1) * oc]
            dense[:, :, 1, 1] += pwc_w[:, :, 0, 0]
            conv_rep = conv_like(self.gwc, dense, rep_b, groups=1)
            conv_pw = conv_like(self.conv1x1, red_w, red_b)
        elif merge == 'pointwise':
            conv_rep = conv_like(self.gwc, gwc_w, rep_b)
            if self.rep_chs == self.red_chs:  # block-diagonal: a 2-group 1x1
                pw_w, groups = torch.cat([pwc_w, red_w], 0), 2
            else:
                pw_w, groups = gwc_w.new_zeros(2 * self.out_chs, self.in_chs, 1, 1), 1
                pw_w[:self.out_chs, :self.rep_chs] = pwc_w
                pw_w[self.out_chs:, self.rep_chs:] = red_w
            conv_pw = conv_like(self.pwc, pw_w, torch.cat([torch.zeros_like(red_b), red_b]), groups=groups)
        else:
            conv_rep = conv_like(self.gwc, gwc_w, rep_b)
            conv_pw = conv_like(self.conv1x1, red_w, red_b)
        extra = conv_like(self.pwc, pwc_w, None) if merge == 'none' else None
        return SPConv2dFused(
            conv_rep, conv_pw, inv_scale, self.rep_chs, self.out_chs, self.stride, merge, pwc=extra)


class SPConv2dFused(nn.Module):
    """Inference form of `SPConv2d` (from `SPConv2d.fuse()`): BatchNorms folded, parallel convs merged.

    With `a` the representative and `b` the redundant path (both already scaled by the folded norms), the output
    is `b + sigmoid(mean(a - b) * inv_scale) * (a - b)`: the two-way softmax is a sigmoid of the difference, and
    `inv_scale` undoes the scale of a norm folded in from after the layer. `merge` says which convs were merged:
    'none' (`conv_rep` = gwc, `pwc`, `conv_pw` = conv1x1), 'pointwise' (`conv_pw` = [pwc | conv1x1] over the whole
    input) or 'kxk' (`conv_rep` = dense 3x3 holding gwc and pwc, `conv_pw` = conv1x1).
    """

    def __init__(self, conv_rep: nn.Conv2d, conv_pw: nn.Conv2d, inv_scale: torch.Tensor, rep_chs: int, out_chs: int,
                 stride: int, merge: str, pwc: Optional[nn.Conv2d] = None):
        super().__init__()
        self.rep_chs = rep_chs
        self.out_chs = out_chs
        self.merge = merge
        self.conv_rep = conv_rep
        self.pwc = pwc if pwc is not None else nn.Identity()
        self.conv_pw = conv_pw
        self.pool = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()
        self.register_buffer('inv_scale', inv_scale.reshape(1, -1, 1, 1).clone())
        self.merge_pointwise = merge == 'pointwise'
        self.separate_pwc = merge == 'none'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_rep = x[:, :self.rep_chs]
        a = self.conv_rep(x_rep)
        if self.merge_pointwise:
            y = self.conv_pw(self.pool(x))
            a = a + y[:, :self.out_chs]
            b = y[:, self.out_chs:]
        else:
            b = self.conv_pw(self.pool(x[:, self.rep_chs:]))
            if self.separate_pwc:
                a = a + self.pwc(self.pool(x_rep))
        d = a - b
        w = torch.sigmoid(F.adaptive_avg_pool2d(d, 1) * self.inv_scale)
        return torch.addcmul(b, w, d)
