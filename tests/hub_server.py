"""In-process emulator of the Hugging Face Hub file protocol, and pytest fixtures pointing huggingface_hub at it.

Implements what `hf_hub_download` (and so timm) needs, as documented in /work/shared/specs/hub.md §3-§4:

* ``HEAD``/``GET /{ns}/{repo}/resolve/{main|<commit>}/{path}``: small files inline (200, Range -> 206), weight files
  as a 302 to a "CDN" on a different origin (``localhost`` instead of ``127.0.0.1``), like the real Hub's LFS redirect.
* ``HEAD``/``GET /__cdn__/<sha256>``: the blobs.
* ``GET /api/models/{ns}/{repo}[/revision/{rev}]``: model info (``id``, ``sha``, ``siblings``, ``cardData``).
* Hub error codes: 401 ``RepoNotFound``, 404 ``RevisionNotFound`` / ``EntryNotFound``; any other path: JSON 404.

Usage in tests: request the ``hub`` fixture (see `HubSession`); it owns one shared `HubServer`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from huggingface_hub import constants, file_download, hf_api
from huggingface_hub.utils import _http
from local_http import NO_FAULT, LocalServer, byte_range, unused_port

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth")

# Per-test client settings. huggingface_hub's defaults are 10 s timeouts, a 60 s timeout for the retried HEAD and
# 5 retries with 1+2+4+8+8 s of back-off per file: a dead server would cost ~23 s per file. The retry *count* is kept
# (so request logs match production: 7 HEADs per file on HTTP 500), only the waiting is shortened.
CLIENT_TIMEOUT_S = 3  # local answers take milliseconds
FAST_BACKOFF = {"base_wait_time": 0.01, "max_wait_time": 0.05}

_RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)")
_MODEL_INFO = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?")


@dataclass(frozen=True)
class _Repo:
    files: dict[str, bytes]
    commit: str
    card_data: dict


def _git_blob_sha1(data: bytes) -> str:
    """The id git (and so the Hub's ``ETag``) gives a non-LFS file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer_sha1(sha256: str, size: int) -> str:
    """The Hub's ``ETag`` for an LFS file is the git id of its pointer file."""
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
    return _git_blob_sha1(pointer.encode())


def _card_data(readme: bytes | None) -> dict:
    """``cardData`` as the Hub derives it: the README's YAML front matter."""
    if readme is None:
        return {}
    match = re.match(rb"---\r?\n(.*?)\r?\n---", readme, re.S)
    return (yaml.safe_load(match.group(1)) or {}) if match else {}


class HubServer(LocalServer):
    """A tiny Hub on ``http://127.0.0.1:<port>``, holding repos in memory.

    Repos persist for the server's life (publish once per module if it is expensive); the request log and the fault
    switches are reset per test by the ``hub`` fixture.

    Fault switches (all reset by `reset_faults`):
      * ``inline_weights``: serve weight files with 200 + ``ETag: "<sha256>"`` instead of the 302 to the CDN.
      * ``omit_headers``: header names dropped from ``/resolve/`` responses, e.g. ``{"X-Repo-Commit"}``.
      * ``plain_404``: 404s without ``X-Error-Code``.
      * `fail` (force a status for matching paths) and `replace_file` (serve other bytes for one file).
    """

    thread_name = "hub-server"

    def __init__(self) -> None:
        super().__init__()
        self._repos: dict[str, _Repo] = {}
        self._blobs: dict[str, bytes] = {}  # sha256 -> bytes, what the CDN serves
        self.endpoint = self.base
        # Same server, other origin: huggingface_hub then reads the metadata from the 302 itself instead of
        # following it during HEAD, which is what happens with the real Hub and its CDN.
        self.cdn_url = f"http://localhost:{self.port}/__cdn__"
        self.reset_faults()

    # -- repos -------------------------------------------------------------------------------------------------

    def add_repo(self, repo_id: str, files: Mapping[str, bytes]) -> str:
        """Create or replace ``repo_id`` with ``files`` ({path in repo: bytes}); returns its commit id.

        The commit id is a hash of the repo id and contents: stable across runs, new when the contents change.
        """
        files = dict(files)
        digest = hashlib.sha1(repo_id.encode())
        for name in sorted(files):
            digest.update(f"\0{name}\0{hashlib.sha256(files[name]).hexdigest()}".encode())
        repo = _Repo(files, digest.hexdigest(), _card_data(files.get("README.md")))
        with self._lock:
            self._repos[repo_id] = repo
            self._blobs.update((hashlib.sha256(data).hexdigest(), data) for data in files.values())
        return repo.commit

    def add_repo_from_folder(self, repo_id: str, folder: str | Path) -> str:
        """`add_repo` with every file under ``folder`` (relative paths with ``/``)."""
        folder = Path(folder)
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        return self.add_repo(repo_id, files)

    def publish_model(self, repo_id: str, model, *, safe_serialization: bool | str = True,
                      extra_files: Mapping[str, bytes] | None = None, **save_kwargs) -> str:
        """Publish ``model`` the way timm exports it (`timm.models.save_for_hf`); returns the commit id.

        ``safe_serialization``: True -> ``model.safetensors``, False -> ``pytorch_model.bin``, ``'both'``.
        ``extra_files`` (e.g. a ``README.md`` with a ``license``) are added as is; ``save_kwargs`` go to
        ``save_for_hf`` (``model_config``, ``model_args``, ...).
        """
        from timm.models import save_for_hf  # imported late: importing timm costs seconds

        with tempfile.TemporaryDirectory() as tmp:
            save_for_hf(model, tmp, safe_serialization=safe_serialization, **save_kwargs)
            for name, data in (extra_files or {}).items():
                (Path(tmp) / name).write_bytes(data)
            return self.add_repo_from_folder(repo_id, tmp)

    def remove_repo(self, repo_id: str) -> None:
        with self._lock:
            self._repos.pop(repo_id, None)

    def commit(self, repo_id: str) -> str:
        return self._repos[repo_id].commit

    def files(self, repo_id: str) -> list[str]:
        return sorted(self._repos[repo_id].files)

    def read(self, repo_id: str, filename: str) -> bytes:
        """The bytes served for ``filename`` now (after any `replace_file`)."""
        return self._replaced.get((repo_id, filename), self._repos[repo_id].files[filename])

    # -- faults ------------------------------------------------------------------------------------------------

    def fail(self, path_pattern: str, status: int = 500) -> None:
        """Answer every request whose path matches the regex ``path_pattern`` (``re.search``) with ``status``."""
        with self._lock:
            self._forced.append((re.compile(path_pattern), status))

    def replace_file(self, repo_id: str, filename: str, data: bytes) -> None:
        """Serve ``data`` for ``filename`` (e.g. truncated weights) with consistent size and hashes.

        The commit id is unchanged, as when storage behind a commit is damaged. Undone by `reset_faults`.
        """
        with self._lock:
            self._replaced[(repo_id, filename)] = data
            self._blobs[hashlib.sha256(data).hexdigest()] = data

    def reset_faults(self) -> None:
        with self._lock:
            self.inline_weights = False
            self.omit_headers: set[str] = set()
            self.plain_404 = False
            self._forced: list[tuple[re.Pattern, int]] = []
            self._replaced: dict[tuple[str, str], bytes] = {}

    def reset(self) -> None:
        """Clear the request log and all fault switches (repos stay)."""
        self.clear_log()
        self.reset_faults()

    # -- protocol ----------------------------------------------------------------------------------------------

    def _logged_path(self, target: str) -> str:
        return urlsplit(target).path  # without the query

    def _respond(self, target: str, range_header: str | None):
        return (*self._answer(urlsplit(target).path, range_header), NO_FAULT)

    def _answer(self, path: str, range_header: str | None) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            forced = next((status for pattern, status in self._forced if pattern.search(path)), None)
        if forced is not None:
            return self._error(forced, None, f"forced status {forced}")
        if path.startswith("/__cdn__/"):
            data = self._blobs.get(path.removeprefix("/__cdn__/"))
            if data is None:
                return self._error(404, None, "no such blob")
            return byte_range(data, range_header, {})
        if match := _RESOLVE.fullmatch(path):
            # Matched before unquoting: a revision such as refs/pr/1 arrives as refs%2Fpr%2F1.
            repo_id, revision, filename = (unquote(match[group]) for group in ("repo", "rev", "file"))
            status, headers, body = self._resolve(repo_id, revision, filename, range_header)
            return status, {k: v for k, v in headers.items() if k not in self.omit_headers}, body
        if match := _MODEL_INFO.fullmatch(path):
            return self._model_info(unquote(match["repo"]), match["rev"] and unquote(match["rev"]))
        return self._error(404, None, f"{path} is not implemented by the test Hub")

    def _lookup(self, repo_id: str, revision: str | None) -> _Repo | tuple[int, dict[str, str], bytes]:
        """The repo at ``revision``, or the Hub's error response."""
        repo = self._repos.get(repo_id)
        if repo is None:
            # The real Hub answers 401 for missing *and* private repos.
            return self._error(401, "RepoNotFound", f"Repository Not Found for url: {repo_id}")
        if revision not in (None, "main", repo.commit):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo

    def _resolve(self, repo_id: str, revision: str, filename: str, range_header: str | None):
        repo = self._lookup(repo_id, revision)
        if not isinstance(repo, _Repo):
            return repo
        headers = {"X-Repo-Commit": repo.commit}
        data = self._replaced.get((repo_id, filename), repo.files.get(filename))
        if data is None:
            status, error_headers, body = self._error(404, "EntryNotFound", f"{filename} does not exist at {revision}")
            return status, {**error_headers, **headers}, body
        sha256 = hashlib.sha256(data).hexdigest()
        if not filename.endswith(WEIGHT_SUFFIXES):
            return byte_range(data, range_header, {**headers, "ETag": f'"{_git_blob_sha1(data)}"'})
        if self.inline_weights:
            return byte_range(data, range_header, {**headers, "ETag": f'"{sha256}"'})
        headers.update(
            {
                "ETag": f'"{_lfs_pointer_sha1(sha256, len(data))}"',
                "X-Linked-Etag": f'"{sha256}"',
                "X-Linked-Size": str(len(data)),
                "Location": f"{self.cdn_url}/{sha256}",
            }
        )
        return 302, headers, b""

    def _model_info(self, repo_id: str, revision: str | None):
        repo = self._lookup(repo_id, revision)
        if not isinstance(repo, _Repo):
            return repo
        info = {
            "id": repo_id,
            "modelId": repo_id,
            "sha": repo.commit,
            "private": False,
            "tags": [],
            "siblings": [{"rfilename": name} for name in sorted(repo.files)],
            "cardData": repo.card_data,
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(info).encode()

    def _error(self, status: int, code: str | None, message: str):
        # Header values must be latin-1: escape anything else (e.g. a unicode file name) rather than crash.
        header_message = message.encode("ascii", "backslashreplace").decode()
        headers = {"Content-Type": "application/json", "X-Error-Message": header_message}
        if code is not None and not (self.plain_404 and status == 404):
            headers["X-Error-Code"] = code
        return status, headers, json.dumps({"error": message}).encode()


class HubSession:
    """Per-test handle: huggingface_hub points at ``server`` with a fresh cache (``cache_dir``).

    Other attributes are the server's, for reading and setting (``hub.inline_weights = True``, ``hub.requests``).
    huggingface_hub reads its environment once at import, so the module-level values are patched instead
    (hub.md §2), including copies other modules took at import time.
    """

    __slots__ = ("server", "cache_dir", "_monkeypatch")

    def __init__(self, server: HubServer, monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
        self.server = server
        self.cache_dir = cache_dir
        self._monkeypatch = monkeypatch
        patch = monkeypatch.setattr
        patch(constants, "HF_HUB_CACHE", str(cache_dir))
        patch("huggingface_hub.utils._cache_manager.HF_HUB_CACHE", str(cache_dir))
        patch(constants, "HF_HUB_OFFLINE", False)
        # No User-Agent registry lookup (an extra /api/ request at most once a day per HF_HOME).
        patch(constants, "HF_HUB_DISABLE_TELEMETRY", True)
        # Never send a developer's stored token anywhere from the test-suite.
        patch(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
        patch(constants, "HF_HUB_ETAG_TIMEOUT", CLIENT_TIMEOUT_S)
        patch(constants, "HF_HUB_DOWNLOAD_TIMEOUT", CLIENT_TIMEOUT_S)
        patch(file_download, "_ETAG_RETRY_TIMEOUT", CLIENT_TIMEOUT_S)  # the retried HEAD ignores HF_HUB_ETAG_TIMEOUT
        for backoff in (_http.http_backoff, inspect.unwrap(_http.http_stream_backoff)):  # the latter: @contextmanager
            patch(backoff, "__kwdefaults__", {**backoff.__kwdefaults__, **FAST_BACKOFF})
        self._point_at(server.endpoint)

    def _point_at(self, endpoint: str) -> None:
        patch = self._monkeypatch.setattr
        patch(constants, "ENDPOINT", endpoint)
        patch(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        patch(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {urlsplit(endpoint).hostname})
        # Import-time copies: the origins trusted when following redirects, and the `HfApi` behind `model_info`.
        patch(_http, "_HUB_ORIGINS", _http._HUB_ORIGINS | {_http._url_origin(endpoint)})
        patch(hf_api.api, "endpoint", endpoint)

    def offline(self) -> None:
        """Switch huggingface_hub to offline mode (``HF_HUB_OFFLINE=1``) for the rest of the test."""
        self._monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def server_down(self) -> None:
        """Point huggingface_hub at a port where nothing listens, for the rest of the test."""
        self._point_at(f"http://127.0.0.1:{unused_port()}")

    def __getattr__(self, name: str):
        if name in HubSession.__slots__:  # not set yet: no recursion through `self.server`
            raise AttributeError(name)
        return getattr(self.server, name)

    def __setattr__(self, name: str, value) -> None:
        if name in HubSession.__slots__:
            object.__setattr__(self, name, value)
        elif hasattr(self.server, name):
            setattr(self.server, name, value)
        else:  # a typo must not silently create a switch that does nothing
            raise AttributeError(f"HubServer has no attribute {name!r}")


@pytest.fixture(scope="session")
def hub_server():
    """One `HubServer` for the whole session."""
    with HubServer() as server:
        yield server


@pytest.fixture
def hub(hub_server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """huggingface_hub (and timm) talking to ``hub_server`` with an empty cache; log and faults reset."""
    hub_server.reset()
    yield HubSession(hub_server, monkeypatch, tmp_path / "hf-cache")
    hub_server.reset()  # faults must not leak into tests that use `hub_server` alone
