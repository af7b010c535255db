"""`timm-tricks info NAME`: the pretrained cfg, the feature levels and where the weights come from."""
import json

import timm
import torch

from .._registry import is_ours, model_family, resolve_model_name
from ..weights import load_manifest
from .download import weight_sources


def add_command(subparsers) -> None:
    info = subparsers.add_parser(
        'info', help='pretrained cfg, feature levels and weight source of one model',
        description='Prints the pretrained cfg, the feature levels (channels and stride of each, what detection '
                    'and segmentation necks need) and where the weights come from.')
    info.add_argument('name', help='arch or arch.tag')
    info.set_defaults(handler=_info)


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
