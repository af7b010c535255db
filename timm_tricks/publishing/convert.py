"""Publishing our Hub repos from the authors' checkpoints: convert, describe (model card), upload.

`convert_checkpoint('arch.tag', original_file, out_dir)` checks the authors' file against the manifest's checksum,
loads it through the family's checkpoint filter exactly as `pretrained_cfg_overlay=dict(file=...)` does
(weights_only / safetensors loading, strict), and writes the folder our Hub repo `timm-tricks/<arch>.<tag>` holds:
`model.safetensors` and `config.json` (timm's `save_for_hf`), a model card `README.md` and `conversion.json` (sha256
of the input and of every file written, library versions). Nothing written depends on the time: anyone with the
authors' file and the same library versions regenerates the same repo. `plan_upload` / `upload` push such a folder.
`write_card_files` writes the card and config.json before any download (the committed `weights/<arch.tag>/`).
"""
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import safetensors
import timm
import torch
from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from timm.data import ImageNetInfo
from timm.models import model_entrypoint, save_for_hf
from timm.models._hub import generate_readme, save_config_for_hf
from torch import nn

from .._registry import model_family
from .._version import __version__
from ..errors import TricksError
from ..weights import ManifestEntry, manifest_entry
from ..weights.origin import check_checksum, sha256_file

PUBLISHING_ORG = 'timm-tricks'
WEIGHTS_FILE = 'model.safetensors'
CONFIG_FILE = 'config.json'
CARD_FILE = 'README.md'
RECORD_FILE = 'conversion.json'
REPO_FILES = (CARD_FILE, CONFIG_FILE, RECORD_FILE, WEIGHTS_FILE)
AT_PUBLISH = 'filled in when the repo is published'  # card fields only the authors' downloaded file can give

# manifest keys of reported results and how the card names them
REPORTED_METRICS = {
    'top1': 'top-1 (%)', 'top5': 'top-5 (%)',
    'coco_box_ap': 'COCO val2017 box AP', 'coco_mask_ap': 'COCO val2017 mask AP',
}

_SAMPLE_IMAGE = 'https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/beignets-task-guide.png'

PathLike = Union[str, os.PathLike]


class PublishError(TricksError):
    """A conversion or upload that was refused; the message says why and what to do."""


class HostingRestrictedError(PublishError):
    """An upload of a checkpoint whose manifest entry restricts hosting, without the note accepted."""


@dataclass(frozen=True)
class FeatureLevel:
    module: str
    channels: int
    stride: int
    shape: Tuple[int, ...]  # of one image at the cfg's input size


@dataclass(frozen=True)
class Conversion:
    """What `convert_checkpoint` wrote, as recorded in the folder's `conversion.json`."""
    name: str
    out_dir: Path
    hf_hub_id: str
    original_sha256: Optional[str]  # None: a card written before the download (`write_card_files`)
    checksum: Optional[str]  # the manifest's, verified; None where the source publishes none
    weights_sha256: Optional[str]
    params: int
    macs: Optional[int]
    hosting: Optional[str]


def our_entry(name: str) -> ManifestEntry:
    """The manifest entry of `name`, which must be published by us (a `timm-tricks/` repo)."""
    entry = manifest_entry(name)
    if not entry.hf_hub_id.startswith(PUBLISHING_ORG + '/'):
        raise PublishError(
            f"'{name}' loads {entry.hf_hub_id}, which {PUBLISHING_ORG} does not publish "
            f"({entry.hosting or 'another organisation'}): there is no repo of ours to convert it for")
    return entry


def convert_checkpoint(name: str, original_file: PathLike, out_dir: PathLike, count_macs: bool = True) -> Conversion:
    """Convert the authors' checkpoint of `name` (`arch.tag`) into a Hub-ready folder `out_dir` (new or empty).

    `count_macs=False` leaves the fvcore MAC count out of the card (it takes seconds per model).
    """
    entry = our_entry(name)
    original = Path(original_file)
    if not original.is_file():
        raise PublishError(f'{original} is not a file')
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise PublishError(f'{out_dir} exists and is not an empty folder; choose another or delete it')

    original_sha256 = check_checksum(original, entry.checksum_digits)
    try:  # timm's own path for local weights: weights_only loading, the family's filter fn, strict load_state_dict
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(original))).eval()
    except TricksError:
        raise  # the filter's errors already name the keys and shapes
    except RuntimeError as e:  # strict loading, or a file torch.load refuses
        raise PublishError(f'{original} does not load strictly into {name}: {e}') from e
    params = sum(p.numel() for p in model.parameters())
    input_size = tuple(model.pretrained_cfg['input_size'])
    macs = _count_macs(model, input_size) if count_macs else None

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # written next to out_dir and renamed at the end: an interrupted run leaves no half-written repo folder
    staging = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', dir=out_dir.parent))
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would make the published folder private to its creator
        save_for_hf(model, staging, model_config=_label_config(entry, model), safe_serialization=True)
        conversion = Conversion(
            name=name, out_dir=out_dir, hf_hub_id=entry.hf_hub_id, original_sha256=original_sha256,
            checksum=entry.checksum, weights_sha256=sha256_file(staging / WEIGHTS_FILE), params=params,
            macs=macs, hosting=entry.hosting)
        card = model_card(conversion, entry, model, original.name, feature_levels(_meta_model(name), input_size))
        (staging / CARD_FILE).write_text(card, encoding='utf-8')
        record = _conversion_record(conversion, entry, original, staging)
        (staging / RECORD_FILE).write_text(json.dumps(record, indent=1) + '\n', encoding='utf-8')
        if out_dir.exists():
            out_dir.rmdir()
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return conversion


