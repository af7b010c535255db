"""The authors' own downloads as the fallback of `pretrained=True`: fetched, verified, converted once, cached.

Resolution order for one of our tags (`models/_builder.py` applies it):

1. the tag's Hub repo (`hf_hub_id`), exactly as timm loads it (huggingface_hub cache, offline mode, errors);
2. only when the Hub says that repo or file does not exist (401/404: `hub_says_missing`): the converted cache of
   this module, else the original named by the cfg's `url` (the manifest's `download_url` unless overlaid, e.g.
   `pretrained_cfg_overlay=dict(url=...)` for a mirror) is downloaded, checked against the manifest's checksum,
   loaded with `weights_only=True`, passed once through the family's checkpoint filter and written as
   `<cache>/<arch.tag>/model.safetensors` in our key layout;
3. when the Hub cannot be asked (offline mode, no connection) a conversion already in the cache is used; nothing
   is downloaded then, and without one the Hub's own error is raised.

The cache is `$TIMM_TRICKS_CACHE`, by default `timm_tricks/` under the Hugging Face cache home (`$HF_HOME`,
`~/.cache/huggingface`). Downloads: Google Drive through gdown (virus-scan confirm pages, quota pages), any other
HTTP(S) URL as a plain GET (gdown's plain path: progress bar, temporary `.part` file renamed when complete),
OneDrive/SharePoint share links rewritten to their direct-download form. A file lock per tag lets processes that
fetch the same tag at once end with one good file.

This module sits beside the manifest (the model families use it): it imports nothing of timm_tricks but `errors`
and the manifest.
"""
import hashlib
import json
import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union
from urllib.parse import urlsplit, urlunsplit

import filelock
import safetensors.torch
import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import GatedRepoError, RemoteEntryNotFoundError, RepositoryNotFoundError

from ..errors import TricksError
from . import ManifestEntry, manifest_entry

_logger = logging.getLogger(__name__)

CACHE_ENV = 'TIMM_TRICKS_CACHE'
WEIGHTS_FILE = 'model.safetensors'
RECORD_FILE = 'origin.json'  # where the cached weights came from
_DOWNLOAD_NAME = 'original.download'  # the authors' file while it is checked and converted; deleted after
_TIMEOUT_S = 60  # per connection attempt and per read: a stalled server fails instead of hanging
_HTML_START = re.compile(rb'\s*(<!doctype html|<html)', re.I)

# licences whose terms a user must see before using the weights (printed once, on the download)
LICENCE_NOTICES = {
    'cc-by-nc-sa-4.0': 'CC BY-NC-SA 4.0 (attribution, non-commercial use only, share-alike: '
                       'https://creativecommons.org/licenses/by-nc-sa/4.0/)',
}

PathLike = Union[str, os.PathLike]
StateDict = Dict[str, torch.Tensor]


class WeightsDownloadError(TricksError):
    """The authors' weights could not be downloaded or read; the message names the URL and what to do."""


class ChecksumMismatchError(WeightsDownloadError):
    """The file is not the one the weights manifest describes."""


# ------------------------------------------------------------------------------------------------------ the cache

def cache_root() -> Path:
    """Where converted weights are kept: `$TIMM_TRICKS_CACHE`, else `$HF_HOME/timm_tricks`."""
    return Path(os.environ.get(CACHE_ENV) or Path(hf_constants.HF_HOME) / 'timm_tricks').expanduser()


def converted_path(name: str) -> Path:
    """The cached conversion of `arch.tag` (it may not exist yet)."""
    return cache_root() / name / WEIGHTS_FILE


def cached_conversion(name: str) -> Optional[Path]:
    path = converted_path(name)
    return path if path.is_file() else None


def cached_origin_url(name: str) -> Optional[str]:
    """The URL a cached conversion of `name` was downloaded from, or None where there is none."""
    record = converted_path(name).with_name(RECORD_FILE)
    return json.loads(record.read_text(encoding='utf-8'))['url'] if record.is_file() else None


