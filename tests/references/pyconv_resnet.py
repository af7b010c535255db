"""PyConvResNet reference, written from pyconv.md alone: a state dict generated in the authors' key layout
(`conv2.conv2_k`, `downsample.1/.2`, no stem pool) and a functional forward that reads every kernel size,
group count and channel split from that state dict's shapes, not from our module tables.
"""
import math

import torch
import torch.nn.functional as F

# pyconv.md §2: per stage, (kernels, groups, groups in HG, share of the output per level)
SPEC_PYRAMID = {
    1: ((3, 5, 7, 9), (1, 4, 8, 16), (32, 32, 32, 32), (4, 4, 4, 4)),
    2: ((3, 5, 7), (1, 4, 8), (32, 64, 64), (4, 4, 2)),
    3: ((3, 5), (1, 4), (32, 64), (2, 2)),
    4: ((3,), (1,), (32,), (1,)),
}
SPEC_DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _bn(sd, prefix, chs, g):
    sd[prefix + '.weight'] = torch.rand(chs, generator=g) + 0.5
    sd[prefix + '.bias'] = torch.randn(chs, generator=g) * 0.1
    sd[prefix + '.running_mean'] = torch.randn(chs, generator=g) * 0.1
    sd[prefix + '.running_var'] = torch.rand(chs, generator=g) + 0.5
    sd[prefix + '.num_batches_tracked'] = torch.tensor(1000)


def _conv(sd, key, out_chs, in_chs, k, g):
    fan_in = in_chs * k * k
    sd[key] = torch.randn(out_chs, in_chs, k, k, generator=g) * math.sqrt(2. / fan_in)


def _pyramid(sd, prefix, in_chs, out_chs, stage, hg, g):
    kernels, groups, hg_groups, shares = SPEC_PYRAMID[stage]
    groups = hg_groups if hg else groups
    if len(kernels) == 1:
        _conv(sd, prefix + '.weight', out_chs, in_chs // groups[0], kernels[0], g)
        return
    for i, (k, grp, share) in enumerate(zip(kernels, groups, shares)):
        _conv(sd, f'{prefix}.conv2_{i + 1}.weight', out_chs // share, in_chs // grp, k, g)


def authors_state_dict(depth, hg=False, seed=0):
    """A random state dict in the authors' layout (pyconv.md §4), with non-trivial BN statistics."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    _conv(sd, 'conv1.weight', 64, 3, 7, g)
    _bn(sd, 'bn1', 64, g)
    basic = depth < 50
    planes_mult, expansion = (2, 2) if hg else (1, 1 if basic else 4)
    in_chs = 64
    for stage, n in enumerate(SPEC_DEPTHS[depth], start=1):
        planes = 64 * 2 ** (stage - 1) * planes_mult
        out_chs = planes * expansion
        for b in range(n):
            p = f'layer{stage}.{b}.'
            if basic:
                _pyramid(sd, p + 'conv1', in_chs, planes, stage, hg, g)
                _bn(sd, p + 'bn1', planes, g)
                _conv(sd, p + 'conv2.weight', planes, planes, 1, g)
                _bn(sd, p + 'bn2', planes, g)
            else:
                _conv(sd, p + 'conv1.weight', planes, in_chs, 1, g)
                _bn(sd, p + 'bn1', planes, g)
                _pyramid(sd, p + 'conv2', planes, planes, stage, hg, g)
                _bn(sd, p + 'bn2', planes, g)
                _conv(sd, p + 'conv3.weight', out_chs, planes, 1, g)
                _bn(sd, p + 'bn3', out_chs, g)
            if b == 0 and in_chs != out_chs:
                _conv(sd, p + 'downsample.1.weight', out_chs, in_chs, 1, g)
                _bn(sd, p + 'downsample.2', out_chs, g)
            in_chs = out_chs
    sd['fc.weight'] = torch.randn(1000, in_chs, generator=g) * 0.01
    sd['fc.bias'] = torch.randn(1000, generator=g) * 0.01
    return sd


def _ref_bn(x, sd, prefix):
    return F.batch_norm(x, sd[prefix + '.running_mean'], sd[prefix + '.running_var'],
                        sd[prefix + '.weight'], sd[prefix + '.bias'], training=False, eps=1e-5)


def _ref_conv(x, w, stride=1):
    """A conv whose groups and padding follow from its weight: groups = C_in / w.shape[1], pad = k // 2."""
    return F.conv2d(x, w, stride=stride, padding=w.shape[-1] // 2, groups=x.shape[1] // w.shape[1])


def _ref_pyconv(x, sd, prefix, stride):
    if prefix + '.weight' in sd:
        return _ref_conv(x, sd[prefix + '.weight'], stride)
    levels = sorted(k for k in sd if k.startswith(prefix + '.conv2_'))
    return torch.cat([_ref_conv(x, sd[k], stride) for k in levels], dim=1)


def reference_forward(sd, x):
    """The authors' forward (pyconv.md §2): no stem pool, every stage strided, pool + 1x1 shortcut."""
    x = F.relu(_ref_bn(F.conv2d(x, sd['conv1.weight'], stride=2, padding=3), sd, 'bn1'))
    stage = 1
    while f'layer{stage}.0.bn1.weight' in sd:
        b = 0
        while f'layer{stage}.{b}.bn1.weight' in sd:
            p = f'layer{stage}.{b}.'
            stride = 2 if b == 0 else 1
            shortcut = F.max_pool2d(x, 3, 2, 1) if b == 0 else x
            if p + 'downsample.1.weight' in sd:
                shortcut = _ref_bn(F.conv2d(shortcut, sd[p + 'downsample.1.weight']), sd, p + 'downsample.2')
            if p + 'conv3.weight' in sd:
                out = F.relu(_ref_bn(F.conv2d(x, sd[p + 'conv1.weight']), sd, p + 'bn1'))
                out = F.relu(_ref_bn(_ref_pyconv(out, sd, p + 'conv2', stride), sd, p + 'bn2'))
                out = _ref_bn(F.conv2d(out, sd[p + 'conv3.weight']), sd, p + 'bn3')
            else:
                out = F.relu(_ref_bn(_ref_pyconv(x, sd, p + 'conv1', stride), sd, p + 'bn1'))
                out = _ref_bn(F.conv2d(out, sd[p + 'conv2.weight']), sd, p + 'bn2')
            x = F.relu(out + shortcut)
            b += 1
        stage += 1
    return F.linear(x.mean((2, 3)), sd['fc.weight'], sd['fc.bias'])
