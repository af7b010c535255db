"""The tensor-op deformable conv (`deform_conv2d_cpu`) against torchvision's kernel, the reference.

Values (float32, <= 1e-5 of the output's scale) and gradients of input, offset, mask, weight and bias (float64)
over random offsets - some far outside the map, some straddling its border -, masks, strides, paddings, dilations,
conv groups, offset groups and odd sizes; then the layer's dispatch and scripting.
"""
import warnings

import pytest
import torch
import torchvision
from torch import nn

from timm_tricks.layers import ModulatedDeformConv2d
from timm_tricks.layers.deform_conv import deform_conv2d
from timm_tricks.layers.deform_conv_cpu import deform_conv2d_cpu

CASES = [
    # in/out channels, input size, kernel, stride, padding, dilation, groups, offset groups, offset scale
    dict(cin=8, cout=6, size=(9, 11), kernel=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1,
         offset_groups=1, scale=2.0),
    dict(cin=8, cout=12, size=(13, 10), kernel=(3, 3), stride=(2, 2), padding=(3, 3), dilation=(3, 3), groups=2,
         offset_groups=4, scale=5.0),
    dict(cin=6, cout=4, size=(7, 5), kernel=(3, 2), stride=(2, 1), padding=(0, 2), dilation=(1, 2), groups=2,
         offset_groups=3, scale=20.0),
    dict(cin=4, cout=8, size=(5, 6), kernel=(1, 1), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=4,
         offset_groups=2, scale=1.5),
    dict(cin=3, cout=5, size=(1, 1), kernel=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1,
         offset_groups=1, scale=0.7),
    dict(cin=4, cout=4, size=(6, 8), kernel=(5, 5), stride=(3, 2), padding=(2, 2), dilation=(1, 1), groups=1,
         offset_groups=4, scale=300.0),
]


def _inputs(cfg, dtype, generator, batch=2):
    kh, kw = cfg['kernel']
    h, w = cfg['size']
    out_h = (h + 2 * cfg['padding'][0] - cfg['dilation'][0] * (kh - 1) - 1) // cfg['stride'][0] + 1
    out_w = (w + 2 * cfg['padding'][1] - cfg['dilation'][1] * (kw - 1) - 1) // cfg['stride'][1] + 1
    taps = cfg['offset_groups'] * kh * kw
    x = torch.randn(batch, cfg['cin'], h, w, dtype=dtype, generator=generator)
    weight = torch.randn(cfg['cout'], cfg['cin'] // cfg['groups'], kh, kw, dtype=dtype, generator=generator)
    offset = torch.randn(batch, 2 * taps, out_h, out_w, dtype=dtype, generator=generator) * cfg['scale']
    # a quarter of the offsets are about -H: from far above the map down to its top border band (-1.5, 0.5),
    # where samples are partly outside and their corners straddle the edge
    border = torch.rand(offset.shape, dtype=dtype, generator=generator) < 0.25
    offset = torch.where(border, torch.rand(offset.shape, dtype=dtype, generator=generator) * 2 - 1.5 - h, offset)
    mask = torch.rand(batch, taps, out_h, out_w, dtype=dtype, generator=generator)
    bias = torch.randn(cfg['cout'], dtype=dtype, generator=generator)
    return x, weight, offset, mask, bias


def _reference(x, weight, offset, mask, bias, cfg):
    return torchvision.ops.deform_conv2d(
        x, offset, weight, bias, stride=cfg['stride'], padding=cfg['padding'], dilation=cfg['dilation'], mask=mask)


def _ours(x, weight, offset, mask, bias, cfg):
    return deform_conv2d_cpu(
        x, weight, offset, mask, bias, cfg['stride'], cfg['padding'], cfg['dilation'], cfg['groups'],
        cfg['offset_groups'])


@pytest.mark.parametrize('cfg', CASES)
def test_values_equal_torchvision(cfg):
    args = _inputs(cfg, torch.float32, torch.Generator().manual_seed(0))
    x = args[0]
    expected = _reference(*args, cfg)
    actual = _ours(*args, cfg)
    assert actual.shape == expected.shape
    scale = expected.abs().max().item()
    assert scale > 0
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * scale)
    channels_last = _ours(x.contiguous(memory_format=torch.channels_last), *args[1:], cfg)
    torch.testing.assert_close(channels_last, actual)


