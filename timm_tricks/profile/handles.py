"""fvcore operator handles for what fvcore 0.1.5 does not count by itself.

fvcore's unit is the MAC (one fused multiply-add = 1 "flop"). Besides conv / matmul it counts BatchNorm and the other
norms, adaptive average pooling and up-sampling; every other op is either in its silent ignore list or "unsupported"
(counted 0 with a logged warning). We give each op our models run a handle, so that `unsupported_ops` only lists
what nobody has looked at yet.
"""
from collections import Counter
from math import prod
from typing import Any, Callable, Dict, List

from ._fvcore import generic_activation_jit, get_shape

Handle = Callable[[List[Any], List[Any]], Counter]

DEFORM_CONV2D_OP = 'torchvision::deform_conv2d'
AFFINE_GRID_OP = 'aten::affine_grid_generator'

# Ops that cost no multiply-add under fvcore's convention (the convention of timm's `infer_gmacs` and of every
# "fvcore total" in our specs, which stay reproducible only if these stay at 0): element-wise arithmetic and
# activations, softmax, pooling other than adaptive average pooling, reductions such as the `mean` of SE gates,
# padding and concatenation. Pure shape ops (view, slice, ...) are left to fvcore's own ignore list.
ZERO_COST_OPS = (
    'aten::add', 'aten::add_', 'aten::sub', 'aten::sub_', 'aten::rsub', 'aten::mul', 'aten::mul_',
    'aten::div', 'aten::div_', 'aten::neg', 'aten::expand_as',
    'aten::relu', 'aten::relu_', 'aten::relu6', 'aten::hardtanh', 'aten::hardtanh_',
    'aten::leaky_relu', 'aten::leaky_relu_', 'aten::elu', 'aten::elu_', 'aten::gelu', 'aten::silu', 'aten::silu_',
    'aten::mish', 'aten::mish_', 'aten::sigmoid', 'aten::sigmoid_', 'aten::hardsigmoid', 'aten::hardsigmoid_',
    'aten::hardswish', 'aten::hardswish_', 'aten::tanh', 'aten::tanh_', 'aten::softmax', 'aten::log_softmax',
    'aten::max_pool2d', 'aten::avg_pool2d', 'aten::adaptive_max_pool2d', 'aten::mean', 'aten::sum', 'aten::amax',
    'aten::pad', 'aten::constant_pad_nd', 'aten::reflection_pad2d', 'aten::replication_pad2d',
    'aten::cat', 'aten::stack',
    # plug-in layers (timm_tricks.layers): NAM's |gamma|, DyReLU's max of two pieces, CoordConv's radius channel
    'aten::abs', 'aten::maximum', 'aten::sqrt',
)


def zero_cost(inputs: List[Any], outputs: List[Any]) -> Counter:
    return Counter()


def deform_conv2d_macs(include_sampling: bool) -> Handle:
    """MACs of `torchvision::deform_conv2d`, whose schema is (input, weight, offset, mask, bias, stride_h, ...).

    The conv-equivalent part, N·Cout·Hout·Wout·(Cin/groups)·kh·kw, is what the same layer would cost as a plain conv
    (`weight` already holds Cin/groups). `include_sampling` adds N·Cin·kh·kw·Hout·Wout·5: 4 MACs of bilinear
    interpolation and 1 of modulation per sampled input value, booked separately as `deform_sampling`.
    """
    def handle(inputs: List[Any], outputs: List[Any]) -> Counter:
        input_shape, weight_shape, output_shape = get_shape(inputs[0]), get_shape(inputs[1]), get_shape(outputs[0])
        macs = Counter({'deform_conv2d': prod(output_shape) * prod(weight_shape[1:])})
        if include_sampling:
            batch, in_channels = input_shape[:2]
            macs['deform_sampling'] = batch * in_channels * prod(weight_shape[2:]) * prod(output_shape[2:]) * 5
        return macs
    return handle


def affine_grid_macs(inputs: List[Any], outputs: List[Any]) -> Counter:
    """`affine_grid` (a spatial transformer's sampling grid): each of the N·H·W output points is a (2 x 3) affine
    map of its homogeneous base coordinates, 6 MACs, i.e. 3 per output value. (The bilinear `grid_sampler` that
    follows is fvcore's own handle: 4 per output element, like its bilinear up-sampling.)"""
    return Counter({'affine_grid': prod(get_shape(outputs[0])) * 3})


def flop_handles(include_deform_sampling: bool = False) -> Dict[str, Handle]:
    """Handles to add to a `FlopCountAnalysis` on top of fvcore's defaults."""
    handles: Dict[str, Handle] = {op: zero_cost for op in ZERO_COST_OPS}
    handles[DEFORM_CONV2D_OP] = deform_conv2d_macs(include_sampling=include_deform_sampling)
    handles[AFFINE_GRID_OP] = affine_grid_macs
    return handles


def activation_handles() -> Dict[str, Handle]:
    """Handles to add to an `ActivationCountAnalysis`: it counts the outputs of conv and matmul ops, and a
    deformable conv is a conv."""
    return {DEFORM_CONV2D_OP: generic_activation_jit('deform_conv2d')}