def hub_says_missing(error: BaseException) -> bool:
    """True for the Hub's answer that a repo or file does not exist (401/404), the one case that falls back to the
    authors' download. Gated repos exist (the user must accept their terms); connection errors and offline mode
    are not answers."""
    return isinstance(error, (RepositoryNotFoundError, RemoteEntryNotFoundError)) and not isinstance(
        error, GatedRepoError)


# ------------------------------------------------------------------------------------------------------ checksums

def sha256_file(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def check_checksum(path: PathLike, expected: Optional[str], source: Optional[str] = None) -> str:
    """sha256 of `path` (hex); raises ChecksumMismatchError unless it starts with `expected` (a manifest entry's
    `checksum_digits`: the full digest or a prefix; None where the source publishes none)."""
    digest = sha256_file(path)
    if expected is not None and not digest.startswith(expected):
        what = expected if len(expected) == 64 else f'a digest starting with {expected}'
        origin = f' (downloaded from {source})' if source else ''
        raise ChecksumMismatchError(
            f"{path}{origin} has sha256 {digest}, but the weights manifest expects {what}: this is not the "
            "authors' file (another file, or a damaged download)")
    return digest


# ------------------------------------------------------------------------------------------------------ downloads

def direct_download_url(url: str) -> str:
    """The form of `url` that answers with the file itself.

    OneDrive / SharePoint share links (`https://<tenant>-my.sharepoint.com/:u:/g/personal/...?e=...`, told apart
    by their `/:<letter>:/` path) answer with a viewer page; with the query `download=1` they send the file.
    """
    parts = urlsplit(url)
    if re.match(r'/:[a-z]:/', parts.path):
        return urlunsplit(parts._replace(query='download=1'))
    return url


def _html_title(head: bytes) -> str:
    match = re.search(rb'<title[^>]*>(.*?)</title>', head, re.I | re.S)
    return ' '.join(match[1].decode('utf-8', 'replace').split()) if match else '(no title)'


def _check_not_html(path: Path, url: str) -> None:
    with open(path, 'rb') as f:
        head = f.read(1 << 16)
    if _HTML_START.match(head):
        raise WeightsDownloadError(
            f"the server returned an HTML page instead of the checkpoint: {url} (page title: "
            f"'{_html_title(head)}'). A login, quota or error page: open the URL in a browser, or point "
            "pretrained_cfg_overlay=dict(url=...) at a copy of the file.")


def download(url: str, dest: PathLike, checksum: Optional[str] = None, progress: bool = True) -> str:
    """Download `url` to `dest`, written under a temporary name and renamed when complete (gdown's `.part`), check
    that it is not an HTML page and that its sha256 starts with `checksum` (`ManifestEntry.checksum_digits`);
    returns the sha256.

    Google Drive links go through gdown's confirm-page handling; share links become direct downloads
    (`direct_download_url`). Every failure is a WeightsDownloadError (ChecksumMismatchError) naming the URL, and
    nothing is left at `dest`: a later run never takes a login page or a wrong file for the checkpoint.
    """
    # imported here, not at `import timm_tricks` (~0.1 s): only a download needs them
    import requests
    from gdown.exceptions import DownloadError, FileURLRetrievalError

    fetch_url = direct_download_url(url)
    dest = Path(dest)
    try:
        _gdown(fetch_url, dest, progress)
    except requests.HTTPError as e:
        status = e.response.status_code
        hint = {
            401: 'the file needs a login',
            403: 'access is refused (a share link that needs sign-in, or a link that expired)',
            404: 'the file is not there (moved or deleted)',
        }.get(status, 'the server failed')
        raise WeightsDownloadError(
            f'{fetch_url} answered HTTP {status} {e.response.reason}: {hint}. Download it in a browser, or point '
            'pretrained_cfg_overlay=dict(url=...) at a copy of the file.') from None
    except FileURLRetrievalError as e:  # Google Drive's quota / permission pages
        raise WeightsDownloadError(f'Google Drive did not serve {fetch_url}: {e}') from None
    except (requests.RequestException, DownloadError) as e:
        raise WeightsDownloadError(
            f'the download of {fetch_url} failed ({type(e).__name__}: {str(e).splitlines()[0]}); nothing was '
            'kept, try again') from None
    try:
        _check_not_html(dest, fetch_url)
        return check_checksum(dest, checksum, source=fetch_url)
    except WeightsDownloadError:
        dest.unlink()
        raise


def _gdown(url: str, dest: Path, progress: bool) -> None:
    import gdown

    try:
        gdown.download(url, str(dest), quiet=not progress, use_cookies=False, timeout=_TIMEOUT_S)
    except BaseException:  # gdown keeps partial `<dest><random>.part` files for resuming: we start afresh
        for partial in dest.parent.glob(dest.name + '*.part'):
            partial.unlink()
        raise


# ---------------------------------------------------------------------------------------------------- conversion

def load_original(path: PathLike, url: str) -> Any:
    """The authors' checkpoint, loaded with `weights_only=True`: tensors and plain containers, never code."""
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        if 'Weights only load failed' in str(e):
            raise WeightsDownloadError(
                f'the file from {url} holds more than tensors and plain data, and timm_tricks never unpickles '
                'code (torch.load with weights_only=True refused it)') from None
        raise WeightsDownloadError(  # not a zip / pickle at all, or a truncated one
            f'the file from {url} is not a readable PyTorch checkpoint ({str(e).splitlines()[0]}): a damaged '
            'download or another kind of file') from None


def _unshared(state_dict: StateDict) -> StateDict:
    """Contiguous tensors with one buffer each: safetensors refuses tensors that share memory (views of one buffer,
    as some checkpoints hold), so those are copied."""
    seen, out = set(), {}
    for key, tensor in state_dict.items():
        tensor = tensor.detach().contiguous()
        if tensor.untyped_storage().data_ptr() in seen:
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        out[key] = tensor
    return out


def fetch_converted(name: str, url: str, convert: Callable[[Any], StateDict], progress: bool = True) -> Path:
    """The cached conversion of `name` (`arch.tag`), downloading `url` and converting it first where needed.

    `convert` maps the authors' checkpoint to our state dict (the family's checkpoint filter); its errors (e.g. a
    checkpoint of another architecture) propagate, and nothing is cached then.
    """
    entry = manifest_entry(name)
    final = converted_path(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    # one process downloads, the others wait and find the file when they get the lock
    with filelock.FileLock(str(final.parent) + '.lock'):
        if final.is_file():
            return final
        original = final.parent / _DOWNLOAD_NAME
        try:
            _download_and_convert(name, entry, url, original, final, convert, progress)
        finally:  # also what a process that was killed left
            for leftover in final.parent.glob(_DOWNLOAD_NAME + '*'):
                leftover.unlink()
    return final


def _download_and_convert(name: str, entry: ManifestEntry, url: str, original: Path, final: Path,
                          convert: Callable[[Any], StateDict], progress: bool) -> None:
    _logger.info(f"{name}: downloading the authors' original from {url}")
    digest = download(url, original, entry.checksum_digits, progress=progress)
    state_dict = convert(load_original(original, url))
    if entry.license in LICENCE_NOTICES:
        _logger.warning(f'{name}: these weights are licensed {LICENCE_NOTICES[entry.license]}; source '
                        f'{entry.source_repo}')
    staging = final.with_name(final.name + '.tmp')
    safetensors.torch.save_file(_unshared(state_dict), staging)
    record = {
        'name': name, 'url': url, 'sha256': digest, 'size': original.stat().st_size,
        'manifest_checksum': entry.checksum, 'weights_sha256': sha256_file(staging),
    }
    final.with_name(RECORD_FILE).write_text(json.dumps(record, indent=1) + '\n', encoding='utf-8')
    os.replace(staging, final)  # atomic: readers see no file or the whole file
