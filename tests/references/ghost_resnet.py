"""Ghost-ResNet-50 reference, written from ghost.md: a state dict in the key layout of §4 with shapes from the spec's
topology, and a plain functional forward of that topology (v1 Ghost modules in torchvision's ResNet-50).
"""
import math

import torch
import torch.nn.functional as F

STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # planes, blocks, stride


def reference_state_dict(ratio, dw=3, seed=0):
    """Random weights in the key layout of spec ghost.md §4, with shapes from the spec's topology."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(key, cout, cin, k):
        sd[key + '.weight'] = torch.randn(cout, cin, k, k, generator=g) * math.sqrt(2. / (cin * k * k))

    def bn(key, c):
        sd[key + '.weight'] = torch.rand(c, generator=g) * 0.5 + 0.5
        sd[key + '.bias'] = torch.randn(c, generator=g) * 0.1
        sd[key + '.running_mean'] = torch.randn(c, generator=g) * 0.1
        sd[key + '.running_var'] = torch.rand(c, generator=g) + 0.5
        sd[key + '.num_batches_tracked'] = torch.tensor(100)

    def ghost(key, cin, cout, k):
        init = math.ceil(cout / ratio)
        conv(key + '.primary_conv.0', init, cin, k)
        bn(key + '.primary_conv.1', init)
        conv(key + '.cheap_operation.0', init * (ratio - 1), 1, dw)
        bn(key + '.cheap_operation.1', init * (ratio - 1))

    conv('conv1', 64, 3, 7)
    bn('bn1', 64)
    cin = 64
    for li, (planes, blocks, _) in enumerate(STAGES, start=1):
        for b in range(blocks):
            p = f'layer{li}.{b}'
            ghost(p + '.conv1', cin, planes, 1)
            ghost(p + '.conv2', planes, planes, 3)
            ghost(p + '.conv3', planes, 4 * planes, 1)
            if b == 0:
                ghost(p + '.downsample', cin, 4 * planes, 1)
            cin = 4 * planes
    sd['fc.weight'] = torch.randn(1000, 2048, generator=g) * 0.01
    sd['fc.bias'] = torch.randn(1000, generator=g) * 0.01
    return sd


def reference_forward(sd, x, ratio, dw=3):
    """Plain functional forward of the spec's Ghost-ResNet-50 (v1 Ghost modules, torchvision ResNet-50)."""
    def bn(t, key):
        return F.batch_norm(t, sd[key + '.running_mean'], sd[key + '.running_var'], sd[key + '.weight'],
                            sd[key + '.bias'], training=False, eps=1e-5)

    def ghost(t, key, cout, k, stride, relu):
        act = F.relu if relu else (lambda v: v)
        x1 = act(bn(F.conv2d(t, sd[key + '.primary_conv.0.weight'], stride=stride, padding=k // 2),
                    key + '.primary_conv.1'))
        x2 = act(bn(F.conv2d(x1, sd[key + '.cheap_operation.0.weight'], padding=dw // 2, groups=x1.shape[1]),
                    key + '.cheap_operation.1'))
        return torch.cat([x1, x2], 1)[:, :cout]

    x = F.relu(bn(F.conv2d(x, sd['conv1.weight'], stride=2, padding=3), 'bn1'))
    x = F.max_pool2d(x, 3, 2, 1)
    for li, (planes, blocks, stride) in enumerate(STAGES, start=1):
        for b in range(blocks):
            p, s = f'layer{li}.{b}', stride if b == 0 else 1
            short = ghost(x, p + '.downsample', 4 * planes, 1, s, False) if b == 0 else x
            y = ghost(x, p + '.conv1', planes, 1, 1, True)
            y = ghost(y, p + '.conv2', planes, 3, s, True)
            y = ghost(y, p + '.conv3', 4 * planes, 1, 1, False)
            x = F.relu(y + short)
    return F.linear(F.adaptive_avg_pool2d(x, 1).flatten(1), sd['fc.weight'], sd['fc.bias'])
