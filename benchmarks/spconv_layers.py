"""Per-layer CPU time of one SPConv (+ the BN after it): un-fused vs `fuse(norm, merge=...)` for each merge mode.

The layer shapes of SPConv-ResNet-50 (stride-1 layers of each stage, the first two strided ones), alpha 1/2 and
1/4, batch 1 and 8, single thread; interleaved repetitions, median of the forward's thread CPU time (robust on a
shared machine). This is what chose `merge='auto'` (= 'none'); see docs/spconv_resnet.md.

    python benchmarks/spconv_layers.py
"""
import statistics
import time

import torch
from torch import nn

from timm_tricks.layers import SPConv2d

SHAPES = ((64, 56, 1), (128, 28, 1), (256, 14, 1), (512, 7, 1), (128, 56, 2), (256, 28, 2))  # (chs, size, stride)


def _randomize_bn(module):
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
            m.running_mean.normal_(0, .1)
    return module


def main(reps: int = 15):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print('| batch | alpha | chs | size | stride | un-fused ms | none | pointwise | kxk |')
    print('|---|---|---|---|---|---|---|---|---|')
    for batch in (1, 8):
        for ratio in (0.5, 0.25):
            for chs, size, stride in SHAPES:
                layer = _randomize_bn(SPConv2d(chs, chs, stride=stride, ratio=ratio)).eval()
                outer = _randomize_bn(nn.BatchNorm2d(chs)).eval()
                variants = {'unfused': nn.Sequential(layer, outer)}
                for merge in ('none', 'pointwise', 'kxk'):
                    if merge != 'kxk' or stride == 1:
                        variants[merge] = layer.fuse(outer, merge=merge)
                x = torch.randn(batch, chs, size, size)
                times = {k: [] for k in variants}
                with torch.inference_mode():
                    for m in variants.values():
                        for _ in range(3):
                            m(x)
                    for _ in range(reps):
                        for k, m in variants.items():
                            t0 = time.thread_time()
                            m(x)
                            times[k].append(time.thread_time() - t0)
                med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
                base = med['unfused']
                cells = [f"{med[k] / base:.2f}" if k in med else '–' for k in ('none', 'pointwise', 'kxk')]
                print(f'| {batch} | {ratio} | {chs} | {size} | {stride} | {base:.2f} | ' + ' | '.join(cells) + ' |',
                      flush=True)


if __name__ == '__main__':
    main()
