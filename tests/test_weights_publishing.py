"""Publishing weights: the manifest against the registry, `timm-tricks convert` / `push`, scripts/publish_all.py.

Each family with released weights: a checkpoint in the authors' layout, built by the family's reference from its
spec (references/<family>.py, independent of our model classes), is converted; the exported folder is served by the
local Hub server and `timm.create_model('<arch>.<tag>', pretrained=True)` must give the outputs that reference's
forward computes from the authors' tensors.
"""
import contextlib
import dataclasses
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Tuple
from urllib.parse import urlsplit

import pytest
import timm
import torch
import yaml
from huggingface_hub import constants
from safetensors.torch import load_file

import timm_tricks
import timm_tricks.publishing
from timm_tricks.cli import main as cli_main
from timm_tricks.weights import ManifestError, load_manifest
from timm_tricks.weights.origin import ChecksumMismatchError, check_checksum

from authors_checkpoints import FAMILY_CHECKPOINTS, PYCONV, AuthorsCheckpoint, assert_authors_outputs
from references import pyconv_resnet as pyconv_spec
from spec_figures import SPEC_FIGURES

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST = load_manifest()  # the loaded records; the schema tests read the JSON itself
RAW_MANIFEST = json.loads((REPO_ROOT / 'timm_tricks' / 'weights' / 'manifest.json').read_text(encoding='utf-8'))
# pyconv.md: the five feature levels of a PyConvResNet-50 (module, channels, stride)
PYCONV_LEVELS = [('act1', 64, 2), ('layer1', 256, 4), ('layer2', 512, 8), ('layer3', 1024, 16), ('layer4', 2048, 32)]


# ----------------------------------------------------------------------------------------------------- the manifest

REQUIRED_KEYS = {
    'hf_hub_id', 'source_repo', 'download_url', 'original_filename', 'checksum', 'license', 'paper_ids',
    'paper_name', 'dataset', 'top1', 'eval', 'format', 'recipe'}
OPTIONAL_KEYS = {'hosting', 'notes', 'test_top1', 'top5', 'coco_box_ap', 'coco_mask_ap'}
WEIGHT_FILE = re.compile(r'\.(pth|pt|pkl|bin|tar|safetensors)$')
HASH_IN_FILENAME = re.compile(r'-([0-9a-f]{8,64})\.(pth|pt|pkl|bin|pth\.tar)$')  # torch.hub / mmcv convention


def _is_number(value, low=0., high=100.) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low < value <= high


def _text(value) -> bool:
    return isinstance(value, str) and value.strip() != ''