def write_card_files(name: str, folder: PathLike) -> None:
    """Write the model card README.md and config.json of `name`'s Hub repo into `folder` (created if needed).

    From the manifest and the registry alone, with the code `convert_checkpoint` uses: these are the committed
    `weights/<arch.tag>/` files. What only the authors' file can tell (its sha256, the converted file's, the
    versions that converted it) reads AT_PUBLISH; `convert_checkpoint` writes the complete card.
    """
    entry = our_entry(name)
    model = _meta_model(name)
    conversion = Conversion(
        name=name, out_dir=Path(folder), hf_hub_id=entry.hf_hub_id, original_sha256=None, checksum=entry.checksum,
        weights_sha256=None, params=sum(p.numel() for p in model.parameters()), macs=None, hosting=entry.hosting)
    conversion.out_dir.mkdir(parents=True, exist_ok=True)
    save_config_for_hf(model, conversion.out_dir / CONFIG_FILE, model_config=_label_config(entry, model))
    levels = feature_levels(model, tuple(model.pretrained_cfg['input_size']))
    card = model_card(conversion, entry, model, entry.original_filename or 'ORIGINAL_FILE', levels)
    (conversion.out_dir / CARD_FILE).write_text(card, encoding='utf-8')


def _count_macs(model: nn.Module, input_size: Tuple[int, ...]) -> int:
    from ..profile import count_flops  # imports fvcore: only when MACs are wanted
    return count_flops(model, input_size).total


def _label_config(entry: ManifestEntry, model: nn.Module) -> Dict[str, Any]:
    """`label_names` (synsets) and `label_descriptions` for config.json, as timm's own ImageNet repos carry them."""
    if entry.dataset != 'imagenet-1k' or model.num_classes != 1000:
        return {}
    info = ImageNetInfo('imagenet-1k')
    return dict(label_names=info.label_names(), label_descriptions=info.label_descriptions(as_dict=True))


def feature_levels(model: nn.Module, input_size: Tuple[int, ...]) -> List[FeatureLevel]:
    """The `features_only` levels of `model` (on the meta device) with their output shapes, from a forward on the
    meta device (exact shapes without computing anything)."""
    with torch.no_grad():
        outputs = model.eval().forward_intermediates(
            torch.empty(1, *input_size, device='meta'), intermediates_only=True)
    return [
        FeatureLevel(info['module'], info['num_chs'], info['reduction'], tuple(out.shape))
        for info, out in zip(model.feature_info, outputs)
    ]


def _meta_model(name: str) -> nn.Module:
    with torch.device('meta'):  # names, shapes and cfg are all a card needs: nothing is allocated
        return timm.create_model(name)


def _conversion_record(
        conversion: Conversion, entry: ManifestEntry, original: Path, folder: Path) -> Dict[str, Any]:
    return {
        'name': conversion.name,
        'hf_hub_id': conversion.hf_hub_id,
        'original': {
            'file': original.name,
            'size': original.stat().st_size,
            'sha256': conversion.original_sha256,
            'manifest_checksum': conversion.checksum,
            'download_url': entry.download_url,
        },
        'files': {
            name: {'size': (folder / name).stat().st_size,
                   'sha256': conversion.weights_sha256 if name == WEIGHTS_FILE else sha256_file(folder / name)}
            for name in (CARD_FILE, CONFIG_FILE, WEIGHTS_FILE)
        },
        'params': conversion.params,
        'macs': conversion.macs,
        'hosting': conversion.hosting,
        'versions': {'timm_tricks': __version__, 'timm': timm.__version__, 'torch': torch.__version__,
                     'safetensors': safetensors.__version__},
    }


# ---------------------------------------------------------------------------------------------------- model card

