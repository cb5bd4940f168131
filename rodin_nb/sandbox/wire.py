"""HTTP/1.1 plumbing shared by the API and the CDN listeners (stdlib ``http.server``, hardened).

Keep-alive only works if every response carries ``Content-Length`` and every request body is read in
full before answering, even when the answer is an error: a body left in the socket would be parsed as
the next request. :class:`BaseHandler` guarantees both. :class:`Listener` tracks open connections so
:meth:`Listener.close_connections` can cut idle keep-alive sockets on stop; otherwise a client's pooled
connection would keep talking to a stopped sandbox through its still-running handler thread.

Hostile HTTP gets a well-formed answer, never a crash, a hang or an HTML page:

- The request line and headers are parsed here, strictly (RFC 9112), not by ``http.server``: every
  protocol error (400, 414, 431, 501, 505) goes through :meth:`BaseHandler.send_error`, whose body is
  the handler's own error format (JSON on the API, S3 XML on the CDN), with a status line even for an
  HTTP/0.9-style request.
- Bodies are framed by a plain decimal ``Content-Length`` or by strict ``chunked`` encoding; anything
  else is refused, and :data:`MAX_BODY_BYTES` is enforced before a byte past it is read (413).
- A listener runs at most ``max_connections`` handler threads. Over the cap, the connection idle the
  longest is closed to make room; when none is idle, the newcomer gets a 503 and is closed.
- A connection may wait ``idle_timeout`` seconds for its next request, and then has ``idle_timeout``
  seconds to send the whole request (head and body): a slow-loris trickle is cut by a deadline, not
  only by a per-read timeout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "MAX_BODY_BYTES",
    "BaseHandler",
    "BodyTooLarge",
    "Listener",
    "MalformedBody",
]

log = logging.getLogger("rodin_nb.sandbox")

#: Largest request body accepted. Scenario routes small uploads through ``POST /v1/assets`` below
#: 6 MB and larger files through ``/v1/uploads`` (API_CONTRACT.md §4.3); the sandbox enforces the same
#: ceiling on every body (a guess at where the real limit sits: likely the gateway's payload cap).
MAX_BODY_BYTES = 6 * 1024 * 1024

#: Handler threads per listener (API and CDN each have their own).
DEFAULT_MAX_CONNECTIONS = 128
#: Seconds a connection may wait for its next request, and then take to send it in full.
DEFAULT_IDLE_TIMEOUT = 20.0

MAX_REQUEST_LINE = 65536
MAX_HEADER_LINE = 16 * 1024
MAX_HEADERS = 100
MAX_HEADER_BYTES = 64 * 1024
MAX_CHUNK_LINE = 4096
#: Blank lines tolerated before a request line (RFC 9112 §2.2: clients may send a CRLF after a body).
MAX_LEADING_BLANK_LINES = 4

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VERSION = re.compile(r"HTTP/(\d)\.(\d)")
_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,8})[ \t]*(?:;[^\r\n]*)?\r\n")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,15}")
_BAD_VALUE_CHARS = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

#: Connection phases, for the listener's bookkeeping.
_IDLE, _READING, _BUSY, _CLOSING = "idle", "reading", "busy", "closing"


class BodyTooLarge(Exception):
    """The request body exceeds :data:`MAX_BODY_BYTES`; it was not read, so the connection must close."""


class MalformedBody(ValueError):
    """The body's framing is broken or unsupported (the message says how); the connection must close."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _HeadError(Exception):
    """A protocol error in the request head: answer ``status`` with ``message`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Closed(Exception):
    """The client went away (or was cut) before a whole request head arrived: close without answering."""


@dataclass
class _Conn:
    phase: str
    since: float
    deadline: float | None


class Listener(ThreadingHTTPServer):
    """A loopback HTTP server with bounded handler threads, deadlines, and connections that can be cut."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        port: int,
        handler: type[BaseHandler],
        app: Any,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self.app = app
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._handler_class = handler
        self._slots = threading.Semaphore(max_connections)
        self._conns: dict[socket.socket, _Conn] = {}
        self._conns_lock = threading.Lock()
        # Refused sockets: answered 503, write side shut, drained until EOF or their deadline.
        self._closing: list[tuple[socket.socket, float]] = []
        super().__init__(("127.0.0.1", port), handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    # -------------------------------------------------------------- admission

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False) and (
            not self._evict_idle() or not self._slots.acquire(timeout=1.0)
        ):
            self._refuse(request)
            return
        now = time.monotonic()
        with self._conns_lock:
            self._conns[request] = _Conn(_IDLE, now, now + self.idle_timeout)
        super().process_request(request, client_address)

    def _evict_idle(self) -> bool:
        """Cut the connection that has waited longest for a request; False when none is idle."""
        with self._conns_lock:
            idle = [(c.since, s) for s, c in self._conns.items() if c.phase == _IDLE]
            if not idle:
                return False
            _, victim = min(idle, key=lambda pair: pair[0])
            self._conns[victim].phase = _CLOSING
            self._conns[victim].deadline = None
        with contextlib.suppress(OSError):
            victim.shutdown(socket.SHUT_RDWR)
        return True

    def _refuse(self, request: socket.socket) -> None:
        """503 without a thread: the answer fits a fresh socket's send buffer, so this never blocks."""
        body, content_type = self._handler_class.error_body(503, "Too many connections; retry shortly")
        head = (
            "HTTP/1.1 503 Service Unavailable\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Retry-After: 1\r\nConnection: close\r\n\r\n"
        ).encode("latin-1")
        try:
            request.setblocking(False)
            request.send(head + body)
            request.shutdown(socket.SHUT_WR)
        except OSError:
            request.close()
            return
        if len(self._closing) >= 256:
            request.close()
        else:  # closing now, with the request unread, would reset the connection and lose the 503
            self._closing.append((request, time.monotonic() + 1.0))

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            tracked = self._conns.pop(request, None) is not None
        if tracked:
            self._slots.release()
        super().shutdown_request(request)

    # ------------------------------------------------------------- deadlines

    def mark(self, request: socket.socket, phase: str) -> None:
        """Record what a connection is doing; ``idle`` and ``reading`` start an ``idle_timeout`` deadline."""
        now = time.monotonic()
        with self._conns_lock:
            conn = self._conns.get(request)
            if conn is None or conn.phase == _CLOSING:
                return
            conn.phase = phase
            conn.since = now
            conn.deadline = now + self.idle_timeout if phase in (_IDLE, _READING) else None

    def is_cut(self, request: socket.socket) -> bool:
        with self._conns_lock:
            conn = self._conns.get(request)
            return conn is None or conn.phase == _CLOSING

    def service_actions(self) -> None:
        """Called by ``serve_forever`` every poll interval: enforce deadlines, finish refused sockets."""
        now = time.monotonic()
        expired: list[socket.socket] = []
        with self._conns_lock:
            for sock, conn in self._conns.items():
                if conn.deadline is not None and now > conn.deadline:
                    conn.phase, conn.deadline = _CLOSING, None
                    expired.append(sock)
        for sock in expired:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._closing:
            keep = []
            for sock, deadline in self._closing:
                done = now > deadline
                while not done:
                    try:
                        done = not sock.recv(65536)
                    except BlockingIOError:
                        break
                    except OSError:
                        done = True
                if done:
                    sock.close()
                else:
                    keep.append((sock, deadline))
            self._closing = keep

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for sock, _ in self._closing:
            sock.close()
        self._closing = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; a client hanging up is routine here.
        log.debug("connection error from %s", client_address, exc_info=True)