def _schema_problems(name: str, entry: dict) -> List[str]:
    """Every rule of timm_tricks/weights/README.md that `entry` breaks."""
    problems = []
    missing, unknown = REQUIRED_KEYS - set(entry), set(entry) - REQUIRED_KEYS - OPTIONAL_KEYS
    if missing or unknown:
        return [f'missing keys {sorted(missing)}, unknown keys {sorted(unknown)}']
    hosting = entry.get('hosting')
    if '.' not in name or not timm_tricks.is_ours(name):
        problems.append('key is not arch.tag of one of our architectures')
    if entry['hf_hub_id'] != f'timm-tricks/{name}' and not (
            not entry['hf_hub_id'].startswith('timm-tricks/') and hosting and entry['hf_hub_id'] in hosting):
        problems.append(f"hf_hub_id {entry['hf_hub_id']}: not timm-tricks/{name}, nor another org's repo that the "
                        'hosting note names')
    for key in ('source_repo', 'download_url'):
        if not str(entry[key]).startswith('https://'):
            problems.append(f'{key} is not an https URL')
    filename, checksum = entry['original_filename'], entry['checksum']
    if filename is not None and (not _text(filename) or '/' in filename):
        problems.append(f'original_filename {filename!r} is not a file name')
    url_name = urlsplit(str(entry['download_url'])).path.rsplit('/', 1)[-1]
    if WEIGHT_FILE.search(url_name) and url_name != filename:
        problems.append(f'download_url names {url_name}, original_filename is {filename}')
    if checksum is not None and not re.fullmatch(r'sha256:[0-9a-f]{8,64}', str(checksum)):
        problems.append(f'checksum {checksum!r} is not sha256: + 8-64 lowercase hex digits')
    published = HASH_IN_FILENAME.search(filename or '')
    if published and not str(checksum).removeprefix('sha256:').startswith(published[1]):
        problems.append(f'the file name publishes sha256 prefix {published[1]}, checksum is {checksum}')
    if not re.fullmatch(r'[a-z0-9][a-z0-9.-]*', str(entry['license'])):
        problems.append(f"license {entry['license']!r} is not a lowercase Hub licence id")
    if entry['license'] == 'unknown' and not hosting:
        problems.append('licence unknown without a hosting note')
    if not re.fullmatch(r'arXiv:\d{4}\.\d{4,5}', str(entry['paper_ids'])):
        problems.append(f"paper_ids {entry['paper_ids']!r} is not arXiv:NNNN.NNNNN")
    if not re.fullmatch(r'[a-z0-9-]+', str(entry['dataset'])):
        problems.append(f"dataset {entry['dataset']!r} is not a Hub dataset id")
    for key in ('paper_name', 'format', 'recipe'):
        if not _text(entry[key]):
            problems.append(f'{key} is empty')
    notes = entry.get('notes')
    if notes is not None and not (isinstance(notes, list) and notes and all(_text(n) for n in notes)):
        problems.append('notes is not a list of texts')
    if entry['top1'] is None and not notes:
        problems.append('top1 is null without notes saying why')
    if entry['top1'] is not None and not _is_number(entry['top1']):
        problems.append(f"top1 {entry['top1']!r} is not a percentage")
    ev = entry['eval']
    size = ev.get('img_size') if isinstance(ev, dict) else None
    size_ok = (isinstance(size, int) and size >= 32) or (
        isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s >= 32 for s in size))
    if not isinstance(ev, dict) or set(ev) != {'img_size', 'crop_pct', 'interpolation'} or not size_ok \
            or not _is_number(ev['crop_pct'], 0., 1.) or ev['interpolation'] not in ('bilinear', 'bicubic', 'nearest'):
        problems.append(f'eval {ev!r} is not {{img_size, crop_pct, interpolation}}')
    if 'hosting' in entry and not _text(hosting):
        problems.append('hosting note is empty')
    if 'test_top1' in entry and not (isinstance(entry['test_top1'], dict) and entry['test_top1'] and all(
            k.isdigit() and _is_number(v) for k, v in entry['test_top1'].items())):
        problems.append('test_top1 is not {"<img_size>": top-1}')
    for key in ('top5', 'coco_box_ap', 'coco_mask_ap'):
        if key in entry and not _is_number(entry[key]):
            problems.append(f'{key} is not a number')
    return problems


@pytest.mark.parametrize('name', sorted(RAW_MANIFEST))
def test_manifest_entry_schema(name):
    assert _schema_problems(name, RAW_MANIFEST[name]) == []


def test_schema_check_catches_broken_entries():
    good = RAW_MANIFEST['blurpool_resnet18.lpf4_ft_in1k']
    assert _schema_problems('blurpool_resnet18.lpf4_ft_in1k', good) == []
    broken = {
        'hf_hub_id': 'timm-tricks/blurpool_resnet18', 'checksum': 'sha256:8cc58f5', 'license': 'CC-BY',
        'top1': None, 'eval': dict(good['eval'], crop_pct=1.5)}
    problems = _schema_problems('blurpool_resnet18.lpf4_ft_in1k', dict(good, **broken))
    assert [p.split(' ')[0] for p in problems] == ['hf_hub_id', 'checksum', 'the', 'license', 'top1', 'eval']
    assert _schema_problems('x.y', {'hostng': ''}) == [
        f"missing keys {sorted(REQUIRED_KEYS)}, unknown keys ['hostng']"]


