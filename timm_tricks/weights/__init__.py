"""What each published checkpoint is and where it came from: `manifest.json`, one entry per `arch.tag`.

The manifest is the single source of the per-tag facts (Hub repo, the authors' download, checksum, licence,
paper, reported accuracy and its evaluation settings); the families' `default_cfgs` are built from it with
`released_cfg`, so the registry and the manifest cannot drift apart. Entries are read into `ManifestEntry`
records, checked field by field when the file is loaded.

This is the bottom layer of the package: the model families import it, so it imports nothing of timm_tricks but
`errors`. `origin` (the authors' downloads, used by `pretrained=True`) sits beside it; publishing our Hub repos
is `timm_tricks.publishing`.
"""
import json
import os
import re
from dataclasses import MISSING, dataclass, field, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import timm

from ..errors import TricksError, UnknownModelError

_CHECKSUM = re.compile(r'sha256:[0-9a-f]{8,64}')


class ManifestError(TricksError):
    """A weights manifest entry that breaks the schema (timm_tricks/weights/README.md); names tag and field."""


@dataclass(frozen=True)
class ManifestEntry:
    """One `arch.tag` of manifest.json; the fields are the JSON keys (schema: timm_tricks/weights/README.md)."""
    hf_hub_id: str
    source_repo: str
    download_url: str
    original_filename: Optional[str]
    checksum: Optional[str]  # 'sha256:' + the full digest or a prefix of >= 8 hex digits
    license: str
    paper_ids: str
    paper_name: str
    dataset: str
    top1: Optional[float]
    eval: Mapping[str, Any]  # img_size, crop_pct, interpolation
    format: str
    recipe: str
    hosting: Optional[str] = None
    notes: Tuple[str, ...] = ()
    test_top1: Mapping[str, float] = field(default_factory=dict)
    top5: Optional[float] = None
    coco_box_ap: Optional[float] = None
    coco_mask_ap: Optional[float] = None

    @property
    def checksum_digits(self) -> Optional[str]:
        """The hex digits of `checksum` (a full sha256 or a prefix), or None where the source publishes none."""
        return None if self.checksum is None else self.checksum.removeprefix('sha256:')


_NUMBER = (int, float)
# accepted JSON types per field (None: null allowed)
_TYPES = {
    'original_filename': (str, type(None)), 'checksum': (str, type(None)), 'top1': _NUMBER + (type(None),),
    'eval': (dict,), 'hosting': (str,), 'notes': (list,), 'test_top1': (dict,),
    'top5': _NUMBER, 'coco_box_ap': _NUMBER, 'coco_mask_ap': _NUMBER,
}


