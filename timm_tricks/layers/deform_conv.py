"""Modulated deformable convolution (DCNv2, Zhu et al., CVPR 2019) on `torchvision.ops.deform_conv2d`.

The module and parameter names are mmcv's `ModulatedDeformConv2dPack` (`weight`, `bias`, `conv_offset.weight`,
`conv_offset.bias`), so a backbone trained with mmcv/mmdetection loads after stripping its `backbone.` prefix.
No mmcv dependency: the compute op is torchvision's, whose offset / mask layout equals mmcv's (per deformable
group, offset channel 2*(i*kw+j) is dy and 2*(i*kw+j)+1 is dx of tap (i, j); mask channel i*kw+j).

Offset / mask predictor: an ordinary conv over the same input with the main conv's kernel size, stride, padding
and dilation, so its output always has the deformable conv's output size, for any input size. It predicts
`deform_groups * 3 * kh * kw` channels: the first two thirds are the offsets, the last third the mask logits
(mask = sigmoid). It is zero-initialised as in the paper: offsets 0, mask 0.5.

Compute: on CPU, `deform_conv2d_cpu` (bilinear samples by grid_sample + one oneDNN conv, multithreaded; the same
function, 3-8x faster than torchvision's serial CPU kernel, for inference and training). Elsewhere (GPU, meta),
under CPU autocast and while `torch.jit` traces (ONNX export, fvcore's FLOP count, both of which know
`torchvision::deform_conv2d`), the
registered op `torch.ops.torchvision.deform_conv2d` is called directly rather than the Python wrapper
`torchvision.ops.deform_conv2d`, whose argument checks are Python control flow that `torch.fx` cannot trace.
The dispatching function `deform_conv2d` is an FX leaf (`torch.fx.wrap`), so the layer traces with plain
`torch.fx`; it is also scriptable and compilable.

Mixed precision: torchvision registers an autocast kernel for the op on CUDA only (it runs the op in float32 and
returns the input's dtype); its CPU kernel has no bfloat16 and rejects mixed dtypes, so under CPU autocast a
DCN model failed with "expected scalar type Float but found BFloat16". Importing this module registers the same
float32 autocast kernel for CPU (`AutocastCPU`), unless torchvision already provides one; under CPU autocast the
layer therefore calls torchvision's op (a TorchScript-scripted layer cannot see the autocast state and keeps the
tensor-op path, whose conv then runs in the autocast dtype).
"""
import copy
import math
from typing import Optional, Tuple, Union

import torch
import torch.fx
import torchvision  # noqa: F401  (registers torch.ops.torchvision.deform_conv2d)
from torch import nn

from .deform_conv_cpu import deform_conv2d_cpu
from .fold import norm_scale_shift

__all__ = ['ModulatedDeformConv2d', 'deform_conv2d']

IntOrPair = Union[int, Tuple[int, int]]

_OP = 'torchvision::deform_conv2d'


def _deform_conv2d_autocast_cpu(input: torch.Tensor, weight: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor,
                                bias: torch.Tensor, stride_h: int, stride_w: int, pad_h: int, pad_w: int, dil_h: int,
                                dil_w: int, groups: int, offset_groups: int, use_mask: bool) -> torch.Tensor:
    """torchvision's CUDA autocast policy for deform_conv2d, on CPU: compute in float32, return the input dtype."""
    with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU)):
        out = torch.ops.torchvision.deform_conv2d(
            input.float(), weight.float(), offset.float(), mask.float(), bias.float(),
            stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, offset_groups, use_mask)
    return out.to(input.dtype)


def _register_cpu_autocast() -> Optional[torch.library.Library]:
    """Best effort: on a torch / torchvision whose dispatcher API differs, CPU autocast simply stays unsupported."""
    try:
        if torch._C._dispatch_has_kernel_for_dispatch_key(_OP, 'AutocastCPU'):
            return None
        lib = torch.library.Library('torchvision', 'IMPL')
        lib.impl('deform_conv2d', _deform_conv2d_autocast_cpu, 'AutocastCPU')
    except (AttributeError, RuntimeError):
        return None
    return lib


_AUTOCAST_CPU_LIB = _register_cpu_autocast()  # kept alive: the registration lasts as long as the Library object


def _cpu_autocast_enabled() -> bool:
    if torch.jit.is_scripting():
        return False  # TorchScript cannot read the autocast state (torch 2.14 crashes); scripts take the fast path
    return torch.is_autocast_enabled('cpu')


