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


@lru_cache(maxsize=None)
def load_manifest() -> Dict[str, Dict[str, Any]]:
    return json.loads(resources.files(__name__).joinpath('manifest.json').read_text(encoding='utf-8'))


def manifest_entry(name: str) -> Dict[str, Any]:
    """The manifest entry of a tag `arch.tag`."""
    try:
        return load_manifest()[name]
    except KeyError:
        raise UnknownModelError(f"No published checkpoint '{name}' in the weights manifest.") from None


def released_cfg(name: str, **cfg: Any) -> Dict[str, Any]:
    """`cfg` plus the weight source and provenance fields of the manifest entry `name` (`arch.tag`)."""
    entry = manifest_entry(name)
    ev = entry['eval']
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
    if 'recipe' in entry:
        out['description'] = entry['recipe']
    if entry.get('test_top1'):
        size = int(max(entry['test_top1'], key=int))
        out['test_input_size'] = (3, size, size)
    return out


def reported_top1(name: str) -> Optional[float]:
    """Reported top-1 of `arch.tag`, or of a bare arch's default tag; None where nothing was reported."""
    if '.' not in name:
        cfg = timm.models.get_pretrained_cfg(name)
        if cfg is None or not cfg.tag:
            return None
        name = f'{name}.{cfg.tag}'
    entry = load_manifest().get(name)
    return entry['top1'] if entry else None
