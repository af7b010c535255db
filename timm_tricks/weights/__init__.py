"""What each published checkpoint is and where it came from: `manifest.json`, one entry per `arch.tag`.

The manifest is the single source of the per-tag facts (Hub repo, the authors' download, checksum, licence,
paper, reported accuracy and its evaluation settings); the families' `default_cfgs` are built from it with
`released_cfg`, so the registry and the manifest cannot drift apart.
"""
import json
from functools import lru_cache
from importlib import resources
from typing import Any, Dict, Optional

import timm

from ..errors import UnknownModelError
from .._registry import REFERENCE_TOP1


@lru_cache(maxsize=None)
def load_manifest() -> Dict[str, Dict[str, Any]]:
    return json.loads(resources.files(__name__).joinpath('manifest.json').read_text(encoding='utf-8'))


def manifest_entry(name: str) -> Dict[str, Any]:
    """The manifest entry of a tag `arch.tag`."""
    try:
        return load_manifest()[name]
    except KeyError:
        raise UnknownModelError(f"No published checkpoint '{name}' in the weights manifest.") from None


def released_cfg(name: str, set_url: bool = False, **cfg: Any) -> Dict[str, Any]:
    """`cfg` plus the weight source and provenance fields of the manifest entry `name` (`arch.tag`).

    `set_url=True` also sets the cfg's `url` to the entry's `download_url` (the authors' direct download). timm
    still loads from `hf_hub_id` first; the `url` is used only without huggingface_hub, with
    `TIMM_USE_OLD_CACHE=1` and the file already in torch.hub's cache, or with `hf_hub_id` overlaid to None.
    """
    entry = manifest_entry(name)
    ev = entry['eval']
    if entry['top1'] is None:  # nothing reported for this checkpoint: the entry's notes say why
        notes = list(entry.get('notes', ()))
    else:
        notes = [f"Reported ImageNet-1k top-1 {entry['top1']} at {ev['img_size']} (crop {ev['crop_pct']})."]
    notes += [f'Reported top-1 {top1} at {size}.' for size, top1 in entry.get('test_top1', {}).items()]
    out = dict(
        cfg,
        hf_hub_id=entry['hf_hub_id'],
        origin_url=entry['source_repo'],
        license=entry['license'],
        paper_ids=entry['paper_ids'],
        paper_name=entry['paper_name'],
        notes=tuple(notes),
    )
    if set_url:
        if not entry.get('download_url'):
            raise ValueError(f"'{name}' has no download_url in the weights manifest")
        out['url'] = entry['download_url']
    if 'recipe' in entry:
        out['description'] = entry['recipe']
    if entry.get('test_top1'):
        size = int(max(entry['test_top1'], key=int))
        out['test_input_size'] = (3, size, size)
    return out


def reported_top1(name: str) -> Optional[float]:
    """Reported top-1 of `arch.tag`, or of a bare arch's default tag; None where nothing was reported.

    Our checkpoints come from the manifest. timm's reference models (`REFERENCE_TOP1`, not ours) are looked up
    as `arch.tag`, and a bare reference arch without a reported default tag gives the paper's architecture figure.
    """
    arch = name if '.' not in name else None
    if arch is not None:
        cfg = timm.models.get_pretrained_cfg(arch)
        if cfg is None or not cfg.tag:
            return REFERENCE_TOP1.get(arch)
        name = f'{arch}.{cfg.tag}'
    entry = load_manifest().get(name)
    if entry:
        return entry['top1']
    if name in REFERENCE_TOP1:
        return REFERENCE_TOP1[name]
    return REFERENCE_TOP1.get(arch) if arch is not None else None
