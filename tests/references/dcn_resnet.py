"""Independent reference of mmdetection's ResNet-50 (style='pytorch') with DCNv2 in c3-c5, written from dcnv2.md §2
on `torchvision.ops.deform_conv2d`'s public wrapper and `torch.nn.functional`: a state dict in mmdetection's key
layout, its functional forward (c2-c5), and the detector checkpoint file that carries it.
"""
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
import torchvision

R50_LAYERS = (3, 4, 6, 3)


def mmdet_r50_dcn_state_dict(deform_groups, generator):
    """Random weights in mmdetection's key layout (without the `backbone.` prefix), non-trivial BN and offsets."""
    sd = OrderedDict()

    def conv(key, cout, cin, k):
        sd[key] = torch.randn(cout, cin, k, k, generator=generator) * math.sqrt(2. / (cin * k * k))

    def bn(key, c):
        sd[f'{key}.weight'] = torch.rand(c, generator=generator) + 0.5
        sd[f'{key}.bias'] = (torch.rand(c, generator=generator) - 0.5) * 0.4
        sd[f'{key}.running_mean'] = (torch.rand(c, generator=generator) - 0.5) * 0.4
        sd[f'{key}.running_var'] = torch.rand(c, generator=generator) + 0.5
        sd[f'{key}.num_batches_tracked'] = torch.tensor(1000)

    conv('conv1.weight', 64, 3, 7)
    bn('bn1', 64)
    cin = 64
    for li, n in enumerate(R50_LAYERS, start=1):
        planes = 64 * 2 ** (li - 1)
        for b in range(n):
            p = f'layer{li}.{b}'
            conv(f'{p}.conv1.weight', planes, cin, 1)
            bn(f'{p}.bn1', planes)
            conv(f'{p}.conv2.weight', planes, planes, 3)
            if li >= 2:
                sd[f'{p}.conv2.conv_offset.weight'] = torch.randn(
                    27 * deform_groups, planes, 3, 3, generator=generator) * 0.02 / math.sqrt(planes)
                sd[f'{p}.conv2.conv_offset.bias'] = torch.randn(27 * deform_groups, generator=generator) * 0.7
            bn(f'{p}.bn2', planes)
            conv(f'{p}.conv3.weight', planes * 4, planes, 1)
            bn(f'{p}.bn3', planes * 4)
            if b == 0:
                conv(f'{p}.downsample.0.weight', planes * 4, cin, 1)
                bn(f'{p}.downsample.1', planes * 4)
            cin = planes * 4
    return sd


def mmdet_r50_dcn_forward(sd, x):
    """c2..c5 of mmdetection's ResNet-50-DCNv2: mmcv's `ModulatedDeformConv2dPack` split (chunk 3, cat 2, sigmoid)."""
    def bn(t, key):
        return F.batch_norm(
            t, sd[f'{key}.running_mean'], sd[f'{key}.running_var'], sd[f'{key}.weight'], sd[f'{key}.bias'],
            training=False, eps=1e-5)

    x = F.max_pool2d(F.relu(bn(F.conv2d(x, sd['conv1.weight'], stride=2, padding=3), 'bn1')), 3, 2, 1)
    outs = []
    for li, n in enumerate(R50_LAYERS, start=1):
        for b in range(n):
            p = f'layer{li}.{b}'
            stride = 2 if (b == 0 and li > 1) else 1
            y = F.relu(bn(F.conv2d(x, sd[f'{p}.conv1.weight']), f'{p}.bn1'))
            if li >= 2:
                o1, o2, m = torch.chunk(F.conv2d(
                    y, sd[f'{p}.conv2.conv_offset.weight'], sd[f'{p}.conv2.conv_offset.bias'],
                    stride=stride, padding=1), 3, dim=1)
                y = torchvision.ops.deform_conv2d(
                    y, torch.cat((o1, o2), dim=1), sd[f'{p}.conv2.weight'], stride=stride, padding=1,
                    mask=torch.sigmoid(m))
            else:
                y = F.conv2d(y, sd[f'{p}.conv2.weight'], stride=stride, padding=1)
            y = F.relu(bn(y, f'{p}.bn2'))
            y = bn(F.conv2d(y, sd[f'{p}.conv3.weight']), f'{p}.bn3')
            shortcut = x if b else bn(F.conv2d(x, sd[f'{p}.downsample.0.weight'], stride=stride), f'{p}.downsample.1')
            x = F.relu(y + shortcut)
        outs.append(x)
    return outs


def save_mmdet_checkpoint(path, backbone_sd, v1_names=False):
    """mmdetection v2 detector checkpoint: meta + backbone./neck./head. state dict + optimizer state."""
    state_dict = OrderedDict()
    for k, v in backbone_sd.items():
        if v1_names:
            k = k.replace('.conv2.conv_offset.', '.conv2_offset.')
        state_dict[f'backbone.{k}'] = v
    state_dict['neck.lateral_convs.0.conv.weight'] = torch.zeros(256, 256, 1, 1)
    state_dict['rpn_head.rpn_conv.weight'] = torch.zeros(256, 256, 3, 3)
    state_dict['roi_head.bbox_head.fc_cls.weight'] = torch.zeros(81, 1024)
    torch.save({
        'meta': {'mmdet_version': '2.0.0', 'epoch': 12, 'CLASSES': ('person', 'bicycle')},
        'state_dict': state_dict,
        'optimizer': {'state': {}, 'param_groups': [{'lr': 0.02, 'momentum': 0.9, 'params': [0, 1]}]},
    }, path)
