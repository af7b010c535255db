"""OctResNet reference, written from the spec (octconv.md §2, §4, §5) as plain functions over a state dict in the
authors' key layout; it shares no code with timm_tricks. `pool` / `upsample` select the authors' ops (floor-mode
2x2 average pool, `scale_factor=2` nearest upsample, l->l pooled even where it is discarded) or the ceil-mode
extension the spec prescribes for odd sizes (nearest upsample to the high map's size by index i // 2).
"""
import math

import torch
import torch.nn.functional as F

DEPTHS = {'oct_resnet26': (2, 2, 2, 2), 'oct_resnet50': (3, 4, 6, 3)}


def floor_pool(x):
    return F.avg_pool2d(x, 2, 2)  # the reference's nn.AvgPool2d((2, 2), stride=2)


def ceil_pool(x):
    return F.avg_pool2d(x, 2, 2, ceil_mode=True)


def upsample_x2(x, size):
    return F.interpolate(x, scale_factor=2., mode='nearest')  # the reference's nn.Upsample(scale_factor=2)


def upsample_index(x, size):
    """Nearest upsampling by index: high pixel i copies low pixel i // 2 (spec §5.2)."""
    rows = torch.arange(size[0]) // 2
    cols = torch.arange(size[1]) // 2
    return x[:, :, rows][:, :, :, cols]


AUTHORS = dict(pool=floor_pool, upsample=upsample_x2, pool_discarded_low=True)
EXTENDED = dict(pool=ceil_pool, upsample=upsample_index, pool_discarded_low=False)


def split(chs, alpha):
    low = int(alpha * chs)
    return chs - low, low


def reference_convs(depths, alpha=0.5):
    """[(prefix, in, out, kernel, alpha_in, alpha_out, stride)] of every octave conv + BN, in the authors' naming."""
    convs = []
    in_chs, a_in = 64, 0.
    for stage, (depth, planes) in enumerate(zip(depths, (64, 128, 256, 512)), start=1):
        a = 0. if stage == 4 else alpha
        stride = 1 if stage == 1 else 2
        for b in range(depth):
            p = f'layer{stage}.{b}'
            convs.append((f'{p}.conv1', in_chs, planes, 1, a_in, a, 1))
            convs.append((f'{p}.conv2', planes, planes, 3, a, a, stride if b == 0 else 1))
            convs.append((f'{p}.conv3', planes, planes * 4, 1, a, a, 1))
            if b == 0:
                convs.append((f'{p}.downsample.0', in_chs, planes * 4, 1, a_in, a, stride))
            in_chs, a_in = planes * 4, a
    return convs


def reference_shapes(depths, alpha=0.5):
    """Key -> shape of the authors' state dict (octconv.md §4)."""
    def bn(prefix, c):
        return {f'{prefix}.weight': (c,), f'{prefix}.bias': (c,), f'{prefix}.running_mean': (c,),
                f'{prefix}.running_var': (c,), f'{prefix}.num_batches_tracked': ()}
    shapes = {'conv1.weight': (64, 3, 7, 7), **bn('bn1', 64), 'fc.weight': (1000, 2048), 'fc.bias': (1000,)}
    for prefix, cin, cout, k, a_in, a_out, _ in reference_convs(depths, alpha):
        ih, il = split(cin, a_in)
        oh, ol = split(cout, a_out)
        for path, i, o in (('h2h', ih, oh), ('h2l', ih, ol), ('l2h', il, oh), ('l2l', il, ol)):
            if i and o:
                shapes[f'{prefix}.conv.conv_{path}.weight'] = (o, i, k, k)
        shapes.update(bn(f'{prefix}.bn_h', oh))
        if ol:
            shapes.update(bn(f'{prefix}.bn_l', ol))
    return shapes


def reference_state_dict(depths, alpha=0.5, seed=0):
    """Random weights in the authors' layout, with non-trivial BN statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in reference_shapes(depths, alpha).items():
        if key.endswith('num_batches_tracked'):
            sd[key] = torch.tensor(7)
        elif key.endswith('running_var'):
            sd[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith(('running_mean', 'bias')):
            sd[key] = torch.randn(shape, generator=g) * 0.1
        elif len(shape) == 1:  # BN weight
            sd[key] = torch.rand(shape, generator=g) * 0.5 + 0.5
        else:
            fan_in = math.prod(shape[1:])
            sd[key] = torch.randn(shape, generator=g) * math.sqrt(1. / fan_in)
    return sd


def ref_bn(sd, prefix, x):
    return F.batch_norm(x, sd[f'{prefix}.running_mean'], sd[f'{prefix}.running_var'], sd[f'{prefix}.weight'],
                        sd[f'{prefix}.bias'], False, 0., 1e-5)


def ref_octconv_bn(sd, spec, x_h, x_l, ops, act):
    prefix, _, _, k, a_in, a_out, stride = spec
    pool, upsample = ops['pool'], ops['upsample']

    def conv(path, x):
        return F.conv2d(x, sd[f'{prefix}.conv.conv_{path}.weight'], padding=k // 2)

    if stride == 2:
        x_h = pool(x_h)
    y_h = conv('h2h', x_h)
    y_l = conv('h2l', pool(x_h)) if a_out > 0 else None
    if a_in > 0:
        l2h = conv('l2h', x_l)
        y_h = y_h + (upsample(l2h, y_h.shape[-2:]) if stride == 1 else l2h)
        if a_out > 0 or ops['pool_discarded_low']:
            x_ll = pool(x_l) if stride == 2 else x_l
            if a_out > 0:
                y_l = y_l + conv('l2l', x_ll)
    y_h = ref_bn(sd, f'{prefix}.bn_h', y_h)
    y_l = ref_bn(sd, f'{prefix}.bn_l', y_l) if y_l is not None else None
    if act:
        y_h = F.relu(y_h)
        y_l = F.relu(y_l) if y_l is not None else None
    return y_h, y_l


def reference_forward(sd, x, depths, alpha=0.5, ops=AUTHORS):
    """Logits and the (high, low) output of every stage."""
    convs = {c[0]: c for c in reference_convs(depths, alpha)}
    x = F.max_pool2d(F.relu(ref_bn(sd, 'bn1', F.conv2d(x, sd['conv1.weight'], stride=2, padding=3))), 3, 2, 1)
    x_h, x_l = x, None
    stages = []
    for stage, depth in enumerate(depths, start=1):
        for b in range(depth):
            p = f'layer{stage}.{b}'
            y = ref_octconv_bn(sd, convs[f'{p}.conv1'], x_h, x_l, ops, act=True)
            y = ref_octconv_bn(sd, convs[f'{p}.conv2'], *y, ops, act=True)
            y_h, y_l = ref_octconv_bn(sd, convs[f'{p}.conv3'], *y, ops, act=False)
            if f'{p}.downsample.0' in convs:
                s_h, s_l = ref_octconv_bn(sd, convs[f'{p}.downsample.0'], x_h, x_l, ops, act=False)
            else:
                s_h, s_l = x_h, x_l
            x_h = F.relu(y_h + s_h)
            x_l = F.relu(y_l + s_l) if y_l is not None else None
        stages.append((x_h, x_l))
    logits = F.linear(x_h.mean((2, 3)), sd['fc.weight'], sd['fc.bias'])
    return logits, stages
