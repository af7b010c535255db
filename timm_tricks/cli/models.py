"""`timm-tricks list` (our models, their sizes and tags) and `timm-tricks info NAME` (cfg, features, weights)."""
import json

import timm
import torch

from .._registry import is_ours, list_models, model_family, pretrained_tags, resolve_model_name
from ..weights import load_manifest
from .download import weight_sources


def add_commands(subparsers) -> None:
    listing = subparsers.add_parser(
        'list', help='our models with parameter counts and pretrained tags',
        description='Models registered by timm_tricks (plus the timm reference models shown in our reports, '
                    'marked "timm"), with exact parameter counts and the tags that have weights.')
    listing.add_argument('pattern', nargs='?', default='*', help="wildcard, e.g. 'pyconv*' (default all)")
    listing.set_defaults(handler=_list)

    info = subparsers.add_parser(
        'info', help='pretrained cfg, feature levels and weight source of one model',
        description='Prints the pretrained cfg, the feature levels (channels and stride of each, what detection '
                    'and segmentation necks need) and where the weights come from.')
    info.add_argument('name', help='arch or arch.tag')
    info.set_defaults(handler=_info)


def _param_count(arch: str) -> int:
    with torch.device('meta'):
        model = timm.create_model(arch)
    return sum(p.numel() for p in model.parameters())


def _list(args) -> int:
    names = list_models(args.pattern, include_reference=True)
    if not names:
        print(f"No model matches '{args.pattern}'.")
        return 1
    rows = [('model', 'family', 'params (M)', 'pretrained tags')]
    for name in names:
        family = model_family(name) + ('' if is_ours(name) else ' (timm)')
        rows.append((name, family, f'{_param_count(name) / 1e6:.2f}', ', '.join(pretrained_tags(name)) or '-'))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print('  '.join(c.ljust(w) for c, w in zip(row, widths)) + '  ' + row[3])
    return 0


def _info(args) -> int:
    name = resolve_model_name(args.name)
    cfg = timm.models.get_pretrained_cfg(name)
    with torch.device('meta'):
        model = timm.create_model(name, features_only=True)
    print(f'{name}  ({"timm_tricks" if is_ours(name) else "timm"}, family {model_family(name)})')
    print('\npretrained_cfg:')
    print(json.dumps(cfg.to_dict(), indent=2, default=str))
    print('\nfeatures_only levels (out_indices, channels, stride, module):')
    for i, info in enumerate(model.feature_info.get_dicts()):
        print(f"  {i}  {info['num_chs']:>5}  {info['reduction']:>3}  {info['module']}")
    print('\nweights:')
    tag = f'{cfg.architecture}.{cfg.tag}'
    entry = load_manifest().get(tag)
    if entry is not None:
        for key in ('hf_hub_id', 'source_repo', 'download_url', 'original_filename', 'checksum', 'license',
                    'top1', 'hosting'):
            if getattr(entry, key) is not None:
                print(f'  {key}: {getattr(entry, key)}')
        print('sources, in the order pretrained=True tries them:')
        for i, line in enumerate(weight_sources(tag), 1):
            print(f'  {i}. {line}')
    elif cfg.hf_hub_id or cfg.url:
        print(f'  {cfg.hf_hub_id or cfg.url} (timm)')
    else:
        print('  none released: pretrained=True raises; use pretrained_cfg_overlay=dict(file=...) for your own')
    return 0
