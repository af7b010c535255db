"""Plug-in layer references, written from the papers and plugins.md with torch.nn.functional only: they read a
layer's weights by name but never call its forward. CBAM v1 also in the authors' key layout.
"""
import math

import torch
import torch.nn.functional as F


def bn_eval(x, prefix, sd, eps=1e-5):
    return F.batch_norm(x, sd[prefix + 'running_mean'], sd[prefix + 'running_var'], sd[prefix + 'weight'],
                        sd[prefix + 'bias'], False, 0., eps)


def nam_reference(x, gamma, beta, mean, var, eps=1e-5):
    """plugins.md: out = sigmoid(w * BN(x)) * x, w = |gamma| / sum |gamma| taken as a constant."""
    w = gamma.detach().abs() / gamma.detach().abs().sum()
    bn = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + eps) * gamma[:, None, None] + beta[:, None, None]
    return torch.sigmoid(w[:, None, None] * bn) * x


def dyrelu_reference(x, sd, k2=True, use_bias=True, shared=False, spatial=False, lambda_a=1.0, init_a=(1., 0.),
                     init_b=(0., 0.)):
    """plugins.md (DynamicHead): y = h_sigmoid(fc2(relu(fc1(GAP x)))), split into [a1, b1, a2, b2] ([a1, a2] without
    bias, [a1, b1] with K2 = False, [a1] with neither); a^k = (y - .5) * 2 lambda_a + init_a[k],
    b^k = y - .5 + init_b[k]; out = max_k(a^k x + b^k) (times the spatial map)."""
    y = F.linear(F.relu(F.linear(x.mean((2, 3)), sd['fc.0.weight'], sd['fc.0.bias'])), sd['fc.2.weight'],
                 sd['fc.2.bias'])
    y = F.relu6(y + 3) / 6
    names = [n for k in range(2 if k2 else 1) for n in ((f'a{k}', f'b{k}') if use_bias else (f'a{k}',))]
    c = 1 if shared else x.shape[1]
    coef = {n: t.reshape(x.shape[0], c, 1, 1) - .5 for n, t in zip(names, y.chunk(len(names), dim=1))}
    pieces = [x * (coef[f'a{k}'] * 2 * lambda_a + init_a[k]) + (coef[f'b{k}'] + init_b[k] if use_bias else 0)
              for k in range(2 if k2 else 1)]
    out = torch.max(*pieces) if k2 else pieces[0]
    if spatial:
        s = bn_eval(F.conv2d(x, sd['spatial.0.weight'], sd['spatial.0.bias']), 'spatial.1.', sd)
        h, w = x.shape[2:]
        s = F.softmax(s.reshape(x.shape[0], -1), dim=1).reshape(x.shape[0], 1, h, w) * h * w
        out = out * s.clamp(0, 3) / 3
    return out


def authors_cbam_state_dict(channels, prefix=''):
    """Random tensors in the authors' key layout: Linear MLP, spatial conv over [max, mean]."""
    torch.manual_seed(1)
    hidden = channels // 16
    sd = {
        'ChannelGate.mlp.1.weight': torch.randn(hidden, channels) * .3, 'ChannelGate.mlp.1.bias': torch.randn(hidden),
        'ChannelGate.mlp.3.weight': torch.randn(channels, hidden) * .3,
        'ChannelGate.mlp.3.bias': torch.randn(channels),
        'SpatialGate.spatial.conv.weight': torch.randn(1, 2, 7, 7) * .2,
        'SpatialGate.spatial.bn.weight': torch.rand(1) + .5, 'SpatialGate.spatial.bn.bias': torch.randn(1),
        'SpatialGate.spatial.bn.running_mean': torch.randn(1), 'SpatialGate.spatial.bn.running_var': torch.rand(1) + .5,
        'SpatialGate.spatial.bn.num_batches_tracked': torch.tensor(7),
    }
    return {prefix + k: v for k, v in sd.items()}