def model_card(conversion: Conversion, entry: ManifestEntry, model: nn.Module, original_name: str,
               levels: List[FeatureLevel]) -> str:
    """The repo's README.md: timm's card layout (front matter, details, usage, citation) plus provenance."""
    name, arch = conversion.name, conversion.name.split('.', 1)[0]
    classifier = model.num_classes > 0
    task = 'image-classification' if classifier else 'image-feature-extraction'
    cfg = model.pretrained_cfg
    arxiv_id = entry.paper_ids.removeprefix('arXiv:')
    size = cfg['input_size']

    stats = {'Params (M)': f'{conversion.params / 1e6:.2f}'}
    if conversion.macs is not None:
        stats['GMACs'] = f'{conversion.macs / 1e9:.2f} (fvcore, one {size[1]} x {size[2]} image)'
    stats['Image size'] = f'{size[1]} x {size[2]}'
    if cfg.get('test_input_size'):
        stats['Image size'] += f' (test: {cfg["test_input_size"][1]} x {cfg["test_input_size"][2]})'

    evaluation = entry.eval
    eval_size = evaluation['img_size']  # an int, or [w, h]
    eval_size = ' x '.join(map(str, eval_size)) if isinstance(eval_size, list) else eval_size
    reported = {
        label: f"{getattr(entry, key)} (eval {eval_size} px, crop {evaluation['crop_pct']}, "
               f"{evaluation['interpolation']})"
        for key, label in REPORTED_METRICS.items() if getattr(entry, key) is not None
    }
    reported.update({f'top-1 (%) at {px} px': top1 for px, top1 in entry.test_top1.items()})
    if conversion.original_sha256 is None:
        original_digest = AT_PUBLISH + (f" (must match the manifest's {conversion.checksum})"
                                        if conversion.checksum else '')
    elif conversion.checksum:
        original_digest = f"{conversion.original_sha256} (matches the manifest's {conversion.checksum})"
    else:
        original_digest = f'{conversion.original_sha256} (the source publishes no checksum; recorded here)'
    converted_with = AT_PUBLISH if conversion.weights_sha256 is None else (
        f'timm-tricks {__version__}, timm {timm.__version__}, torch {torch.__version__}')
    details = {
        'Model Type': 'Image classification / feature backbone' if classifier else 'Feature backbone',
        'Model Stats': stats,
        'Papers': {entry.paper_name: f'https://arxiv.org/abs/{arxiv_id}'},
        'Dataset': entry.dataset,
        'Reported': reported or 'no result of its own; see the notes',
        'Recipe': entry.recipe,
        'Original': {
            'Code': entry.source_repo,
            'Weights': entry.download_url,
            'Format': entry.format,
        },
        'Conversion': {
            'Command': f'`timm-tricks convert {name} {original_name} OUT_DIR`',
            f'{original_name} sha256': original_digest,
            f'{WEIGHTS_FILE} sha256': conversion.weights_sha256 or AT_PUBLISH,
            'Converted with': converted_with,
        },
    }
    if entry.notes:
        details['Notes'] = list(entry.notes)

    summary = (model_entrypoint(arch).__doc__ or arch).strip().splitlines()[0]
    description = (
        f"{summary} From \"{entry.paper_name}\", with the released weights (see Original) converted for timm "
        'by timm-tricks. `import timm_tricks` before `timm.create_model`: it registers the architecture.')
    if conversion.hosting:
        description += f'\n\n> **Hosting:** {conversion.hosting}'
    citation = (
        f'@misc{{arxiv{arxiv_id},\n  title = {{{entry.paper_name}}},\n  eprint = {{{arxiv_id}}},\n'
        f'  archivePrefix = {{arXiv}},\n  url = {{https://arxiv.org/abs/{arxiv_id}}}\n}}')
    card = dict(
        license=entry.license,
        tags=[task, 'timm', PUBLISHING_ORG, model_family(arch)],
        description=description,
        details=details,
        usage=_usage(name, conversion.hf_hub_id, classifier, model.num_features, levels),
        citation=citation,
    )
    return generate_readme(card, name, task_name=task)


