"""What the local test servers (`hub_server`, `origin_server`) share: an HTTP/1.1 server on 127.0.0.1 in a daemon
thread, its request log, byte ranges, and the connection faults a body can be sent with."""
from __future__ import annotations

import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

_RANGE = re.compile(r'bytes=(\d+)-(\d*)')

NO_FAULT = ('', None)


class Request(NamedTuple):
    """One logged request; equals a plain ``(method, path, status)`` tuple."""

    method: str
    path: str
    status: int


def unused_port() -> int:
    """A local port with nothing listening (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def byte_range(data: bytes, range_header: str | None, headers: dict[str, str]):
    """200 with ``data``, or 206 with the requested byte range (416 if it starts past the end)."""
    headers = {**headers, 'Accept-Ranges': 'bytes'}
    match = _RANGE.fullmatch(range_header or '')
    if not match:
        return 200, headers, data
    start = int(match[1])
    end = min(int(match[2]) if match[2] else len(data) - 1, len(data) - 1)
    if start >= len(data):
        return 416, {**headers, 'Content-Range': f'bytes */{len(data)}'}, b''
    return 206, {**headers, 'Content-Range': f'bytes {start}-{end}/{len(data)}'}, data[start:end + 1]


class LocalServer:
    """Serves ``http://127.0.0.1:<port>`` (``base``) from a daemon thread and logs every request.

    A subclass answers `_respond(target, range_header) -> (status, headers, body, fault)`, where ``fault`` is
    `NO_FAULT`, ``('drop', n)`` (the full Content-Length announced, ``n`` bytes sent, connection closed) or
    ``('slow', seconds)`` (the body in four chunks with pauses), and says which path it logs (`_logged_path`).
    """

    thread_name = 'local-server'

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._log: list[Request] = []
        self._httpd = _HTTPServer(('127.0.0.1', 0), _Handler)
        self._httpd.app = self
        self.port: int = self._httpd.server_address[1]
        self.base = f'http://127.0.0.1:{self.port}'
        threading.Thread(target=self._httpd.serve_forever, name=self.thread_name, daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def requests(self) -> list[Request]:
        """Requests answered so far, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, request: Request) -> None:
        with self._lock:
            self._log.append(request)

    def _logged_path(self, target: str) -> str:
        return target

    def _respond(self, target: str, range_header: str | None):
        raise NotImplementedError


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: LocalServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'  # keep-alive, as httpx and requests pool connections
    server: _HTTPServer

    def do_GET(self) -> None:
        self._handle(send_body=True)

    def do_HEAD(self) -> None:
        self._handle(send_body=False)

    def _handle(self, send_body: bool) -> None:
        app = self.server.app
        status, headers, body, (fault, value) = app._respond(self.path, self.headers.get('Range'))
        # Log before answering: the client may return (and the test assert) before this thread runs on.
        app._record(Request(self.command, app._logged_path(self.path), status))
        self.send_response(status)
        for name, header in headers.items():
            self.send_header(name, header)
        self.send_header('Content-Length', str(len(body)))  # for HEAD: the length a GET would return
        self.end_headers()
        if not send_body:
            return
        if fault == 'drop':  # announce everything, send part, hang up
            self.wfile.write(body[:value])
            self.wfile.flush()
            self.close_connection = True
            return
        if fault == 'slow':
            chunk = max(1, len(body) // 4)
            for start in range(0, len(body), chunk):
                self.wfile.write(body[start:start + chunk])
                self.wfile.flush()
                time.sleep(value)
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's signature
        pass  # the request log replaces stderr noise