def authors_cbam_reference(x, sd):
    """plugins.md §2: x * sigmoid(mlp(avg) + mlp(max)), then * sigmoid(BN(conv7x7([max_c, mean_c])))."""
    def mlp(v):
        hidden = F.relu(F.linear(v, sd['ChannelGate.mlp.1.weight'], sd['ChannelGate.mlp.1.bias']))
        return F.linear(hidden, sd['ChannelGate.mlp.3.weight'], sd['ChannelGate.mlp.3.bias'])
    x = x * torch.sigmoid(mlp(x.mean((2, 3))) + mlp(x.amax((2, 3))))[:, :, None, None]
    pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)
    s = bn_eval(F.conv2d(pooled, sd['SpatialGate.spatial.conv.weight'], padding=3), 'SpatialGate.spatial.bn.', sd)
    return x * torch.sigmoid(s)


def rfb_reference(x, sd, paths, stride, visual, scale):
    def conv_bn(t, prefix, kernel, s, dilation, relu):
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        t = F.conv2d(t, sd[prefix + 'conv.weight'], stride=s, dilation=dilation,
                     padding=(dilation * (kh - 1) // 2, dilation * (kw - 1) // 2))
        t = bn_eval(t, prefix + 'bn.', sd)
        return F.relu(t) if relu else t
    outs = []
    for p, path in enumerate(paths):
        t = x
        for j, (kernel, s, dilation, relu) in enumerate(path):
            s = stride if s == 's' else s
            dilation = {'v': visual, 'v+1': visual + 1, '2v+1': 2 * visual + 1}.get(dilation, dilation)
            t = conv_bn(t, f'branch{p}.{j}.', kernel, s, dilation, relu)
        outs.append(t)
    fused = conv_bn(torch.cat(outs, 1), 'ConvLinear.', 1, 1, 1, False)
    return F.relu(fused * scale + conv_bn(x, 'shortcut.', 1, stride, 1, False))


def asff_reference(features, sd, level, reductions):
    """plugins.md §3 / the paper: every level to level `level`'s resolution and width (finer: max-pools for the
    factors of 2 beyond the first, then a 3x3 stride-2 conv block; same or coarser: a 1x1 conv block where the width
    differs, then nearest up-sampling), a softmax over per-level logits, the weighted sum, a 3x3 conv block.
    A conv block: conv (no bias) + BN + LeakyReLU(0.1); weights read by key (`resize.i`, `weight_convs.i`, ...)."""
    def block(t, prefix, stride=1):
        weight = sd[prefix + '0.weight']
        t = F.conv2d(t, weight, stride=stride, padding=weight.shape[-1] // 2)
        return F.leaky_relu(bn_eval(t, prefix + '1.', sd), 0.1)
    size = features[level].shape[2:]
    resized = []
    for i, x in enumerate(features):
        if reductions[i] < reductions[level]:
            pools = int(math.log2(reductions[level] // reductions[i])) - 1
            for _ in range(pools):
                x = F.max_pool2d(x, 3, 2, 1)
            x = block(x, f'resize.{i}.{pools}.', 2)  # the conv block follows the pools in the Sequential
        elif f'resize.{i}.0.weight' in sd:
            x = block(x, f'resize.{i}.')
        resized.append(F.interpolate(x, size=size, mode='nearest') if x.shape[2:] != size else x)
    logits = torch.cat([block(r, f'weight_convs.{i}.') for i, r in enumerate(resized)], 1)
    weights = F.softmax(F.conv2d(logits, sd['weight_logits.weight'], sd['weight_logits.bias']), dim=1)
    fused = sum(r * weights[:, i:i + 1] for i, r in enumerate(resized))
    return block(fused, 'expand.')


def spp_reference(x, levels):
    """SPP-net: per level n, bins of window ceil(a/n) at stride floor(a/n), max over each bin (loop)."""
    h, w = x.shape[2:]
    out = []
    for n in levels:
        wh, sh, ww, sw = math.ceil(h / n), h // n, math.ceil(w / n), w // n
        bins = [x[:, :, i * sh:i * sh + wh, j * sw:j * sw + ww].amax((2, 3)) for i in range(n) for j in range(n)]
        out.append(torch.stack(bins, 2).flatten(1))
    return torch.cat(out, 1)