class BaseHandler(BaseHTTPRequestHandler):
    """Strict request parsing, body reading and response writing with the guarantees described above."""

    protocol_version = "HTTP/1.1"
    server_version = "rodin-nb-sandbox"
    sys_version = ""
    default_request_version = "HTTP/1.1"  # errors before the version is known still get a status line
    # Headers and body go out in two writes; with Nagle on, the second waits for the client's delayed
    # ACK (~40 ms per request on Linux).
    disable_nagle_algorithm = True
    server: Listener

    # ----------------------------------------------------------- error format

    @classmethod
    def error_body(cls, status: int, message: str) -> tuple[bytes, str]:
        """The body and Content-Type of a protocol-level error (JSON here; the CDN answers XML)."""
        body = json.dumps({"message": message}, separators=(",", ":")).encode()
        return body, "application/json; charset=utf-8"

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer a protocol error in this handler's format, then close (replaces the HTML default)."""
        if self._responded:
            self.close_connection = True
            return
        try:
            reason = HTTPStatus(code).phrase
        except ValueError:
            reason = ""
        text = explain or message or reason or "Error"
        self.log_error("code %d, message %s", code, text)
        self.close_connection = True
        body, content_type = self.error_body(code, text)
        headers = dict(self.error_headers(code))
        self.send_bytes(code, body, content_type, headers, head_only=self.command == "HEAD")

    def error_headers(self, code: int) -> dict[str, str]:
        """Extra headers for a protocol error (``Allow`` on 405/501, ``Retry-After`` on 503)."""
        if code in (405, 501):
            return {"Allow": ", ".join(self.allowed_methods())}
        if code == 503:
            return {"Retry-After": "1"}
        return {}

    def allowed_methods(self) -> list[str]:
        return sorted(name[3:] for name in dir(self) if name.startswith("do_"))

    # ---------------------------------------------------------------- requests

    def setup(self) -> None:
        super().setup()
        # Per read and write: a stalled peer cannot hold the thread (the deadlines cover trickles).
        self.connection.settimeout(self.server.idle_timeout)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def send_response_only(self, code: int, message: str | None = None) -> None:
        self._responded = True
        super().send_response_only(code, message)

    def handle_one_request(self) -> None:
        """Read one request head strictly, dispatch it, and turn every failure into a proper answer."""
        self.close_connection = True
        self._responded = False
        self._expect_continue = False
        self.command, self.path, self.requestline = "", "", ""
        self.request_version = self.default_request_version
        self.server.mark(self.connection, _IDLE)
        try:
            try:
                self._read_head()
            except _Closed:
                return
            except _HeadError as err:
                self.send_error(err.status, err.message)
                return
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.send_error(
                    501,
                    f"Method {self.command!r} is not implemented here; "
                    f"allowed: {', '.join(self.allowed_methods())}",
                )
                return
            try:
                method()
            except BodyTooLarge as err:
                self.send_error(413, str(err))
            except MalformedBody as err:
                self.send_error(err.status, str(err))
            except (OSError, _Closed):
                raise
            except Exception:  # a sandbox bug must still produce a well-formed answer
                log.exception("sandbox error handling %s %s", self.command, self.path)
                self.send_error(500, "Internal sandbox error (a bug in rodin_nb.sandbox)")
            self.wfile.flush()
        except (OSError, _Closed):  # timed out, reset, or cut by the listener: discard the connection
            self.close_connection = True
        finally:
            if self.server.is_cut(self.connection):
                self.close_connection = True

    def _readline(self, limit: int) -> bytes:
        line = self.rfile.readline(limit + 1)
        if self.server.is_cut(self.connection):
            raise _Closed
        return line

    def _read_head(self) -> None:
        line = b""
        for _ in range(MAX_LEADING_BLANK_LINES + 1):
            line = self._readline(MAX_REQUEST_LINE)
            if not line:
                raise _Closed
            if line not in (b"\r\n", b"\n"):
                break
        self.server.mark(self.connection, _READING)
        if len(line) > MAX_REQUEST_LINE:
            raise _HeadError(414, f"Request line longer than {MAX_REQUEST_LINE} bytes")
        if not line.endswith(b"\n"):
            raise _Closed
        self.raw_requestline = line
        self.requestline = line.rstrip(b"\r\n").decode("latin-1")
        words = self.requestline.split(" ")
        if _TOKEN.fullmatch(words[0]):
            # Known from here on, so the error answer to a HEAD request whose target or version is
            # malformed carries no body (RFC 9110 §9.3.2); a body would be read as the next response.
            self.command = words[0]
        if len(words) != 3:
            raise _HeadError(400, "Malformed request line: want 'METHOD /path HTTP/1.1'")
        command, path, version = words
        if not _TOKEN.fullmatch(command):
            raise _HeadError(400, "Malformed request line: the method is not a token")
        if not path or any(c <= " " or c == "\x7f" for c in path):
            raise _HeadError(400, "Malformed request line: bad request target")
        m = _VERSION.fullmatch(version)
        if m is None:
            raise _HeadError(400, "Malformed request line: bad HTTP version")
        if m.group(1) != "1":
            raise _HeadError(505, f"HTTP version {version[5:]} is not supported; use HTTP/1.1")
        self.command, self.path, self.request_version = command, path, version
        self.close_connection = version == "HTTP/1.0"
        self.headers = self._read_headers()
        connection = ",".join(self.headers.get_all("Connection") or []).lower()
        if "close" in connection:
            self.close_connection = True
        elif "keep-alive" in connection:
            self.close_connection = False
        expect = self.headers.get("Expect", "").lower()
        self._expect_continue = expect == "100-continue" and version == "HTTP/1.1"

    def _read_headers(self) -> Any:
        headers = self.MessageClass()
        total = 0
        count = 0
        while True:
            line = self._readline(MAX_HEADER_LINE)
            if not line:
                raise _Closed
            if len(line) > MAX_HEADER_LINE:
                raise _HeadError(431, f"A header line is longer than {MAX_HEADER_LINE} bytes")
            if not line.endswith(b"\n"):
                raise _Closed
            if line in (b"\r\n", b"\n"):
                return headers
            total += len(line)
            count += 1
            if count > MAX_HEADERS:
                raise _HeadError(431, f"Too many header fields (the limit is {MAX_HEADERS})")
            if total > MAX_HEADER_BYTES:
                raise _HeadError(431, f"Header section larger than {MAX_HEADER_BYTES} bytes")
            if line[:1] in (b" ", b"\t"):
                raise _HeadError(400, "Obsolete header line folding is not accepted")
            m = _FIELD.fullmatch(line.rstrip(b"\r\n"))
            if m is None or _BAD_VALUE_CHARS.search(m.group(2)):
                raise _HeadError(400, "Malformed header field: want 'Name: value'")
            headers[m.group(1).decode("ascii")] = m.group(2).decode("latin-1")

    # ------------------------------------------------------------------ bodies

    def read_body(self) -> bytes:
        """The whole request body (Content-Length or chunked).

        Raises :class:`BodyTooLarge` (413) before reading past :data:`MAX_BODY_BYTES`, and
        :class:`MalformedBody` (400, or 501 for an unsupported transfer coding) for broken framing,
        including a body that ends early. Either way the connection closes after the answer.
        """
        try:
            return self._read_framed_body()
        finally:
            self.server.mark(self.connection, _BUSY)

    def _read_framed_body(self) -> bytes:
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encodings:
            codings = [c.strip().lower() for c in ",".join(encodings).split(",")]
            if codings != ["chunked"]:
                raise MalformedBody(
                    f"Transfer-Encoding {', '.join(encodings)!r} is not supported; use chunked", 501
                )
            if lengths:
                raise MalformedBody("Content-Length and Transfer-Encoding together are not accepted")
            if self.request_version == "HTTP/1.0":
                raise MalformedBody("Transfer-Encoding is not allowed in an HTTP/1.0 request")
            return self._read_chunked()
        values = {v.strip() for raw in lengths for v in raw.split(",")}
        if not values:
            return b""
        if len(values) > 1:
            raise MalformedBody("Conflicting Content-Length values")
        (value,) = values
        if not _CONTENT_LENGTH.fullmatch(value):
            raise MalformedBody(f"Content-Length must be a decimal byte count; got {value[:40]!r}")
        length = int(value)
        if length > MAX_BODY_BYTES:
            raise BodyTooLarge(self._too_large(length))
        if length == 0:
            return b""
        self._send_continue()
        return self._read_exactly(length)

    def _too_large(self, size: int) -> str:
        mb = MAX_BODY_BYTES // (1024 * 1024)
        return f"Request body too large ({size} bytes or more): the limit is {mb} MB"

    def _send_continue(self) -> None:
        if self._expect_continue:
            self._expect_continue = False
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()

    def _read_exactly(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if self.server.is_cut(self.connection):
            raise _Closed
        if len(data) < n:
            raise MalformedBody(f"The body ended after {len(data)} of {n} bytes")
        return data

    def _read_chunked(self) -> bytes:
        self._send_continue()
        parts: list[bytes] = []
        total = 0
        while True:
            line = self._readline(MAX_CHUNK_LINE)
            m = _CHUNK_SIZE.fullmatch(line)
            if m is None:
                if not line or (not line.endswith(b"\n") and len(line) <= MAX_CHUNK_LINE):
                    raise MalformedBody("The chunked body ended early")
                raise MalformedBody(
                    "Malformed chunk size line: want hexadecimal digits (at most 8), "
                    "optional ';extensions', then CRLF"
                )
            size = int(m.group(1), 16)
            if size == 0:
                self._read_trailers()
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                raise BodyTooLarge(self._too_large(total))
            parts.append(self._read_exactly(size))
            if self._read_exactly(2) != b"\r\n":
                raise MalformedBody("A chunk's data must be followed by CRLF")

    def _read_trailers(self) -> None:
        total = 0
        for _ in range(MAX_HEADERS + 1):
            line = self._readline(MAX_HEADER_LINE)
            if line in (b"\r\n", b"\n"):
                return
            if not line.endswith(b"\n"):
                raise MalformedBody("The chunked body's trailer section ended early or is too long")
            total += len(line)
            if total > MAX_HEADER_BYTES:
                break
        raise MalformedBody("Too many or too large trailer fields")

    # --------------------------------------------------------------- responses

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
