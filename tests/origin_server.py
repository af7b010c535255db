"""In-process emulator of the hosts the authors' weights live on (specs/weights_origin.md), on 127.0.0.1.

* S3 / openmmlab / download.pytorch.org style direct files (`add_file`): `200` with `Content-Length`,
  `Accept-Ranges`, `Range` -> `206`; `HEAD` answered.
* Google Drive (`add_drive_file`): `/uc?export=download&id=<ID>` answers with the "can't scan for viruses" HTML page
  of a large file, whose `#download-form` (action + hidden `id`, `export`, `confirm`, `uuid` inputs) leads to
  `/download?...` with `Content-Disposition: attachment`; `quota=True` answers with Drive's "Too many users" page
  (`<p class="uc-error-subcaption">`), status 200 as Drive does.
* OneDrive / SharePoint share links (`add_sharepoint_file`): `/:u:/g/personal/<user>/<token>?e=<x>` answers with
  an HTML viewer page; the same path with `?download=1` redirects (302) to `/personal/<user>/_layouts/15/
  download.aspx?share=<token>`, which sends the file; `sign_in=True` answers 403 with a sign-in page instead.
* Faults per path: `fail(path, status)` (an HTML error page), `html(path, title)` (a 200 HTML page where a file
  should be), `drop_after(path, n)` (the full `Content-Length` announced, `n` bytes sent, connection closed),
  `slow(path, seconds)` (the body in chunks with pauses: overlapping downloads).

Request log: `requests` (method, path with query, status).
"""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from local_http import NO_FAULT, LocalServer, byte_range

_BINARY = {'Content-Type': 'application/octet-stream'}


def _page(title: str, body: str = '') -> bytes:
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
            f'<body>{body}</body></html>').encode()