def test_samples_outside_the_map_are_zero():
    """Every sample beyond (-1, H) x (-1, W): output = bias, in both implementations."""
    cfg = CASES[0]
    x, weight, offset, mask, bias = _inputs(cfg, torch.float32, torch.Generator().manual_seed(1))
    far = offset.sign() * 50 + torch.where(offset >= 0, 1.0, -1.0) * cfg['size'][1]
    expected = bias.view(1, -1, 1, 1).expand(2, -1, *offset.shape[-2:])
    torch.testing.assert_close(_ours(x, weight, far, mask, bias, cfg), expected)
    torch.testing.assert_close(_reference(x, weight, far, mask, bias, cfg), expected)


@pytest.mark.parametrize('cfg', CASES[:3] + CASES[4:5])
def test_gradients_equal_torchvision(cfg):
    """Gradients of all five tensors, float64 so that only the summation order differs."""
    args = _inputs(cfg, torch.float64, torch.Generator().manual_seed(2))
    grad_out = torch.randn_like(_reference(*args, cfg))
    grads = []
    for fn in (_reference, _ours):
        leaves = [a.clone().requires_grad_(True) for a in args]
        fn(*leaves, cfg).backward(grad_out)
        grads.append([leaf.grad for leaf in leaves])
    for name, expected, actual in zip(('input', 'weight', 'offset', 'mask', 'bias'), *grads):
        assert expected is not None and actual is not None, name
        torch.testing.assert_close(actual, expected, rtol=1e-7, atol=1e-7 * expected.abs().max().item(), msg=name)
    assert grads[0][2].abs().sum() > 0  # the offsets do move the samples


def _layer():
    torch.manual_seed(0)
    layer = ModulatedDeformConv2d(8, 6, 3, stride=2, deform_groups=2, groups=2, bias=True).eval()
    nn.init.normal_(layer.conv_offset.weight, std=0.5)
    return layer


def test_layer_dispatch_and_scripting():
    """On CPU the layer runs the tensor-op path (equal to torchvision's kernel on the same offsets and mask);
    `torch.jit.trace` (ONNX export, fvcore) records torchvision's op; scripted equals eager."""
    layer = _layer()
    x = torch.randn(2, 8, 11, 9)
    with torch.no_grad():
        offset, mask = layer.offset_and_mask(x)
        expected = torchvision.ops.deform_conv2d(
            x, offset, layer.weight, layer.bias, stride=2, padding=1, mask=mask)
        out = layer(x)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            traced = torch.jit.trace(layer, x)
            scripted = torch.jit.script(layer)
            scripted_fn = torch.jit.script(deform_conv2d_cpu)
        assert 'torchvision::deform_conv2d' in str(traced.graph)
        torch.testing.assert_close(traced(x), expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
        torch.testing.assert_close(scripted(x), out)
        torch.testing.assert_close(
            scripted_fn(x, layer.weight, offset, mask, layer.bias, (2, 2), (1, 1), (1, 1), 2, 2), out)
        fx = torch.fx.symbolic_trace(layer)
        assert any(n.op == 'call_function' and n.target is deform_conv2d for n in fx.graph.nodes)
        torch.testing.assert_close(fx(x), out)


def test_layer_trains_through_the_fast_path():
    """Training on CPU differentiates through the tensor ops: the gradients equal torchvision's kernel's."""
    layer = _layer().train()
    x = torch.randn(2, 8, 11, 9, requires_grad=True)
    layer(x).square().sum().backward()
    ours = [x.grad.clone()] + [p.grad.clone() for p in layer.parameters()]
    for p in layer.parameters():
        p.grad = None
    x.grad = None
    offset, mask = layer.offset_and_mask(x)
    torchvision.ops.deform_conv2d(
        x, offset, layer.weight, layer.bias, stride=2, padding=1, mask=mask).square().sum().backward()
    reference = [x.grad] + [p.grad for p in layer.parameters()]
    for actual, expected in zip(ours, reference, strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
