"""`pretrained=True` when our Hub repo does not exist: the authors' original, downloaded, verified, converted once.

Real client code only (timm, huggingface_hub, gdown/requests) against two local servers: the Hub emulator
(`hub_server.py`, empty for the tags used here) and the authors' hosts (`origin_server.py`: S3-style files,
Google Drive confirm pages, SharePoint share links). Each family's checkpoint is built in the authors' layout by
the family's reference (`references/<family>.py`, via `authors_checkpoints.py`), and the loaded model must give
that reference's outputs. Any URL that is not local goes to a dead proxy: nothing here can reach the internet.
"""
import dataclasses
import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Dict

import pytest
import requests
import timm
import torch
from gdown.download import get_url_from_gdrive_confirmation
from gdown.exceptions import FileURLRetrievalError
from gdown.parse_url import is_google_drive_url
from huggingface_hub.errors import LocalEntryNotFoundError
from local_http import unused_port
from safetensors.torch import load_file

import timm_tricks
from timm_tricks.cli import main as cli_main
from timm_tricks.weights import load_manifest, origin

from authors_checkpoints import FAMILY_CHECKPOINTS, PYCONV, AuthorsCheckpoint, assert_authors_outputs
from origin_server import OriginServer
from references import blurpool_resnet as blurpool_spec

MANIFEST = load_manifest()
BLURPOOL = 'blurpool_resnet18.lpf4_ft_in1k'
SPCONV = 'spconv_resnet50_a8.in1k'


@pytest.fixture(scope='module')
def origin_server():
    with OriginServer() as server:
        yield server


@pytest.fixture
def host(origin_server):
    """The authors' hosts, empty, with an empty request log."""
    origin_server.reset()
    yield origin_server
    origin_server.reset()


@pytest.fixture(autouse=True)
def local_only(monkeypatch, hub):
    """requests (gdown) and httpx (huggingface_hub) send every non-local URL to a port where nothing listens, so a
    test that would reach the internet fails at once instead. (conftest's `tricks_cache`: an empty converted cache.)"""
    dead = f'http://127.0.0.1:{unused_port()}'
    for variable in ('HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy'):
        monkeypatch.setenv(variable, dead)
    for variable in ('NO_PROXY', 'no_proxy'):
        monkeypatch.setenv(variable, '127.0.0.1,localhost')
    for name in MANIFEST:  # other test modules publish some of these repos on the shared Hub server
        hub.server.remove_repo(MANIFEST[name].hf_hub_id)


@pytest.fixture(scope='module')
def authors(tmp_path_factory):
    """`authors(tag)`: the family's checkpoint in the authors' layout (built once per module)."""
    cache: Dict[str, AuthorsCheckpoint] = {}

    def get(name: str) -> AuthorsCheckpoint:
        if name not in cache:
            cache[name] = FAMILY_CHECKPOINTS[name](tmp_path_factory.mktemp(name) / 'authors.pth')
        return cache[name]

    return get


def _accept_checksum_of(monkeypatch, name: str, data: bytes) -> None:
    """Where the authors publish a hash prefix, our stand-in file's prefix replaces theirs."""
    published = MANIFEST[name].checksum_digits
    if published is not None:
        digest = hashlib.sha256(data).hexdigest()[:len(published)]
        monkeypatch.setitem(MANIFEST, name, dataclasses.replace(MANIFEST[name], checksum=f'sha256:{digest}'))


def _serve(host: OriginServer, name: str, data: bytes) -> str:
    """The file where the tag's real host would keep it: SPConv behind a SharePoint share link, the others as
    direct files (Google Drive's confirm flow is `test_google_drive_confirm_page`)."""
    if name.startswith('spconv'):
        return host.add_sharepoint_file('EacmaSHARETOKEN', data)
    return host.add_file(f'/weights/{name}.pth', data)


def _cache_files(root: Path):
    return sorted(str(p.relative_to(root)) for p in root.rglob('*') if p.is_file() and p.suffix != '.lock')


