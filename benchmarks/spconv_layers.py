"""Per-layer CPU time of one SPConv (+ the BN after it): un-fused vs `fuse(norm, merge=...)` for each merge mode.

The layer shapes of SPConv-ResNet-50 (stride-1 layers of each stage, the first two strided ones), alpha 1/2 and
1/4, batch 1 and 8, single thread; interleaved repetitions, median of the forward's thread CPU time (robust on a
shared machine). This is what chose `merge='auto'` (= 'none'); see docs/spconv_resnet.md.

    python benchmarks/spconv_layers.py [--reps 15]
"""
import argparse
import time
from functools import partial

import torch
from torch import nn

from timm_tricks.layers import SPConv2d

import _common as common

SHAPES = ((64, 56, 1), (128, 28, 1), (256, 14, 1), (512, 7, 1), (128, 56, 2), (256, 28, 2))  # (chs, size, stride)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--reps', type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print('| batch | alpha | chs | size | stride | un-fused ms | none | pointwise | kxk |')
    print('|---|---|---|---|---|---|---|---|---|')
    for batch in (1, 8):
        for ratio in (0.5, 0.25):
            for chs, size, stride in SHAPES:
                layer = common.randomize_norms(SPConv2d(chs, chs, stride=stride, ratio=ratio)).eval()
                outer = common.randomize_norms(nn.BatchNorm2d(chs), seed=1).eval()
                variants = {'unfused': nn.Sequential(layer, outer)}
                for merge in ('none', 'pointwise', 'kxk'):
                    if merge != 'kxk' or stride == 1:
                        variants[merge] = layer.fuse(outer, merge=merge)
                x = torch.randn(batch, chs, size, size)
                runs = {k: partial(m, x) for k, m in variants.items()}
                med = common.interleaved(runs, 3, args.reps, clocks=(time.thread_time,))[0]
                base = med['unfused']
                cells = [f"{med[k] / base:.2f}" if k in med else '–' for k in ('none', 'pointwise', 'kxk')]
                print(f'| {batch} | {ratio} | {chs} | {size} | {stride} | {base:.2f} | ' + ' | '.join(cells) + ' |',
                      flush=True)


if __name__ == '__main__':
    main()