def test_manifest_and_registry_agree_tag_for_tag():
    registered = set(timm_tricks.list_models(pretrained=True))
    assert sorted(registered - set(MANIFEST)) == [], 'registered with weights, not in the manifest'
    assert sorted(set(MANIFEST) - registered) == [], 'in the manifest, not registered with weights'
    disagreements = []
    for name in sorted(registered):
        cfg, entry = timm.models.get_pretrained_cfg(name), MANIFEST[name]
        pairs = [(cfg.hf_hub_id, entry.hf_hub_id), (cfg.license, entry.license),
                 (cfg.paper_ids, entry.paper_ids), (cfg.paper_name, entry.paper_name),
                 (cfg.origin_url, entry.source_repo), (cfg.url, entry.download_url)]  # url: the origin fallback
        disagreements += [f'{name}: cfg {got!r} vs manifest {want!r}' for got, want in pairs if got != want]
    assert disagreements == []


def test_checksum_full_digest_and_prefix(tmp_path):
    path = tmp_path / 'weights.pth'
    path.write_bytes(b'the authors weights')
    digest = hashlib.sha256(b'the authors weights').hexdigest()
    assert check_checksum(path, None) == digest
    assert check_checksum(path, digest) == digest
    assert check_checksum(path, digest[:8]) == digest
    other = format(int(digest[:8], 16) ^ 1, '08x')
    with pytest.raises(ChecksumMismatchError, match=f'sha256 {digest}.*starting with {other}'):
        check_checksum(path, other)
    with pytest.raises(ChecksumMismatchError, match=f'expects {other}{digest[8:]}:'):
        check_checksum(path, f'{other}{digest[8:]}')


# ------------------------------------------------------------------------------------- the authors' checkpoints