@pytest.mark.parametrize('name', sorted(FAMILY_CHECKPOINTS))
def test_empty_hub_then_origin_then_cache(hub, host, authors, monkeypatch, caplog, tricks_cache, name):
    original = authors(name)
    data = original.path.read_bytes()
    _accept_checksum_of(monkeypatch, name, data)
    url = _serve(host, name, data)
    caplog.set_level(logging.INFO, logger='timm_tricks')

    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(url=url), **original.create_kwargs)
    assert_authors_outputs(model, original)
    assert [(r.method, r.status) for r in hub.requests] == [('HEAD', 401)]  # asked once: no such repo
    cached = tricks_cache / name / 'model.safetensors'
    assert _cache_files(tricks_cache) == [f'{name}/model.safetensors', f'{name}/origin.json']
    record = json.loads((cached.parent / 'origin.json').read_text())
    assert record['url'] == url and record['sha256'] == hashlib.sha256(data).hexdigest()
    with torch.device('meta'):
        ours = timm.create_model(name).state_dict()
    assert set(load_file(cached)) == set(ours)  # our key layout
    assert f"{name}: no Hub repo {MANIFEST[name].hf_hub_id}; using the authors' original from {url} " \
           f'(downloaded), converted, cached at {cached}' in caplog.messages
    if name == SPCONV:  # the share link is rewritten to its direct-download form, which redirects to the file
        assert [(r.path.split('?')[1], r.status) for r in host.requests] == [
            ('download=1', 302), ('share=EacmaSHARETOKEN', 200)]
    else:
        assert [(r.method, r.status) for r in host.requests] == [('GET', 200)]

    # both servers down: the conversion is used with no request at all to the origin
    hub.server_down()
    host.reset()
    again = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(url=url), **original.create_kwargs)
    assert_authors_outputs(again, original)
    assert host.requests == []


def test_offline_with_and_without_a_cached_conversion(hub, host, authors, monkeypatch, caplog):
    data = authors(BLURPOOL).path.read_bytes()
    _accept_checksum_of(monkeypatch, BLURPOOL, data)
    url = host.add_file('/blurpool.pth', data)
    hub.offline()
    with pytest.raises(LocalEntryNotFoundError):  # nothing cached: the Hub's own error, no download attempted
        timm.create_model(BLURPOOL, pretrained=True, pretrained_cfg_overlay=dict(url=url))
    assert host.requests == [] and hub.requests == []

    monkeypatch.setattr('huggingface_hub.constants.HF_HUB_OFFLINE', False)
    timm.create_model(BLURPOOL, pretrained=True, pretrained_cfg_overlay=dict(url=url))  # fetches and converts
    hub.offline()
    host.reset()
    hub.clear_log()
    caplog.set_level(logging.INFO, logger='timm_tricks')
    model = timm.create_model(BLURPOOL, pretrained=True)  # the manifest URL now: the cache is keyed by tag
    assert_authors_outputs(model, authors(BLURPOOL))
    assert host.requests == [] and hub.requests == []
    assert any('the Hub cannot be reached' in m and f'original from {url}' in m for m in caplog.messages)


def test_blurpool_checksum_mismatch_caches_nothing(host, authors, tricks_cache):
    data = authors(BLURPOOL).path.read_bytes()  # not Adobe's file: its sha256 does not start with 8cc58f59
    url = host.add_file('/resnet18_lpf4_finetune-8cc58f59.pth', data)
    with pytest.raises(origin.ChecksumMismatchError) as error:
        timm.create_model(BLURPOOL, pretrained=True, pretrained_cfg_overlay=dict(url=url))
    message = str(error.value)
    assert f'has sha256 {hashlib.sha256(data).hexdigest()}' in message
    assert 'expects a digest starting with 8cc58f59' in message and url in message
    assert _cache_files(tricks_cache) == []


def test_licence_notice_on_first_download_only(host, authors, monkeypatch, caplog):
    data = authors(BLURPOOL).path.read_bytes()
    _accept_checksum_of(monkeypatch, BLURPOOL, data)
    url = host.add_file('/blurpool.pth', data)
    caplog.set_level(logging.INFO, logger='timm_tricks')
    for _ in range(2):
        timm.create_model(BLURPOOL, pretrained=True, pretrained_cfg_overlay=dict(url=url))
    notices = [r for r in caplog.records if 'CC BY-NC-SA 4.0' in r.getMessage()]
    assert len(notices) == 1 and notices[0].levelno == logging.WARNING
    assert 'non-commercial' in notices[0].getMessage()