def _usage(name: str, repo: str, classifier: bool, num_features: int, levels: List[FeatureLevel]) -> str:
    load = (
        'from urllib.request import urlopen\nfrom PIL import Image\nimport torch\nimport timm\n'
        'import timm_tricks  # registers the architecture with timm\n\n'
        f"img = Image.open(urlopen('{_SAMPLE_IMAGE}'))\n")
    transform = (
        'data_config = timm.data.resolve_model_data_config(model)\n'
        'transforms = timm.data.create_transform(**data_config, is_training=False)\n\n'
        'with torch.inference_mode():\n    output = model(transforms(img).unsqueeze(0))\n')
    parts = []
    if classifier:
        parts.append(
            f"### Image Classification\n```python\n{load}\n"
            f"model = timm.create_model('{name}', pretrained=True).eval()  # or 'hf-hub:{repo}'\n{transform}"
            'top5_probabilities, top5_class_indices = torch.topk(output.softmax(dim=1) * 100, k=5)\n```\n')
    shapes = '\n'.join(f'# torch.Size({list(level.shape)})' for level in levels)
    table = '\n'.join(
        f'| {i} | `{level.module}` | {level.channels} | {level.stride} |' for i, level in enumerate(levels))
    parts.append(
        f"### Feature Map Extraction\n```python\n{load}\n"
        f"model = timm.create_model('{name}', pretrained=True, features_only=True).eval()\n{transform}"
        f'for o in output:\n    print(o.shape)\n{shapes}\n```\n\n'
        'Levels (`out_indices`, channels and stride, e.g. for the `in_channels` of a detection or segmentation '
        f'neck):\n\n| level | module | channels | stride |\n|---|---|---|---|\n{table}\n\n'
        f'`out_indices=(1, 2, 3, 4)` gives channels {[level.channels for level in levels[1:]]}.\n')
    parts.append(
        f"### Image Embeddings\n```python\n{load}\n"
        f"model = timm.create_model('{name}', pretrained=True, num_classes=0).eval()\n{transform}"
        f'# output: (1, {num_features}) pooled features\n```\n')
    return '\n'.join(parts)


# -------------------------------------------------------------------------------------------------------- upload

@dataclass(frozen=True)
class UploadPlan:
    """What `upload` sends where; checked without network access."""
    folder: Path
    repo_id: str
    url: str
    files: Tuple[Tuple[str, int], ...]  # (name, size in bytes)
    converted_for: str  # the repo the folder was converted for (its manifest entry's)
    hosting: Optional[str]


def plan_upload(folder: PathLike, repo_id: str, accept_hosting_note: bool = False) -> UploadPlan:
    """Check that `folder` is an unmodified `convert_checkpoint` output and may be uploaded to `repo_id`.

    A folder whose manifest entry carries a `hosting` note is refused unless `accept_hosting_note`: a person must
    have read the note (e.g. licence not cleared) and decided that publishing is allowed.
    """
    folder = Path(folder)
    if '/' not in repo_id:
        raise PublishError(f"REPO_ID must be 'namespace/name', e.g. {PUBLISHING_ORG}/pyconv_resnet50.in1k; got "
                           f"'{repo_id}'")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise PublishError(f'invalid REPO_ID: {e}') from None
    missing = [name for name in REPO_FILES if not (folder / name).is_file()]
    if missing:
        raise PublishError(
            f"{folder} is not a converted folder: no {', '.join(missing)} (run `timm-tricks convert` first)")
    record = json.loads((folder / RECORD_FILE).read_text(encoding='utf-8'))
    changed = [name for name, facts in record['files'].items() if sha256_file(folder / name) != facts['sha256']]
    if changed:
        raise PublishError(
            f"{', '.join(changed)} in {folder} changed after the conversion (sha256 differs from {RECORD_FILE}): "
            'convert again rather than editing the output')
    if record['hosting'] and not accept_hosting_note:
        raise HostingRestrictedError(
            f"the weights manifest restricts hosting {record['name']}: {record['hosting']} -- if publishing is "
            'allowed, pass --accept-hosting-note')
    return UploadPlan(
        folder=folder,
        repo_id=repo_id,
        url=f'{constants.ENDPOINT}/{repo_id}',
        files=tuple((name, (folder / name).stat().st_size) for name in REPO_FILES),
        converted_for=record['hf_hub_id'],
        hosting=record['hosting'],
    )


def upload(plan: UploadPlan) -> str:
    """Create the repo if needed and upload the plan's files in one commit; returns the commit URL.

    The token comes from huggingface_hub's usual sources (`HF_TOKEN`, `hf auth login`).
    """
    token = get_token()
    if token is None:
        raise PublishError('no Hugging Face token: run `hf auth login` or set HF_TOKEN (a write token)')
    api = HfApi(token=token)
    api.create_repo(plan.repo_id, exist_ok=True)
    commit = api.upload_folder(
        repo_id=plan.repo_id,
        folder_path=plan.folder,
        allow_patterns=[name for name, _ in plan.files],
        commit_message=f'Add {plan.converted_for.split("/", 1)[-1]} converted from the authors\' checkpoint',
    )
    return commit.commit_url


def format_size(size: int) -> str:
    if size < 1000:
        return f'{size} B'
    exponent = min(int(math.log10(size) // 3), 3)
    return f"{size / 1000 ** exponent:.1f} {('kB', 'MB', 'GB')[exponent - 1]}"
