"""BlurPool-ResNet reference, written from blurpool.md: a per-pixel loop blur with explicit reflect indexing, and a
functional forward of the authors' models that reads the authors' key layout (`maxpool.1.filt`, `conv3.0.filt` +
`conv3.1.weight`, `downsample.0.filt/.1/.2`) and uses the blur filters stored in that state dict. State dicts are
generated from torchvision's ResNets (keys and shapes only) and renamed into the authors' layout.
"""
import itertools
import math
import re

import torch
import torch.nn.functional as F
import torchvision

# blurpool.md §2: binomial rows, written out (not computed)
BINOMIAL_ROWS = {
    1: [1.], 2: [1., 1.], 3: [1., 2., 1.], 4: [1., 3., 3., 1.], 5: [1., 4., 6., 4., 1.],
    6: [1., 5., 10., 10., 5., 1.], 7: [1., 6., 15., 20., 15., 6., 1.],
}


def spec_filter(k):
    row = torch.tensor(BINOMIAL_ROWS[k])
    return torch.outer(row, row) / row.sum() ** 2


def naive_blur(x, k, mode):
    """Per-pixel loop: out[i, j] = sum_ab f[a] f[b] x[idx(2i + a - lo), idx(2j + b - lo)], lo = floor((k-1)/2).

    `mode='reflect'` mirrors about the edge sample (-1 -> 1, n -> n - 2); 'replicate' clamps to the edge.
    """
    f = spec_filter(k)
    lo = (k - 1) // 2
    n, c, h, w = x.shape
    out_h, out_w = math.ceil(h / 2), math.ceil(w / 2)

    def idx(i, size):
        if mode == 'replicate':
            return min(max(i, 0), size - 1)
        if i < 0:
            return -i
        return 2 * (size - 1) - i if i >= size else i

    out = torch.zeros(n, c, out_h, out_w, dtype=torch.float64)
    xd = x.double()
    for i, j in itertools.product(range(out_h), range(out_w)):
        for a, b in itertools.product(range(k), range(k)):
            out[:, :, i, j] += f[a, b].double() * xd[:, :, idx(2 * i + a - lo, h), idx(2 * j + b - lo, w)]
    return out.float()


def authors_state_dict(tv_arch, k, seed=0):
    """A random torchvision state dict renamed into the authors' layout (blurpool.md §4), with `filt` buffers and
    non-trivial BN statistics."""
    torch.manual_seed(seed)
    tv = getattr(torchvision.models, tv_arch)().state_dict()
    g = torch.Generator().manual_seed(seed)
    bottleneck = 'layer1.0.conv3.weight' in tv
    filt = spec_filter(k)
    sd = {}
    for key, v in tv.items():
        if key.endswith('running_var') or re.search(r'(bn\d|downsample\.1)\.weight$', key):
            v = torch.rand(v.shape, generator=g) + 0.5
        elif key.endswith(('running_mean', 'bias')):
            v = torch.randn(v.shape, generator=g) * 0.1
        elif key.endswith('num_batches_tracked'):
            v = torch.tensor(5000)
        m = re.match(r'^(layer[234]\.0\.)(.*)$', key)
        if m:
            p, rest = m.groups()
            rest = {'conv3.weight': 'conv3.1.weight'}.get(rest, rest) if bottleneck else \
                {'conv2.weight': 'conv2.1.weight'}.get(rest, rest)
            rest = re.sub(r'^downsample\.(\d)', lambda d: f'downsample.{int(d[1]) + 1}', rest)
            key = p + rest
        sd[key] = v
    sd['maxpool.1.filt'] = filt.expand(64, 1, k, k).clone()
    for stage in (2, 3, 4):
        p = f'layer{stage}.0.'
        inner = p + ('conv3' if bottleneck else 'conv2')
        sd[inner + '.0.filt'] = filt.expand(sd[inner + '.1.weight'].shape[1], 1, k, k).clone()
        sd[p + 'downsample.0.filt'] = filt.expand(sd[p + 'downsample.1.weight'].shape[1], 1, k, k).clone()
    return sd


def _ref_bn(x, sd, p):
    return F.batch_norm(x, sd[p + '.running_mean'], sd[p + '.running_var'], sd[p + '.weight'], sd[p + '.bias'],
                        training=False, eps=1e-5)


def _ref_conv(x, w):
    return F.conv2d(x, w, padding=w.shape[-1] // 2, groups=x.shape[1] // w.shape[1])


def _ref_blur(x, filt, fallback):
    """The authors' blur with their stored filter: reflect pad floor/ceil((k-1)/2), stride-2 depth-wise conv.
    `fallback=True` adds our documented deviation (replicate where reflection is impossible)."""
    k = filt.shape[-1]
    lo, hi = int((k - 1) / 2), int(math.ceil((k - 1) / 2))
    mode = 'replicate' if fallback and min(x.shape[-2:]) <= hi else 'reflect'
    return F.conv2d(F.pad(x, (lo, hi, lo, hi), mode=mode), filt, stride=2, groups=x.shape[1])


def reference_forward(sd, x, fallback=False):
    """The authors' anti-aliased ResNet forward (blurpool.md §2), driven by the keys present in `sd`."""
    x = F.relu(_ref_bn(F.conv2d(x, sd['conv1.weight'], stride=2, padding=3), sd, 'bn1'))
    x = _ref_blur(F.max_pool2d(x, 2, 1), sd['maxpool.1.filt'], fallback)
    for stage in (1, 2, 3, 4):
        b = 0
        while f'layer{stage}.{b}.bn1.weight' in sd:
            p = f'layer{stage}.{b}.'
            shortcut = x
            if p + 'downsample.0.filt' in sd:
                shortcut = _ref_blur(x, sd[p + 'downsample.0.filt'], fallback)
                shortcut = _ref_bn(F.conv2d(shortcut, sd[p + 'downsample.1.weight']), sd, p + 'downsample.2')
            elif p + 'downsample.0.weight' in sd:
                shortcut = _ref_bn(F.conv2d(x, sd[p + 'downsample.0.weight']), sd, p + 'downsample.1')
            if p + 'bn3.weight' in sd:  # bottleneck
                out = F.relu(_ref_bn(F.conv2d(x, sd[p + 'conv1.weight']), sd, p + 'bn1'))
                out = F.relu(_ref_bn(_ref_conv(out, sd[p + 'conv2.weight']), sd, p + 'bn2'))
                if p + 'conv3.0.filt' in sd:
                    out = F.conv2d(_ref_blur(out, sd[p + 'conv3.0.filt'], fallback), sd[p + 'conv3.1.weight'])
                else:
                    out = F.conv2d(out, sd[p + 'conv3.weight'])
                out = _ref_bn(out, sd, p + 'bn3')
            else:
                out = F.relu(_ref_bn(_ref_conv(x, sd[p + 'conv1.weight']), sd, p + 'bn1'))
                if p + 'conv2.0.filt' in sd:
                    out = _ref_conv(_ref_blur(out, sd[p + 'conv2.0.filt'], fallback), sd[p + 'conv2.1.weight'])
                else:
                    out = _ref_conv(out, sd[p + 'conv2.weight'])
                out = _ref_bn(out, sd, p + 'bn2')
            x = F.relu(out + shortcut)
            b += 1
    return F.linear(x.mean((2, 3)), sd['fc.weight'], sd['fc.bias'])
