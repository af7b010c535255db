"""SPConv-ResNet reference, written from /work/shared/specs/spconv.md only: plain functional ops on a state dict in
the authors' key layout (`code/resnet_sp.py` names), the authors' key / shape table, and apex's fp16 storage.
"""
import math

import torch
import torch.nn.functional as F

BOTTLENECK, BASIC = 'bottleneck', 'basic'
WIDTHS = (64, 128, 256, 512)


def _bn(x, sd, p):
    return F.batch_norm(
        x, sd[p + 'running_mean'], sd[p + 'running_var'], sd[p + 'weight'], sd[p + 'bias'], False, 0., 1e-5)


def _avg2(x, ceil=False):
    """2x2/2 average; with `ceil`, a partial last window averages its real elements (sum / count of them)."""
    if not ceil:
        return F.avg_pool2d(x, 2, 2)  # the authors' AvgPool2d(2, 2)
    pad = (0, x.shape[3] % 2, 0, x.shape[2] % 2)
    total = F.avg_pool2d(F.pad(x, pad), 2, 2) * 4
    count = F.avg_pool2d(F.pad(torch.ones_like(x[:1, :1]), pad), 2, 2) * 4
    return total / count


def ref_spconv(x, sd, p, stride, ratio, ceil=False):
    """SPConv_3x3 as spec §2: split, gwc (groups 2) + pwc, 1x1 with bias, two BNs, softmax over GAPs."""
    c = x.shape[1]
    r = int(c * ratio)
    x_rep, x_red = x[:, :r], x[:, r:]
    gwc = F.conv2d(x_rep, sd[p + 'gwc.weight'], stride=stride, padding=1, groups=2)
    if stride == 2:
        x_rep, x_red = _avg2(x_rep, ceil), _avg2(x_red, ceil)
    out3 = _bn(gwc + F.conv2d(x_rep, sd[p + 'pwc.weight']), sd, p + 'bn1.')
    out1 = _bn(F.conv2d(x_red, sd[p + 'conv1x1.weight'], sd[p + 'conv1x1.bias']), sd, p + 'bn2.')
    w = torch.softmax(torch.stack((out3.mean((2, 3)), out1.mean((2, 3))), 2), dim=2)
    return out1 * w[:, :, 1, None, None] + out3 * w[:, :, 0, None, None]


def ref_resnet(x, sd, block, layers, ratio, ceil=False):
    """torchvision ResNet with SPConv 3x3s (bottleneck: conv2; basic block: conv1 and conv2)."""
    x = F.relu(_bn(F.conv2d(x, sd['conv1.weight'], stride=2, padding=3), sd, 'bn1.'))
    x = F.max_pool2d(x, 3, 2, 1)
    for s, depth in enumerate(layers, start=1):
        for b in range(depth):
            p = f'layer{s}.{b}.'
            stride = 2 if s > 1 and b == 0 else 1
            identity = x
            if p + 'downsample.0.weight' in sd:
                identity = _bn(F.conv2d(x, sd[p + 'downsample.0.weight'], stride=stride), sd, p + 'downsample.1.')
            if block == BOTTLENECK:
                out = F.relu(_bn(F.conv2d(x, sd[p + 'conv1.weight']), sd, p + 'bn1.'))
                out = F.relu(_bn(ref_spconv(out, sd, p + 'conv2.', stride, ratio, ceil), sd, p + 'bn2.'))
                out = _bn(F.conv2d(out, sd[p + 'conv3.weight']), sd, p + 'bn3.')
            else:
                out = F.relu(_bn(ref_spconv(x, sd, p + 'conv1.', stride, ratio, ceil), sd, p + 'bn1.'))
                out = _bn(ref_spconv(out, sd, p + 'conv2.', 1, ratio, ceil), sd, p + 'bn2.')
            x = F.relu(out + identity)
    return F.linear(x.mean((2, 3)), sd['fc.weight'], sd['fc.bias'])


def authors_shapes(block, layers, ratio, num_classes=1000):
    """Key -> shape of the authors' state dict (spec §4), without prefixes."""
    shapes = {}

    def conv(name, shape, bias=False):
        shapes[name + '.weight'] = shape
        if bias:
            shapes[name + '.bias'] = shape[:1]

    def bn(name, n):
        for k in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{name}.{k}'] = (n,)
        shapes[name + '.num_batches_tracked'] = ()

    def spconv(name, cin, cout):
        r = int(cin * ratio)
        conv(name + '.gwc', (cout, r // 2, 3, 3))
        conv(name + '.pwc', (cout, r, 1, 1))
        conv(name + '.conv1x1', (cout, cin - r, 1, 1), bias=True)
        bn(name + '.bn1', cout)
        bn(name + '.bn2', cout)

    conv('conv1', (64, 3, 7, 7))
    bn('bn1', 64)
    in_chs = 64
    for s, (depth, w) in enumerate(zip(layers, WIDTHS), start=1):
        out_chs = w * 4 if block == BOTTLENECK else w
        for b in range(depth):
            p = f'layer{s}.{b}'
            if block == BOTTLENECK:
                conv(p + '.conv1', (w, in_chs, 1, 1))
                bn(p + '.bn1', w)
                spconv(p + '.conv2', w, w)
                bn(p + '.bn2', w)
                conv(p + '.conv3', (out_chs, w, 1, 1))
                bn(p + '.bn3', out_chs)
            else:
                spconv(p + '.conv1', in_chs, w)
                bn(p + '.bn1', w)
                spconv(p + '.conv2', w, w)
                bn(p + '.bn2', w)
            if b == 0 and (s > 1 or in_chs != out_chs):
                conv(p + '.downsample.0', (out_chs, in_chs, 1, 1))
                bn(p + '.downsample.1', out_chs)
            in_chs = out_chs
    shapes['fc.weight'] = (num_classes, in_chs)
    shapes['fc.bias'] = (num_classes,)
    return shapes


def authors_state_dict(block, layers, ratio, seed=0):
    """Random weights and non-trivial BN statistics in the authors' layout."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in authors_shapes(block, layers, ratio).items():
        if k.endswith('num_batches_tracked'):
            sd[k] = torch.tensor(1234)
        elif k.endswith('running_mean') or (k.endswith('.bias') and len(shape) == 1):
            sd[k] = torch.randn(shape, generator=g) * 0.1
        elif k.endswith('running_var'):
            sd[k] = torch.rand(shape, generator=g) * 0.5 + 0.75
        elif len(shape) == 1:  # BN weight
            sd[k] = torch.rand(shape, generator=g) * 0.5 + 0.5
        else:  # conv / fc weight, fan-in scaled so that 16 blocks keep the activations in range
            sd[k] = torch.randn(shape, generator=g) * math.sqrt(1.5 / math.prod(shape[1:]))
    return sd


def _is_bn_key(k):
    return '.bn' in k or k.startswith('bn1.') or 'downsample.1.' in k


def to_apex_half(sd):
    """apex `network_to_half`: conv / fc tensors in float16, BatchNorm kept in float32."""
    return {k: v.half() if v.is_floating_point() and not _is_bn_key(k) else v for k, v in sd.items()}