def _entry(name: str, raw: Any) -> ManifestEntry:
    """A validated `ManifestEntry` from the JSON object `raw`; ManifestError names the tag and the field."""
    def fail(message: str) -> ManifestError:
        return ManifestError(f"weights manifest entry '{name}': {message} (schema: timm_tricks/weights/README.md)")

    if not isinstance(raw, dict):
        raise fail(f'expected a JSON object, got {type(raw).__name__}')
    known = {f.name: f for f in fields(ManifestEntry)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise fail(f"unknown field '{unknown[0]}'")
    for key, spec in known.items():
        if key not in raw:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise fail(f"field '{key}' is missing")
            continue
        value = raw[key]
        accepted = _TYPES.get(key, (str,))
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise fail(f"field '{key}' must be {' or '.join(t.__name__ for t in accepted)}, got {value!r}")
    if raw.get('checksum') is not None and not _CHECKSUM.fullmatch(raw['checksum']):
        raise fail(f"field 'checksum' {raw['checksum']!r} is malformed: expected 'sha256:' and 8 to 64 lowercase "
                   'hex digits')
    values = dict(raw)
    values['notes'] = tuple(raw.get('notes', ()))
    values['eval'] = MappingProxyType(dict(raw['eval']))
    values['test_top1'] = MappingProxyType(dict(raw.get('test_top1', {})))
    return ManifestEntry(**values)


@lru_cache(maxsize=None)
def load_manifest() -> Dict[str, ManifestEntry]:
    """Every entry of manifest.json, validated, keyed `arch.tag`."""
    raw = json.loads(resources.files(__name__).joinpath('manifest.json').read_text(encoding='utf-8'))
    return {name: _entry(name, value) for name, value in raw.items()}


def manifest_entry(name: str) -> ManifestEntry:
    """The manifest entry of a tag `arch.tag`."""
    try:
        return load_manifest()[name]
    except KeyError:
        raise UnknownModelError(f"No published checkpoint '{name}' in the weights manifest.") from None


def load_tag_map(path: Union[str, os.PathLike], what: str) -> Dict[str, str]:
    """A JSON file `{"arch.tag": "<what>"}` (e.g. mirror URLs per tag), every key checked against the manifest."""
    try:
        mapping = json.loads(Path(path).read_text(encoding='utf-8'))
    except (OSError, ValueError) as e:  # missing, unreadable, not JSON
        raise TricksError(f'{path}: cannot read it as JSON ({e})') from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise TricksError(f'{path}: expected a JSON object {{"arch.tag": "{what}"}}')
    unknown = sorted(set(mapping) - set(load_manifest()))
    if unknown:
        raise TricksError(f"{path}: not in the weights manifest: {', '.join(unknown)}")
    return mapping


def released_cfg(name: str, **cfg: Any) -> Dict[str, Any]:
    """`cfg` plus the weight source and provenance fields of the manifest entry `name` (`arch.tag`).

    The cfg's `url` is the entry's `download_url` (the authors' own download).
    `pretrained=True` loads `hf_hub_id` first and falls back to `url` only where the Hub has no such repo or file
    (see `timm_tricks.weights.origin`), so `pretrained_cfg_overlay=dict(url=...)` points that fallback at a mirror.
    """
    entry = manifest_entry(name)
    ev = entry.eval
    if entry.top1 is None:  # nothing reported for this checkpoint: the entry's notes say why
        notes = list(entry.notes)
    else:
        notes = [f"Reported ImageNet-1k top-1 {entry.top1} at {ev['img_size']} (crop {ev['crop_pct']})."]
    notes += [f'Reported top-1 {top1} at {size}.' for size, top1 in entry.test_top1.items()]
    out = dict(
        cfg,
        hf_hub_id=entry.hf_hub_id,
        origin_url=entry.source_repo,
        license=entry.license,
        paper_ids=entry.paper_ids,
        paper_name=entry.paper_name,
        notes=tuple(notes),
        description=entry.recipe,
        url=entry.download_url,
    )
    if entry.test_top1:
        size = int(max(entry.test_top1, key=int))
        out['test_input_size'] = (3, size, size)
    return out


@lru_cache(maxsize=None)
def _reference_top1() -> Dict[str, float]:
    raw = json.loads(resources.files(__name__).joinpath('reference_top1.json').read_text(encoding='utf-8'))
    return {k: v for k, v in raw.items() if not k.startswith('_')}


def reported_top1(name: str) -> Optional[float]:
    """Reported top-1 of `arch.tag`, or of a bare arch's default tag; None where nothing was reported.

    Our checkpoints come from the manifest. timm's reference models (reference_top1.json, not ours) are looked up
    as `arch.tag`, and a bare reference arch without a reported default tag gives the paper's architecture figure.
    """
    reference = _reference_top1()
    arch = name if '.' not in name else None
    if arch is not None:
        cfg = timm.models.get_pretrained_cfg(arch)
        if cfg is None or not cfg.tag:
            return reference.get(arch)
        name = f'{arch}.{cfg.tag}'
    entry = load_manifest().get(name)
    if entry:
        return entry.top1
    if name in reference:
        return reference[name]
    return reference.get(arch) if arch is not None else None