@dataclass
class Converted:
    name: str
    original: AuthorsCheckpoint
    folder: Path
    stdout: str
    stderr: str


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_cli(*args: str) -> Tuple[int, str, str]:
    """`timm-tricks ARGS` in this process: (exit code, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli_main(list(args))
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope='module')
def converted(tmp_path_factory) -> Callable[[str], Converted]:
    """`converted(tag)`: the family's authors' checkpoint and its `timm-tricks convert --no-macs` folder (cached)."""
    cache: Dict[str, Converted] = {}

    def get(name: str) -> Converted:
        if name not in cache:
            root = tmp_path_factory.mktemp(name)
            original = FAMILY_CHECKPOINTS[name](root / 'authors.pth')
            with pytest.MonkeyPatch.context() as patch:
                published = MANIFEST[name].checksum_digits
                if published is not None:  # the authors publish a hash prefix: ours stands in for theirs
                    checksum = f'sha256:{_sha256(original.path)[:len(published)]}'
                    patch.setitem(MANIFEST, name, dataclasses.replace(MANIFEST[name], checksum=checksum))
                code, out, err = run_cli('convert', name, str(original.path), str(root / name), '--no-macs')
            assert code == 0, err
            cache[name] = Converted(name, original, root / name, out, err)
        return cache[name]

    return get


@pytest.mark.parametrize('name', sorted(FAMILY_CHECKPOINTS))
def test_exported_repo_loads_by_tag_and_gives_the_authors_outputs(hub, converted, name):
    conv = converted(name)
    repo = MANIFEST[name].hf_hub_id
    hub.server.add_repo_from_folder(repo, conv.folder)
    try:
        model = timm.create_model(name, pretrained=True, **conv.original.create_kwargs)
        assert [(r.method, r.status) for r in hub.requests] == [('HEAD', 302), ('GET', 200)]
        assert f'/{repo}/resolve/main/model.safetensors' in hub.requests[0].path
        assert_authors_outputs(model, conv.original)
    finally:
        hub.server.remove_repo(repo)


def test_exported_repo_loads_with_hf_hub_and_local_dir(hub, converted):
    conv = converted(PYCONV)
    repo = f'timm-tricks/{PYCONV}'
    hub.server.add_repo_from_folder(repo, conv.folder)
    try:
        model = timm.create_model(f'hf-hub:{repo}', pretrained=True)
        assert ('GET', f'/{repo}/resolve/main/config.json', 200) in hub.requests
        assert model.pretrained_cfg['tag'] == 'in1k' and model.pretrained_cfg['license'] == 'mit'
        assert_authors_outputs(model, conv.original)
    finally:
        hub.server.remove_repo(repo)
    hub.clear_log()
    local = timm.create_model(f'local-dir:{conv.folder}', pretrained=True)
    assert hub.requests == []
    assert_authors_outputs(local, conv.original)


def test_exported_files_config_and_hashes(converted):
    conv = converted(PYCONV)
    assert sorted(p.name for p in conv.folder.iterdir()) == [
        'README.md', 'config.json', 'conversion.json', 'model.safetensors']
    assert [p.name for p in conv.folder.parent.iterdir() if p.name.startswith('.')] == []  # no staging left

    config = json.loads((conv.folder / 'config.json').read_text())
    assert (config['architecture'], config['num_classes'], config['num_features'], config['global_pool']) == (
        'pyconv_resnet50', 1000, 2048, 'avg')
    assert len(config['label_names']) == 1000 and config['label_names'][0] == 'n01440764'  # ImageNet's class 0
    assert config['label_descriptions']['n01440764'].startswith('tench')
    cfg = config['pretrained_cfg']
    assert (cfg['tag'], cfg['license'], cfg['paper_ids'], cfg['input_size']) == ('in1k', 'mit', 'arXiv:2006.11538',
                                                                                [3, 224, 224])
    assert not {'file', 'hf_hub_id', 'url'} & set(cfg)  # the source is wherever the folder is served from

    weights = load_file(conv.folder / 'model.safetensors')
    authors = conv.original.state_dict  # the authors' key names are ours
    assert all(torch.equal(weights[k], v) for k, v in authors.items())
    assert set(weights) == set(authors)

    record = json.loads((conv.folder / 'conversion.json').read_text())
    assert record['original']['sha256'] == _sha256(conv.original.path)
    assert record['original']['manifest_checksum'] is None and record['hosting'] is None
    for name in ('README.md', 'config.json', 'model.safetensors'):
        assert record['files'][name]['sha256'] == _sha256(conv.folder / name)
    assert record['params'] == SPEC_FIGURES['pyconv_resnet50'].params and record['macs'] is None
    assert "no checksum: recorded, not verified" in conv.stdout and conv.stderr == ''


def _front_matter(card: str) -> Tuple[dict, str]:
    match = re.fullmatch(r'---\n(.*?)\n---\n(.*)', card, re.S)
    assert match, 'the card has no YAML front matter'
    return yaml.safe_load(match[1]), match[2]


def test_model_card(converted):
    conv = converted(PYCONV)
    meta, body = _front_matter((conv.folder / 'README.md').read_text())
    assert meta['license'] == 'mit' and meta['library_name'] == 'timm'
    assert meta['pipeline_tag'] == 'image-classification' and meta['datasets'] == ['imagenet-1k']
    assert {'timm', 'timm-tricks', 'image-classification'} <= set(meta['tags'])
    assert f"Params (M): {SPEC_FIGURES['pyconv_resnet50'].params / 1e6:.2f}" in body
    assert 'GMACs' not in body  # --no-macs
    assert 'top-1 (%): 77.88 (eval 224 px, crop 0.875, bilinear)' in body
    record = json.loads((conv.folder / 'conversion.json').read_text())
    assert record['original']['sha256'] in body and record['files']['model.safetensors']['sha256'] in body
    for i, (module, channels, stride) in enumerate(PYCONV_LEVELS):
        assert f'| {i} | `{module}` | {channels} | {stride} |' in body
        assert f'torch.Size([1, {channels}, {224 // stride}, {224 // stride}])' in body
    assert "timm.create_model('pyconv_resnet50.in1k', pretrained=True, features_only=True)" in body
    assert 'https://arxiv.org/abs/2006.11538' in body and '@misc{arxiv2006.11538' in body
    assert 'Hosting' not in body


@pytest.mark.parametrize('name', [name for name in FAMILY_CHECKPOINTS if MANIFEST[name].hosting])
def test_hosting_note_in_output_and_card(converted, name):
    conv = converted(name)
    entry = MANIFEST[name]
    assert f"warning: {name}: {entry.hosting}" in conv.stderr
    meta, body = _front_matter((conv.folder / 'README.md').read_text())
    assert f"> **Hosting:** {entry.hosting}" in body
    assert meta['license'] == entry.license and meta['datasets'] == [entry.dataset]
    if name.startswith('dcnv2'):  # a detection backbone without a classifier
        assert meta['pipeline_tag'] == 'image-feature-extraction' and '### Image Classification' not in body


def test_published_checksum_is_verified_and_recorded(converted):
    conv = converted('blurpool_resnet18.lpf4_ft_in1k')
    prefix = f'sha256:{_sha256(conv.original.path)[:8]}'
    assert f"matches the manifest's {prefix}) loaded strictly" in conv.stdout
    record = json.loads((conv.folder / 'conversion.json').read_text())
    assert record['original']['manifest_checksum'] == prefix
    assert f"(matches the manifest's {prefix})" in (conv.folder / 'README.md').read_text()


def test_convert_cli_counts_macs_and_is_reproducible(converted, tmp_path):
    conv = converted(PYCONV)
    out = tmp_path / 'again'
    code, stdout, stderr = run_cli('convert', PYCONV, str(conv.original.path), str(out))
    assert code == 0, stderr
    gmacs = f"{SPEC_FIGURES['pyconv_resnet50'].fvcore_total / 1e9:.2f}"
    assert f'GMACs {gmacs}' in stdout
    assert f'GMACs: {gmacs} (fvcore, one 224 x 224 image)' in (out / 'README.md').read_text()
    assert f'next: timm-tricks push {out} timm-tricks/{PYCONV} --dry-run' in stdout
    for name in ('model.safetensors', 'config.json'):  # same input, same bytes
        assert (out / name).read_bytes() == (conv.folder / name).read_bytes()

    code, _, stderr = run_cli('convert', PYCONV, str(conv.original.path), str(out), '--no-macs')
    assert code == 2 and f'error: {out} exists and is not an empty folder' in stderr


def test_checksum_mismatch_is_refused(tmp_path):
    name = 'blurpool_resnet18.lpf4_ft_in1k'
    path = tmp_path / MANIFEST[name].original_filename
    path.write_bytes(b'not the file Adobe published')
    code, stdout, stderr = run_cli('convert', name, str(path), str(tmp_path / 'out'), '--no-macs')
    assert code == 2 and stdout == ''
    digest = _sha256(path)
    assert f'has sha256 {digest}, but the weights manifest expects a digest starting with 8cc58f59' in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # nothing written


def test_checkpoints_that_do_not_load_strictly_are_refused(converted, tmp_path):
    hg = tmp_path / 'hg.pth'
    torch.save(pyconv_spec.authors_state_dict(50, hg=True), hg)
    no_classifier = tmp_path / 'backbone.pth'
    torch.save({k: v for k, v in converted(PYCONV).original.state_dict.items() if not k.startswith('fc.')},
               no_classifier)
    for path, expected in [
        (hg, 'layer1.0.conv1.weight: checkpoint (128, 64, 1, 1) vs model (64, 64, 1, 1)'),  # the family filter
        (no_classifier, f'{no_classifier} does not load strictly into {PYCONV}: '),  # timm's strict load
    ]:
        code, stdout, stderr = run_cli('convert', PYCONV, str(path), str(tmp_path / 'out'), '--no-macs')
        assert code == 2 and stdout == '' and expected in stderr, stderr
    assert 'Missing key(s) in state_dict: "fc.weight", "fc.bias"' in stderr
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('name, expected', [
    ('dcnv2_resnet50.tv_in1k', 'loads timm/resnet50.tv_in1k, which timm-tricks does not publish'),
    ('pyconv_resnet18.untrained', "No published checkpoint 'pyconv_resnet18.untrained'"),
])
def test_tags_without_a_repo_of_ours_are_refused(tmp_path, name, expected):
    path = tmp_path / 'weights.pth'
    path.write_bytes(b'x')
    code, _, stderr = run_cli('convert', name, str(path), str(tmp_path / 'out'))
    assert code == 2 and expected in stderr


# ------------------------------------------------------------------------------------------------------------ push

def test_push_dry_run_lists_the_upload_without_network(hub, converted):
    conv = converted(PYCONV)
    code, stdout, stderr = run_cli('push', str(conv.folder), f'timm-tricks/{PYCONV}', '--dry-run')
    assert code == 0 and stderr == ''
    assert f'would upload to {hub.server.endpoint}/timm-tricks/{PYCONV}' in stdout
    listed = re.findall(r'^  (\S+) +[\d.]+ (?:B|kB|MB)$', stdout, re.M)
    assert listed == ['README.md', 'config.json', 'conversion.json', 'model.safetensors']
    weights_mb = float(re.search(r'^  model.safetensors +([\d.]+) MB$', stdout, re.M)[1])
    assert weights_mb == pytest.approx(SPEC_FIGURES['pyconv_resnet50'].params * 4 / 1e6, rel=0.01)  # float32
    assert stdout.rstrip().endswith('dry run: nothing uploaded')
    assert hub.requests == []


def _linked_copy(folder: Path, to: Path) -> Path:
    """A copy of a converted folder that shares the weights file (hard link) instead of copying 100 MB."""
    to.mkdir()
    for path in folder.iterdir():
        if path.name == 'model.safetensors':
            os.link(path, to / path.name)
        else:
            shutil.copy(path, to / path.name)
    return to


def test_push_validates_arguments_and_folder(hub, converted, tmp_path):
    folder = str(converted(PYCONV).folder)
    edited = _linked_copy(converted(PYCONV).folder, tmp_path / 'edited')
    with (edited / 'README.md').open('a') as f:
        f.write('\nhand-edited\n')
    cases = [
        ((folder, PYCONV), "REPO_ID must be 'namespace/name'"),
        ((folder, 'timm-tricks/pyconv--resnet50'), 'invalid REPO_ID'),
        ((str(tmp_path), f'timm-tricks/{PYCONV}'),
         f'{tmp_path} is not a converted folder: no README.md, config.json, conversion.json, model.safetensors'),
        ((str(edited), f'timm-tricks/{PYCONV}'), 'README.md in'),
    ]
    for args, expected in cases:
        code, stdout, stderr = run_cli('push', *args, '--dry-run')
        assert code == 2 and stdout == '' and stderr.startswith('error: ') and expected in stderr, (args, stderr)
    assert 'changed after the conversion' in stderr

    code, _, stderr = run_cli('push', folder, f'someone/{PYCONV}', '--dry-run')
    assert code == 0 and f'warning: {folder} was converted for timm-tricks/{PYCONV}, not someone/{PYCONV}' in stderr
    assert hub.requests == []


def test_push_refuses_a_restricted_checkpoint_unless_the_note_is_accepted(hub, converted):
    name = 'spconv_resnet50_a8.in1k'
    folder, hosting = str(converted(name).folder), MANIFEST[name].hosting
    code, _, stderr = run_cli('push', folder, f'timm-tricks/{name}', '--dry-run')
    assert code == 2 and f'restricts hosting {name}: {hosting}' in stderr and '--accept-hosting-note' in stderr
    code, stdout, stderr = run_cli('push', folder, f'timm-tricks/{name}', '--dry-run', '--accept-hosting-note')
    assert code == 0 and f'warning: hosting note accepted: {hosting}' in stderr and 'nothing uploaded' in stdout
    assert hub.requests == []


def test_push_without_a_token_fails_before_any_request(hub, converted, monkeypatch, tmp_path):
    for variable in ('HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_OIDC_RESOURCE'):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(constants, 'HF_TOKEN_PATH', str(tmp_path / 'no-token'))
    code, _, stderr = run_cli('push', str(converted(PYCONV).folder), f'timm-tricks/{PYCONV}')
    assert code == 2 and 'error: no Hugging Face token' in stderr
    assert hub.requests == []


# ------------------------------------------------------------------------------------------- scripts/publish_all.py

def _publish_all_main() -> Callable[[List[str]], int]:
    spec = importlib.util.spec_from_file_location('publish_all', REPO_ROOT / 'scripts' / 'publish_all.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _report(stdout: str) -> Dict[str, List[Tuple[str, str]]]:
    rows: Dict[str, List[Tuple[str, str]]] = {}
    for line in stdout.split('\nreport:\n', 1)[1].splitlines()[:-1]:
        name, outcome, detail = re.fullmatch(r'  (\S+) +(\S+(?: \S+)?) {2,}(.*)', line).groups()
        rows.setdefault(name, []).append((outcome, detail))
    return rows


@pytest.fixture
def origin_host():
    from origin_server import OriginServer
    server = OriginServer()
    yield server
    server.close()


def test_publish_all_downloads_converts_and_dry_runs(hub, converted, origin_host, tmp_path, capsys, monkeypatch):
    publish_all = _publish_all_main()
    conv = converted(PYCONV)
    originals = tmp_path / 'originals'
    originals.mkdir()
    os.link(conv.original.path, originals / 'pyconvresnet50.pth')  # the Google Drive file has no known name
    (originals / MANIFEST['blurpool_resnet18.lpf4_ft_in1k'].original_filename).write_bytes(b'damaged')
    mapping, urls = tmp_path / 'map.json', tmp_path / 'urls.json'
    mapping.write_text(json.dumps({PYCONV: 'pyconvresnet50.pth'}))
    gone = origin_host.url('/gone.pth')  # the authors' host, emulated: a file that is not there any more
    urls.write_text(json.dumps({'pyconv_resnet50.aug_in1k': gone}))
    work = tmp_path / 'work'
    common = ['--work', str(work), '--originals', str(originals), '--map', str(mapping), '--urls', str(urls),
              '--no-macs']

    assert publish_all(common + ['--only', 'pyconv_resnet50.*']) == 1  # the download that fails is a failure
    report = _report(capsys.readouterr().out)
    assert report[PYCONV] == [('converted', str(work / PYCONV)), (
        'dry run', f'would upload README.md, config.json, conversion.json, model.safetensors to '
                   f'{hub.server.endpoint}/timm-tricks/{PYCONV}')]
    outcome, detail = report['pyconv_resnet50.aug_in1k'][0]
    assert outcome == 'failed' and f'{gone} answered HTTP 404 Not Found' in detail
    for name in ('model.safetensors', 'config.json'):
        assert (work / PYCONV / name).read_bytes() == (conv.folder / name).read_bytes()
    assert hub.requests == []

    assert publish_all(common + ['--only', PYCONV]) == 0  # resumed: the conversion is kept
    assert _report(capsys.readouterr().out)[PYCONV][0] == ('kept', f'{work / PYCONV} was converted before')

    # a hosting note skips the tag (nothing downloaded) unless a person accepted it; timm's repos are not ours
    blurpool, tv = 'blurpool_resnet18.lpf4_ft_in1k', 'dcnv2_resnet50.tv_in1k'
    assert publish_all(common + ['--only', 'blurpool_resnet18.lpf4_ft_in1k']) == 0
    outcome, detail = _report(capsys.readouterr().out)[blurpool][0]
    assert outcome == 'skipped' and detail.endswith(MANIFEST[blurpool].hosting)
    assert publish_all(common + ['--only', blurpool, '--accept-hosting-note', blurpool]) == 1
    outcome, detail = _report(capsys.readouterr().out)[blurpool][0]
    assert outcome == 'failed' and 'expects a digest starting with 8cc58f59' in detail  # the damaged file
    assert publish_all(common + ['--only', tv]) == 0
    assert _report(capsys.readouterr().out)[tv] == [('not ours', 'loads timm/resnet50.tv_in1k: nothing to publish')]
    assert origin_host.requests == [('GET', '/gone.pth', 404)]

    for variable in ('HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_OIDC_RESOURCE'):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(constants, 'HF_TOKEN_PATH', str(tmp_path / 'no-token'))
    assert publish_all(common + ['--only', PYCONV, '--push']) == 2
    assert 'error: --push needs a Hugging Face write token' in capsys.readouterr().err
    mapping.write_text(json.dumps({'pyconv_resnet50.in22k': 'x.pth'}))
    assert publish_all(common) == 2
    assert 'not in the weights manifest: pyconv_resnet50.in22k' in capsys.readouterr().err
    mapping.write_text('{"pyconv_resnet50.in1k": ')  # broken JSON: an error message, not a traceback
    assert publish_all(common) == 2
    assert f'error: {mapping}: cannot read it as JSON' in capsys.readouterr().err


# ------------------------------------------------------------------------------------ the committed weights/ cards

def test_committed_cards_are_what_the_manifest_generates(converted, tmp_path):
    """weights/<arch.tag>/ holds the card and config.json of every repo of ours, exactly as
    `scripts/publish_all.py --cards-only` writes them from the manifest (regenerate them after a manifest edit)."""
    ours = sorted(name for name, entry in MANIFEST.items() if entry.hf_hub_id.startswith('timm-tricks/'))
    committed = REPO_ROOT / 'weights'
    assert sorted(p.name for p in committed.iterdir() if p.is_dir() and not p.name.startswith('_')) == ours
    stale = []
    for name in ours:
        timm_tricks.publishing.write_card_files(name, tmp_path / name)
        stale += [f'{name}/{file}' for file in ('README.md', 'config.json')
                  if (tmp_path / name / file).read_bytes() != (committed / name / file).read_bytes()]
    assert stale == [], 'run `python scripts/publish_all.py --cards-only`'
    # the same code as `timm-tricks convert`: the config is identical; the card differs only where it must
    conv = converted(PYCONV)
    assert (conv.folder / 'config.json').read_bytes() == (committed / PYCONV / 'config.json').read_bytes()
    card = (committed / PYCONV / 'README.md').read_text()
    assert card.count('filled in when the repo is published') == 3
    record = json.loads((conv.folder / 'conversion.json').read_text())
    published = (conv.folder / 'README.md').read_text()
    assert record['original']['sha256'] in published and 'filled in when the repo is published' not in published


def test_manifest_errors_name_the_tag_and_the_field(monkeypatch):
    from timm_tricks.weights import _entry
    raw = RAW_MANIFEST[PYCONV]
    cases = [
        (dict(raw, checksum='sha256:XYZ'), "entry 'x.y': field 'checksum' 'sha256:XYZ' is malformed"),
        ({k: v for k, v in raw.items() if k != 'license'}, "entry 'x.y': field 'license' is missing"),
        (dict(raw, top1='77.9'), "entry 'x.y': field 'top1' must be int or float or NoneType, got '77.9'"),
        (dict(raw, hostng='x'), "entry 'x.y': unknown field 'hostng'"),
    ]
    for value, expected in cases:
        with pytest.raises(ManifestError, match=re.escape(expected)):
            _entry('x.y', value)
    assert _entry(PYCONV, raw) == MANIFEST[PYCONV]
