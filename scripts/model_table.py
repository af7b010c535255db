"""Print the README's model table: exact params, fvcore GMACs at 224, reported top-1 and the weights' source.

    python scripts/model_table.py > /tmp/table.md
"""
import sys

import timm
import torch

import timm_tricks
from timm_tricks.profile import count_flops
from timm_tricks.weights import load_manifest, reported_top1


def weights_source(arch: str) -> str:
    entries = {k.split('.', 1)[1]: v for k, v in load_manifest().items() if k.split('.', 1)[0] == arch}
    if not entries:
        return 'no tag with weights'
    repos = sorted({v.source_repo.split('github.com/')[-1] for v in entries.values()})
    return f"{', '.join('`' + t + '`' for t in entries)} ({', '.join(repos)})"


def main() -> None:
    torch.set_num_threads(1)
    print('| model | family | params (M) | GMACs @224 | reported top-1 | pretrained tags (origin) |')
    print('|---|---|---:|---:|---:|---|')
    for name in timm_tricks.list_models(include_reference=True):
        with torch.device('meta'):
            params = sum(p.numel() for p in timm.create_model(name).parameters())
        macs = count_flops(name, table_depth=None).total
        top1 = reported_top1(name)
        family = timm_tricks.model_family(name) + ('' if timm_tricks.is_ours(name) else ' (timm reference)')
        source = weights_source(name) if timm_tricks.is_ours(name) else 'timm'
        print(f'| {name} | {family} | {params / 1e6:.2f} | {macs / 1e9:.3f} | '
              f"{'' if top1 is None else f'{top1:.2f}'} | {source} |")
        sys.stdout.flush()


if __name__ == '__main__':
    main()