def deform_conv2d(input: torch.Tensor, weight: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor,
                  bias: Optional[torch.Tensor], stride: Tuple[int, int], padding: Tuple[int, int],
                  dilation: Tuple[int, int], groups: int, offset_groups: int) -> torch.Tensor:
    """Modulated deformable conv (torchvision's function and layouts): the fast tensor-op path on CPU, torchvision's
    kernel on other devices, under `torch.jit` tracing (so exporters and FLOP counters see the op) and under CPU
    autocast (whose float32 policy is registered for the op above)."""
    if input.is_cpu and not torch.jit.is_tracing() and not _cpu_autocast_enabled():
        return deform_conv2d_cpu(input, weight, offset, mask, bias, stride, padding, dilation, groups, offset_groups)
    if bias is None:
        bias = input.new_zeros(weight.shape[0])
    return torch.ops.torchvision.deform_conv2d(
        input, weight, offset, mask, bias, stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1],
        groups, offset_groups, True)


torch.fx.wrap('deform_conv2d')  # an FX leaf: its device / tracing checks are not traceable control flow


def _pair(v: IntOrPair) -> Tuple[int, int]:
    if isinstance(v, int):
        return v, v
    if len(v) != 2:
        raise ValueError(f'expected an int or a pair of ints, got {v!r}')
    return int(v[0]), int(v[1])


class ModulatedDeformConv2d(nn.Module):
    """DCNv2 layer: `y = sum_k w_k * x(p + p_k + dp_k) * m_k` with `dp`, `m` predicted by `conv_offset`.

    Args:
        in_channels / out_channels / kernel_size / stride / padding / dilation / groups / bias: as `nn.Conv2d`;
            `padding=None` gives `dilation * (kernel_size // 2)` ("same" for odd kernels at stride 1).
        deform_groups: number of offset / mask groups; each group of `in_channels // deform_groups` input
            channels gets its own offsets and mask. Must divide `in_channels`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair = 3, stride: IntOrPair = 1,
                 padding: Optional[IntOrPair] = None, dilation: IntOrPair = 1, groups: int = 1, deform_groups: int = 1,
                 bias: bool = False, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f'groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}')
        if deform_groups < 1 or in_channels % deform_groups:
            raise ValueError(f'deform_groups={deform_groups} must be >= 1 and divide in_channels={in_channels}')
        kh, kw = _pair(kernel_size)
        dilation = _pair(dilation)
        if padding is None:
            padding = (dilation[0] * (kh // 2), dilation[1] * (kw // 2))
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = (kh, kw)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = dilation
        self.groups = groups
        self.deform_groups = deform_groups
        # channels of conv_offset's output that are offsets (dy, dx per tap and group); the rest are mask logits
        self.offset_channels = 2 * deform_groups * kh * kw

        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kh, kw, **dd))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, **dd))
        else:
            self.register_parameter('bias', None)
        self.conv_offset = nn.Conv2d(
            in_channels, 3 * deform_groups * kh * kw, (kh, kw), stride=self.stride, padding=self.padding,
            dilation=self.dilation, bias=True, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Main weight as the network's other convs (Kaiming, fan-out); the offset / mask predictor zeroed."""
        nn.init.kaiming_normal_(self.weight, mode='fan_out', nonlinearity='relu')
        if self.bias is not None:
            fan_in = self.weight[0].numel()
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)
        self.reset_offset()

    def reset_offset(self) -> None:
        """Zero the offset / mask predictor: offsets 0 and mask sigmoid(0) = 0.5, the paper's initial values."""
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    @torch.no_grad()
    def fuse(self, norm: Optional[nn.Module] = None) -> 'ModulatedDeformConv2d':
        """A copy with `norm` (inference-mode BatchNorm of the output) folded into weight and bias; the mask scales
        the sampled inputs before the weight, so the fold is exact. Without a norm, itself."""
        if norm is None:
            return self
        scale, shift = norm_scale_shift(norm)
        fused = copy.deepcopy(self)
        fused.weight.mul_(scale.view(-1, 1, 1, 1))
        bias = shift if self.bias is None else self.bias * scale + shift
        fused.bias = nn.Parameter(bias.to(self.weight.dtype))
        return fused

    def offset_and_mask(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The predicted offsets (N, 2*dg*kh*kw, Ho, Wo) and the mask in (0, 1) (N, dg*kh*kw, Ho, Wo)."""
        out = self.conv_offset(x)
        return out[:, :self.offset_channels], out[:, self.offset_channels:].sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset, mask = self.offset_and_mask(x)
        return deform_conv2d(
            x, self.weight, offset, mask, self.bias, self.stride, self.padding, self.dilation, self.groups,
            self.deform_groups)

    def extra_repr(self) -> str:
        s = (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, '
             f'padding={self.padding}')
        if self.dilation != (1, 1):
            s += f', dilation={self.dilation}'
        if self.groups != 1:
            s += f', groups={self.groups}'
        if self.deform_groups != 1:
            s += f', deform_groups={self.deform_groups}'
        if self.bias is None:
            s += ', bias=False'
        return s