class OriginServer(LocalServer):
    """The authors' download hosts on ``http://127.0.0.1:<port>``; `url(path)` gives a file's URL."""

    thread_name = 'origin-server'

    def __init__(self) -> None:
        super().__init__()
        self._files: dict[str, bytes] = {}  # path (no query) -> bytes
        self._drive: dict[str, tuple[bytes, bool]] = {}  # file id -> (bytes, quota exceeded)
        self._sharepoint: dict[str, tuple[bytes, bool]] = {}  # token -> (bytes, sign-in required)
        self._faults: dict[str, tuple[str, object]] = {}

    def url(self, path: str) -> str:
        return self.base + path

    # -- content -------------------------------------------------------------------------------------------------

    def add_file(self, path: str, data: bytes) -> str:
        """A direct download at `path` (S3 style); returns its URL."""
        with self._lock:
            self._files[path] = data
        return self.url(path)

    def add_drive_file(self, file_id: str, data: bytes, quota: bool = False) -> str:
        """A Google Drive file behind the virus-scan confirm page; returns its `uc?export=download` URL."""
        with self._lock:
            self._drive[file_id] = (data, quota)
        return self.url(f'/uc?export=download&id={file_id}')

    def add_sharepoint_file(self, token: str, data: bytes, sign_in: bool = False) -> str:
        """A OneDrive for Business share link; returns it in the form READMEs give (`?e=...`, a viewer page)."""
        with self._lock:
            self._sharepoint[token] = (data, sign_in)
        return self.url(f'/:u:/g/personal/someone_example_edu/{token}?e=AbCdEf')

    # -- faults --------------------------------------------------------------------------------------------------

    def fail(self, path: str, status: int) -> None:
        self._set_fault(path, 'status', status)

    def html(self, path: str, title: str) -> None:
        self._set_fault(path, 'html', title)

    def drop_after(self, path: str, sent: int) -> None:
        self._set_fault(path, 'drop', sent)

    def slow(self, path: str, pause_s: float) -> None:
        self._set_fault(path, 'slow', pause_s)

    def _set_fault(self, path: str, kind: str, value) -> None:
        with self._lock:
            self._faults[path] = (kind, value)

    def reset(self) -> None:
        with self._lock:
            self._files.clear()
            self._drive.clear()
            self._sharepoint.clear()
            self._faults.clear()
            self._log.clear()

    # -- protocol ------------------------------------------------------------------------------------------------

    def _respond(self, target: str, range_header: str | None):
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        with self._lock:
            kind, value = self._faults.get(path, NO_FAULT)
        if kind == 'status':
            return value, {'Content-Type': 'text/html'}, _page(f'Error {value}', 'The request failed.'), NO_FAULT
        if kind == 'html':
            return 200, {'Content-Type': 'text/html; charset=utf-8'}, _page(value, 'Please sign in.'), NO_FAULT
        if path == '/uc' and 'id' in query:
            return self._drive_page(query['id'][0]) + (NO_FAULT,)
        if path == '/download' and 'id' in query:
            return self._drive_file(query) + (NO_FAULT,)
        if match := re.fullmatch(r'/:u:/g/personal/([^/]+)/([^/]+)', path):
            return self._sharepoint_link(match[1], match[2], query) + (NO_FAULT,)
        if match := re.fullmatch(r'/personal/[^/]+/_layouts/15/download\.aspx', path):
            entry = self._sharepoint.get(query.get('share', [''])[0])
            if entry is None:
                return 404, {'Content-Type': 'text/html'}, _page('Not found'), NO_FAULT
            return byte_range(entry[0], range_header, _BINARY) + (NO_FAULT,)
        data = self._files.get(path)
        if data is None:
            return 404, {'Content-Type': 'application/xml'}, b'<Error><Code>NoSuchKey</Code></Error>', NO_FAULT
        return byte_range(data, range_header, _BINARY) + ((kind, value),)

    def _drive_page(self, file_id: str):
        entry = self._drive.get(file_id)
        if entry is None:
            return 404, {'Content-Type': 'text/html'}, _page('Google Drive - 404')
        if entry[1]:  # quota pages come with status 200
            return 200, {'Content-Type': 'text/html; charset=utf-8'}, _page('Google Drive - Quota exceeded', (
                '<div class="uc-main"><p class="uc-error-caption">Sorry, you can\'t view or download this file at '
                'this time.</p>\n<p class="uc-error-subcaption">Too many users have viewed or downloaded this file '
                'recently. Please try accessing the file again later.</p></div>'))
        form = (
            '<p class="uc-warning-caption">Google Drive can\'t scan this file for viruses.</p>\n'
            f'<form id="download-form" action="{self.base}/download" method="get">'
            '<input type="submit" id="uc-download-link" class="goog-inline-block jfk-button jfk-button-action" '
            'value="Download anyway"/>'
            f'<input type="hidden" name="id" value="{file_id}">'
            '<input type="hidden" name="export" value="download">'
            '<input type="hidden" name="confirm" value="t">'
            '<input type="hidden" name="uuid" value="0b5e1a8c-5f6d-4c1e-9f3a-2b7d8e9f0a1b"></form>\n')
        return 200, {'Content-Type': 'text/html; charset=utf-8'}, _page('Google Drive - Virus scan warning', form)

    def _drive_file(self, query: dict):
        entry = self._drive.get(query['id'][0])
        if entry is None or query.get('confirm') != ['t'] or 'uuid' not in query:
            return 400, {'Content-Type': 'text/html'}, _page('Bad Request')
        return 200, {'Content-Type': 'application/octet-stream',
                     'Content-Disposition': 'attachment; filename="weights.pth"'}, entry[0]

    def _sharepoint_link(self, user: str, token: str, query: dict):
        entry = self._sharepoint.get(token)
        if entry is None:
            return 404, {'Content-Type': 'text/html'}, _page('Something went wrong')
        if entry[1]:
            return 403, {'Content-Type': 'text/html'}, _page('Sign in to your account')
        if query.get('download') != ['1']:
            return 200, {'Content-Type': 'text/html'}, _page('weights.pkl - OneDrive', '<div id="viewer"></div>')
        return 302, {'Location': f'/personal/{user}/_layouts/15/download.aspx?share={token}'}, b''
