"""Parameters, fvcore MACs and CPU time of each plug-in layer against a plain ResNet bottleneck (docs/plugins.md).

Reference: timm's `Bottleneck(256, 64)` (the first stage of ResNet-50) on a 1x256x56x56 input, single thread.
- attention plug-ins go where timm puts them (`attn_layer`, after bn3, on 256 channels);
- channel-aware activations replace the ReLU after conv2 (64 channels; the authors' place for ACON);
- CoordConv replaces conv2 (3x3, 64 -> 64); RFB runs on the block's 256x56x56 output; SPP pools a 256x13x13 map;
  ASFF fuses the three ResNet-18 maps of a 224 input (128x28x28, 256x14x14, 512x7x7) at every level (`AsffNeck`).
The ms column times the block with the plug-in in it (RFB: the block followed by RFB; SPP and ASFF: the layer
alone); the ratio is against the plain block measured in the same interleaved repetitions (median thread CPU time).

    python benchmarks/plugin_cost.py [--reps 30]
"""
import argparse
import time
from functools import partial

import torch
from timm.models.resnet import Bottleneck
from torch import nn

from timm_tricks.layers import (
    NAM,
    AconC,
    BasicRFB,
    CbamV1,
    CoordAttV1,
    CoordConv2d,
    DyReLUA,
    DyReLUB,
    DyReLUC,
    MetaAconC,
    NonLocalV1,
    SpatialPyramidPooling,
    SpatialTransformer,
)
from timm_tricks.necks import AsffNeck
from timm_tricks.profile._fvcore import FlopCountAnalysis, silence
from timm_tricks.profile.handles import flop_handles

import _common as common

ATTENTION = {'nam': NAM, 'cbam_v1': CbamV1, 'coordatt': CoordAttV1, 'nl_v1': NonLocalV1, 'dyrelu_b': DyReLUB,
             'dyrelu_c': DyReLUC, 'stn': SpatialTransformer}
CHANNEL_ACTS = {'acon': AconC, 'meta_acon': MetaAconC, 'dyrelu_a': DyReLUA, 'dyrelu_b (act)': DyReLUB,
                'dyrelu_c (act)': DyReLUC}


def macs(module, *inputs):
    analysis = silence(FlopCountAnalysis(module, inputs))
    analysis.set_op_handle(**flop_handles())
    total = analysis.total()
    assert not analysis.unsupported_ops(), analysis.unsupported_ops()
    return total


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def with_act2(act_cls):
    block = Bottleneck(256, 64)
    block.act2 = act_cls(64)
    return block


def with_coord_conv():
    block = Bottleneck(256, 64)
    block.conv2 = CoordConv2d(64, 64, 3, padding=1, bias=False)
    return block


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--reps', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(1, 256, 56, 56)
    mid = torch.randn(1, 64, 56, 56)
    plain = Bottleneck(256, 64)
    rows = []  # (name, plug-in, plug-in input, block or None, params at C)
    for name, cls in ATTENTION.items():
        rows.append((name, cls(256), x, Bottleneck(256, 64, attn_layer=cls), 'C=256'))
    for name, cls in CHANNEL_ACTS.items():
        rows.append((name, cls(64), mid, with_act2(cls), 'C=64'))
    rows.append(('coord_conv (3x3)', CoordConv2d(64, 64, 3, padding=1, bias=False), mid, with_coord_conv(), '64->64'))
    rows.append(('rfb', BasicRFB(256, 256), x, nn.Sequential(Bottleneck(256, 64), BasicRFB(256, 256)), '256->256'))
    rows.append(('spp (6,3,2,1)', SpatialPyramidPooling(), torch.randn(1, 256, 13, 13), None, '-'))
    feats = [torch.randn(1, 128, 28, 28), torch.randn(1, 256, 14, 14), torch.randn(1, 512, 7, 7)]
    rows.append(('asff (3 levels)', AsffNeck([128, 256, 512]), feats, None, 'R-18 C3-C5'))

    runs = {'plain': partial(plain.eval(), x)}
    for name, layer, inp, block, _ in rows:
        layer.eval()
        runs[name] = partial(block.eval(), x) if block is not None else partial(layer, inp)
    times = common.interleaved(runs, args.warmup, args.reps, clocks=(time.thread_time,))[0]

    print(f'CPU: {common.cpu_name()}, 1 thread, torch {torch.__version__}, load {common.load_average()}; '
          f'{common.SHARED_MACHINE_NOTE}')
    print(f'plain Bottleneck(256, 64) @56: {n_params(plain):,} params, {macs(plain.eval(), x) / 1e6:.1f} M MACs, '
          f'{times["plain"]:.2f} ms')
    print('| plug-in | params (at) | plug-in MMACs | ms (block with it, or alone) | x plain block |')
    print('|---|---|---|---|---|')
    for name, layer, inp, block, at in rows:
        layer_macs = macs(layer, inp) / 1e6
        print(f'| {name} | {n_params(layer):,} ({at}) | {layer_macs:.2f} | {times[name]:.2f} | '
              f'{times[name] / times["plain"]:.2f} |')


if __name__ == '__main__':
    main()
