"""`timm-tricks download NAME... | --pattern P | --all`: fetch (and convert) pretrained weights ahead of time, e.g.
on a login node for compute nodes without network, through the same resolution as `pretrained=True`."""
import sys
import warnings
from pathlib import Path
from typing import List, Optional, Tuple

import timm
import torch
from huggingface_hub import try_to_load_from_cache

from .._registry import list_models, resolve_model_name
from ..errors import TricksError
from ..weights import load_manifest, load_tag_map, origin

_HUB_FILES = ('model.safetensors', 'pytorch_model.bin')  # what timm loads from a Hub repo, in its order


def add_command(subparsers) -> None:
    download = subparsers.add_parser(
        'download', help='fetch pretrained weights ahead of time (Hub, else the authors\' original, converted)',
        description="Fetches each tag's weights as `pretrained=True` would: its Hub repo into the Hugging Face "
                    "cache, or, where the Hub has no such repo, the authors' original download, verified, "
                    f'converted and cached (${origin.CACHE_ENV}, default $HF_HOME/timm_tricks). Then '
                    '`timm.create_model(tag, pretrained=True)` works offline (HF_HUB_OFFLINE=1).')
    download.add_argument('names', nargs='*', metavar='ARCH.TAG', help='tags with weights, e.g. pyconv_resnet50.in1k')
    download.add_argument('--pattern', help="every tag with weights matching this wildcard, e.g. 'pyconv*'")
    download.add_argument('--all', action='store_true', help='every tag with weights')
    download.add_argument('--urls', type=Path, metavar='MAP.json',
                          help='JSON {"arch.tag": "url"}: fetch these originals from a mirror instead of the '
                               "manifest's download URL")
    download.set_defaults(handler=_download)


def _selected(args) -> List[str]:
    if bool(args.names) + bool(args.pattern) + args.all != 1:
        raise TricksError('give tag names, --pattern P or --all (one of them)')
    if args.names:
        names = [resolve_model_name(name) for name in args.names]
        no_weights = [name for name in names if name not in load_manifest()]
        if no_weights:
            raise TricksError(f"no released weights for {', '.join(no_weights)} (give arch.tag; "
                              '`timm-tricks list` shows the tags)')
        return names
    names = list_models(args.pattern or '*', pretrained=True)
    if not names:
        raise TricksError(f"no tag with weights matches '{args.pattern}'")
    return names


def hub_cache_file(repo_id: str) -> Optional[str]:
    """The weights file of `repo_id` in the Hugging Face cache, or None."""
    for filename in _HUB_FILES:
        path = try_to_load_from_cache(repo_id, filename)
        if isinstance(path, str):
            return path
    return None


def fetch(name: str, url: Optional[str] = None) -> Tuple[str, str]:
    """Fetch the weights of `name` as `pretrained=True` does; returns (source, path of the cached file).

    The model is built on the meta device: the weights are downloaded, converted and checked (strict loading)
    without allocating the model.
    """
    with torch.device('meta'), warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*copying from a non-meta parameter')  # meta: nothing to copy
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(url=url) if url else None)
    cfg = model.pretrained_cfg
    if cfg.get('file'):
        return f"authors' original {origin.cached_origin_url(name)}, converted", cfg['file']
    return f"Hub {cfg['hf_hub_id']}", hub_cache_file(cfg['hf_hub_id'])


def weight_sources(name: str) -> List[str]:
    """`pretrained=True`'s sources for `name` in the order they are tried, and whether each is cached here."""
    cfg = timm.models.get_pretrained_cfg(name)
    hub = hub_cache_file(cfg.hf_hub_id)
    lines = [f"Hub {cfg.hf_hub_id}: {'in the Hugging Face cache, ' + hub if hub else 'not in the Hugging Face cache'}"]
    if cfg.url and name in load_manifest():
        checksum = load_manifest()[name].checksum or 'none published'
        cached = origin.cached_conversion(name)
        state = f'converted, cached at {cached}' if cached else f'not fetched (cache {origin.cache_root()})'
        lines.append(f"only where the Hub has no such repo: the authors' original {cfg.url} "
                     f'(checksum {checksum}): {state}')
    return lines


def _download(args) -> int:
    names, urls = _selected(args), (load_tag_map(args.urls, 'url') if args.urls else {})
    failed = []
    for name in names:
        try:
            source, path = fetch(name, urls.get(name))
        except (TricksError, OSError) as e:  # OSError: huggingface_hub's errors (connection, offline, HTTP)
            failed.append(name)
            print(f'{name}: failed: {e}', file=sys.stderr, flush=True)
            continue
        print(f'{name}: {source}\n  {path}', flush=True)
    if failed:
        print(f"{len(failed)} of {len(names)} failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
