"""HTTP/1.1 plumbing shared by the API and the CDN listeners (stdlib ``http.server``).

Keep-alive only works if every response carries ``Content-Length`` and every request body is read in
full before answering, even when the answer is an error: a body left in the socket would be parsed as
the next request. :class:`BaseHandler` guarantees both. :class:`Listener` tracks open connections so
:meth:`Listener.close_connections` can cut idle keep-alive sockets on stop; otherwise a client's pooled
connection would keep talking to a stopped sandbox through its still-running handler thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["MAX_BODY_BYTES", "BaseHandler", "BodyTooLarge", "Listener"]

log = logging.getLogger("rodin_nb.sandbox")

#: Largest request body accepted. Scenario routes small uploads through ``POST /v1/assets`` below
#: 6 MB and larger files through ``/v1/uploads`` (API_CONTRACT.md §4.3); the sandbox enforces the same
#: ceiling on every body (a guess at where the real limit sits: likely the gateway's payload cap).
MAX_BODY_BYTES = 6 * 1024 * 1024


class BodyTooLarge(Exception):
    """The request body exceeds :data:`MAX_BODY_BYTES`; it was not read, so the connection must close."""


class Listener(ThreadingHTTPServer):
    """A loopback HTTP server whose handler threads are daemons and whose connections can be cut."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], app: Any) -> None:
        self.app = app
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; a client hanging up is routine here.
        log.debug("connection error from %s", client_address, exc_info=True)


class BaseHandler(BaseHTTPRequestHandler):
    """Request body reading and response writing with the keep-alive guarantees described above."""

    protocol_version = "HTTP/1.1"
    server_version = "rodin-nb-sandbox"
    sys_version = ""
    # Headers and body go out in two writes; with Nagle on, the second waits for the client's delayed
    # ACK (~40 ms per request on Linux).
    disable_nagle_algorithm = True
    # Idle keep-alive connections are dropped after this long, so their threads do not linger forever.
    timeout = 120

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def read_body(self) -> bytes:
        """The whole request body (Content-Length or chunked); raises :class:`BodyTooLarge`."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise BodyTooLarge(length)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                raise BodyTooLarge(total)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        *,
        head_only: bool = False,
        reason: str | None = None,
    ) -> None:
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head_only:
            self.wfile.write(body)
        self.wfile.flush()

    def send_json(
        self, status: int, payload: Any, headers: dict[str, str] | None = None, *, reason: str | None = None
    ) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.send_bytes(status, body, "application/json; charset=utf-8", headers, reason=reason)

    def drop(self) -> None:
        """Close the connection without sending a single response byte (a lost answer)."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
