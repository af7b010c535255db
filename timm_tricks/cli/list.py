"""`timm-tricks list [PATTERN]`: our models, their exact sizes and the tags with weights."""
import timm
import torch

from .._registry import is_ours, list_models, model_family, pretrained_tags


def add_command(subparsers) -> None:
    listing = subparsers.add_parser(
        'list', help='our models with parameter counts and pretrained tags',
        description='Models registered by timm_tricks (plus the timm reference models shown in our reports, '
                    'marked "timm"), with exact parameter counts and the tags that have weights.')
    listing.add_argument('pattern', nargs='?', default='*', help="wildcard, e.g. 'pyconv*' (default all)")
    listing.set_defaults(handler=_list)


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