@pytest.mark.parametrize('fault, expected', [
    ('missing', 'answered HTTP 404 Not Found: the file is not there'),
    ('forbidden', 'answered HTTP 403 Forbidden: access is refused'),
    ('html', "the server returned an HTML page instead of the checkpoint: {url} (page title: 'Sign in - Example')"),
    ('dropped', 'failed (DownloadError: Download is incomplete'),
    ('sign-in', 'answered HTTP 403 Forbidden'),
])
def test_download_failures_are_clear_and_cache_nothing(host, authors, tricks_cache, fault, expected):
    data = authors(BLURPOOL).path.read_bytes()
    path = '/weights/blurpool.pth'
    url = host.add_file(path, data)
    if fault == 'missing':
        url = host.url('/weights/gone.pth')
    elif fault == 'forbidden':
        host.fail(path, 403)
    elif fault == 'html':
        host.html(path, 'Sign in - Example')
    elif fault == 'dropped':
        host.drop_after(path, len(data) // 2)
    else:
        url = host.add_sharepoint_file('SIGNIN', data, sign_in=True)
    with pytest.raises(origin.WeightsDownloadError) as error:
        timm.create_model(BLURPOOL, pretrained=True, pretrained_cfg_overlay=dict(url=url))
    fetched = origin.direct_download_url(url)
    assert expected.format(url=fetched) in str(error.value) and fetched in str(error.value)
    assert isinstance(error.value, timm_tricks.TricksError)
    assert _cache_files(tricks_cache) == []


def _headless(state_dict):
    return {k: v for k, v in state_dict.items() if not k.startswith('fc.')}


@pytest.mark.parametrize('depth,edit,error', [
    ('resnet34', dict, 'unexpected keys: layer1.2.conv1.weight'),  # another architecture: the keys are named
    # the family filter exempts the classifier (timm drops it for another num_classes); the cached conversion is for
    # the registered model, so there it counts: a cached file that cannot load would break every later call
    ('resnet18', _headless, 'missing keys: fc.weight, fc.bias'),
])
def test_a_checkpoint_that_does_not_fit_is_named_and_not_cached(depth, edit, error, host, monkeypatch, tmp_path,
                                                                tricks_cache):
    path = tmp_path / 'authors.pth'
    torch.save({'state_dict': edit(blurpool_spec.authors_state_dict(depth, 4, seed=0))}, path)
    _accept_checksum_of(monkeypatch, BLURPOOL, path.read_bytes())
    url = host.add_file(f'/{depth}_lpf4_finetune.pth', path.read_bytes())
    with pytest.raises(timm_tricks.CheckpointMismatchError, match=error):
        timm.create_model(BLURPOOL, pretrained=True, pretrained_cfg_overlay=dict(url=url))
    assert _cache_files(tricks_cache) == []


def test_two_concurrent_downloads_of_one_tag_end_with_one_file(host, authors, monkeypatch, tricks_cache):
    data = authors(BLURPOOL).path.read_bytes()
    _accept_checksum_of(monkeypatch, BLURPOOL, data)
    url = host.add_file('/blurpool.pth', data)
    host.slow('/blurpool.pth', 0.3)  # long enough for the second caller to arrive while the first downloads
    models, errors = [], []

    def load():
        try:
            models.append(timm.create_model(BLURPOOL, pretrained=True, pretrained_cfg_overlay=dict(url=url)))
        except Exception as e:  # reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(models) == 2
    assert [r for r in host.requests if r.method == 'GET'] == [('GET', '/blurpool.pth', 200)]
    for model in models:
        assert_authors_outputs(model, authors(BLURPOOL))
    assert _cache_files(tricks_cache) == [f'{BLURPOOL}/model.safetensors', f'{BLURPOOL}/origin.json']


def test_hub_repo_published_later_wins(hub, host, authors, monkeypatch, capsys):
    data = authors(BLURPOOL).path.read_bytes()
    _accept_checksum_of(monkeypatch, BLURPOOL, data)
    url = host.add_file('/blurpool.pth', data)
    timm.create_model(BLURPOOL, pretrained=True, pretrained_cfg_overlay=dict(url=url))
    published = timm.create_model(BLURPOOL)  # other weights than the authors' file
    hub.publish_model(MANIFEST[BLURPOOL].hf_hub_id, published)
    hub.clear_log()
    model = timm.create_model(BLURPOOL, pretrained=True, pretrained_cfg_overlay=dict(url=url))
    assert [(r.method, r.status) for r in hub.requests] == [('HEAD', 302), ('GET', 200)]
    expected = published.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    capsys.readouterr()
    assert cli_main(['download', BLURPOOL]) == 0 and cli_main(['info', BLURPOOL]) == 0
    out = capsys.readouterr().out
    hub_file = hub.cache_dir / f'models--timm-tricks--{BLURPOOL}' / 'snapshots' / hub.commit(
        MANIFEST[BLURPOOL].hf_hub_id) / 'model.safetensors'
    assert f'{BLURPOOL}: Hub {MANIFEST[BLURPOOL].hf_hub_id}\n  {hub_file}\n' in out
    assert f'1. Hub {MANIFEST[BLURPOOL].hf_hub_id}: in the Hugging Face cache, {hub_file}' in out


def test_google_drive_confirm_page(host, authors, monkeypatch):
    """gdown chooses its Drive handling by host name (drive.google.com), so a local URL is fetched as a plain file.
    What is exercised here: gdown's confirm-page parser on a virus-scan page shaped like Drive's, the download of
    the URL it yields through our downloader, and Drive's quota page both in gdown and as a direct answer."""
    assert all(is_google_drive_url(MANIFEST[n].download_url) for n in MANIFEST
               if n.startswith(('pyconv', 'oct')))
    data = authors(BLURPOOL).path.read_bytes()
    _accept_checksum_of(monkeypatch, BLURPOOL, data)
    page_url = host.add_drive_file('1F9esqmbIJmfTOsAZ6', data)
    assert not is_google_drive_url(page_url)
    page = requests.get(page_url, timeout=5)
    assert page.headers['Content-Type'].startswith('text/html') and 'download-form' in page.text
    confirmed = get_url_from_gdrive_confirmation(page.text)
    assert confirmed.startswith(host.url('/download?')) and 'confirm=t' in confirmed and 'uuid=' in confirmed
    model = timm.create_model(BLURPOOL, pretrained=True, pretrained_cfg_overlay=dict(url=confirmed))
    assert_authors_outputs(model, authors(BLURPOOL))

    quota_url = host.add_drive_file('QUOTA', data, quota=True)
    with pytest.raises(FileURLRetrievalError, match='Too many users'):
        get_url_from_gdrive_confirmation(requests.get(quota_url, timeout=5).text)
    dest = Path(origin.cache_root()) / 'quota.pth'
    with pytest.raises(origin.WeightsDownloadError, match="HTML page .*'Google Drive - Quota exceeded'"):
        origin.download(quota_url, dest, progress=False)
    assert list(dest.parent.glob(dest.name + '*')) == []  # a later run must not take the page for the file


def test_share_links_become_direct_downloads():
    spconv_urls = [MANIFEST[n].download_url for n in MANIFEST if n.startswith('spconv')]
    assert len(spconv_urls) == 3
    for url in spconv_urls:
        direct = origin.direct_download_url(url)
        assert direct == url.split('?')[0] + '?download=1'
    s3 = MANIFEST[BLURPOOL].download_url
    assert origin.direct_download_url(s3) == s3


def test_download_cli_all_converts_what_the_emulators_serve(
        hub, host, authors, monkeypatch, tmp_path, tricks_cache, capsys):
    """`timm-tricks download --all`: the tags served locally (one per family, `--urls` map) are converted; every
    other tag fails at once (its real host is unreachable here) with a message naming its URL."""
    urls = {}
    for name in FAMILY_CHECKPOINTS:
        data = authors(name).path.read_bytes()
        _accept_checksum_of(monkeypatch, name, data)
        urls[name] = _serve(host, name, data)
    mapping = tmp_path / 'urls.json'
    mapping.write_text(json.dumps(urls))
    assert cli_main(['download', '--all', '--urls', str(mapping)]) == 1
    out, err = capsys.readouterr()
    for name, url in urls.items():
        assert f"{name}: authors' original {url}, converted\n  {tricks_cache / name / 'model.safetensors'}" in out
    failed = [line.split(':')[0] for line in err.splitlines() if ': failed: ' in line]
    assert sorted(failed) == sorted(set(MANIFEST) - set(urls))
    assert f'failed: the download of {MANIFEST["oct_resnet101.in1k"].download_url}' in err
    assert sorted(p.parent.name for p in tricks_cache.glob('*/model.safetensors')) == sorted(urls)

    # offline afterwards: the converted files serve `pretrained=True`, and `info` says where they are
    hub.offline()
    host.reset()
    model = timm.create_model(PYCONV, pretrained=True)
    assert_authors_outputs(model, authors(PYCONV))
    assert cli_main(['info', PYCONV]) == 0
    info = capsys.readouterr().out
    assert f'1. Hub timm-tricks/{PYCONV}: not in the Hugging Face cache' in info
    assert f"2. only where the Hub has no such repo: the authors' original {MANIFEST[PYCONV].download_url} " \
           f'(checksum none published): converted, cached at {tricks_cache / PYCONV / "model.safetensors"}' in info
