"""The sandbox's HTTP surface under hostile input, over real loopback sockets (nothing is mocked).

Every answer is a well-formed HTTP/1.1 response whose error body is JSON on the API and S3-style XML
on the CDN; bad bodies are 4xx, never 500; the body-size limit holds for every framing; connections
and idle time are bounded. Timeouts are configured small so the file runs in a few seconds.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from rodin_nb.sandbox import SandboxServer, serve

MODEL = "model_rodin-hyper3d"
KEY, SECRET = "sandbox-key", "sandbox-secret"
AUTH = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxServer]:
    with serve(job_seconds=0.3, credentials=(KEY, SECRET)) as server:
        yield server


def port_of(url: str) -> int:
    return int(url.split(":")[2].split("/")[0])


def api_port(sb: SandboxServer) -> int:
    return port_of(sb.url)


def cdn_port(sb: SandboxServer) -> int:
    return port_of(sb.cdn_url)


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def read_response(sock: socket.socket, *, head: bool = False) -> Response:
    """One HTTP/1.1 response, strictly: a status line, headers, and exactly Content-Length bytes."""
    f = sock.makefile("rb")
    try:
        line = f.readline(65537)
        assert line.startswith(b"HTTP/1.1 "), f"not an HTTP/1.1 status line: {line[:200]!r}"
        status = int(line.split()[1])
        headers: dict[str, str] = {}
        while True:
            h = f.readline(65537)
            assert h.endswith(b"\r\n"), h
            if h == b"\r\n":
                break
            name, _, value = h.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if head or status in (204, 304) or 100 <= status < 200:
            return Response(status, headers, b"")
        assert "content-length" in headers, headers
        body = f.read(int(headers["content-length"]))
        return Response(status, headers, body)
    finally:
        f.close()


def raw(port: int, data: bytes, *, head: bool = False, timeout: float = 10) -> Response:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return read_response(s, head=head)


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: {AUTH}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def assert_json_error(r: Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    wanted = (status,) if isinstance(status, int) else status
    assert r.status in wanted, (r.status, r.body[:300])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    payload = r.json()
    assert isinstance(payload, dict) and isinstance(payload.get("message"), str) and payload["message"]
    return payload


def assert_xml_error(r: Response, status: int | tuple[int, ...]) -> str:
    wanted = (status,) if isinstance(status, int) else status
    assert r.status in wanted, (r.status, r.body[:300])
    assert r.headers["content-type"].startswith("application/xml"), r.headers
    text = r.body.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'), text
    assert "<Message>" in text and "</Error>" in text
    return text


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the peer closes (EOF or reset) within ``seconds``; discards anything it sends."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            return False
        except OSError:
            return True
    return False


# ------------------------------------------------------------------ 4. bad bodies are 4xx JSON


def png_declaring(width: int, height: int) -> bytes:
    """A small, well-formed PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    idat = zlib.compress(b"\x00" * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


class TestBadBodies:
    @pytest.mark.parametrize(
        "body",
        [
            b'{"prompt": "a chest", "seed": 1' + b"0" * 310 + b"}",
            b'{"prompt": "a chest", "seed": -1' + b"0" * 400 + b"}",
            b'{"prompt": "a chest", "quality": 1' + b"0" * 310 + b"}",
            b'{"prompt": "a chest", "seed": 1' + b"0" * 5000 + b"}",
            b'{"prompt": "a chest", "seed": 1e400}',
            b'{"prompt": "a chest", "bbox_condition": [1' + b"0" * 400 + b", 1, 1]}",
            b'{"prompt": ' + b"[" * 1200 + b"]" * 1200 + b"}",
            b"[" * 1200 + b"]" * 1200,
            b'{"a":' * 1500 + b"1" + b"}" * 1500,
            b'{"prompt": ' + b"[" * 100000 + b"]" * 100000 + b"}",
            b'{"prompt": "\\ud800 a chest"}',
            b'{"prompt": "a chest", "seed": 1, "seed": "x"}',
            b"\xff\xfe{}",
        ],
        ids=[
            "int310",
            "neg-int400",
            "int-in-string-field",
            "int5000",
            "float-overflow",
            "int-in-array",
            "nested1200-value",
            "nested1200-top",
            "nested-objects1500",
            "nested100000",
            "lone-surrogate",
            "duplicate-key",
            "not-utf8",
        ],
    )
    def test_generate_hostile_json_is_4xx_json(self, sb: SandboxServer, body: bytes) -> None:
        """Huge integers, deep nesting and odd strings in a generate body: a 4xx JSON message, never 500."""
        before = sb.stats()["jobs_created"]
        r = raw(api_port(sb), request("POST", f"/v1/generate/custom/{MODEL}", body))
        if r.status == 200:  # a lone surrogate may be a valid prompt; it must then be a normal job
            assert "job" in r.json()
            return
        assert_json_error(r, (400, 413, 422))
        assert sb.stats()["jobs_created"] == before

    @pytest.mark.parametrize("size", [(30000, 30000), (12000, 12000), (200000, 1000), (7000, 7000)])
    def test_decompression_bomb_upload_is_400_json(self, sb: SandboxServer, size: tuple[int, int]) -> None:
        """A PNG declaring a huge pixel count is refused (400 naming 'image'), not decoded, not a 500."""
        image = base64.b64encode(png_declaring(*size)).decode()
        body = json.dumps({"name": "bomb.png", "image": image}).encode()
        r = raw(api_port(sb), request("POST", "/v1/assets", body, {"Content-Type": "application/json"}))
        payload = assert_json_error(r, 400)
        assert payload.get("field") == "image"
        assert "pixels" in payload["message"]

    def test_a_reasonable_png_still_uploads(self, sb: SandboxServer) -> None:
        image = base64.b64encode(png_declaring(64, 8)).decode()
        body = json.dumps({"name": "ok.png", "image": image}).encode()
        r = raw(api_port(sb), request("POST", "/v1/assets", body, {"Content-Type": "application/json"}))
        assert r.status == 200, r.body
        assert r.json()["asset"]["properties"]["width"] == 64


# --------------------------------------------------------- 5. every error body is JSON (API) / XML (CDN)

ODD_METHODS = ["HEAD", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "BREW", "get", "post", "Get"]

MALFORMED_REQUEST_LINES = [
    b"GET /v1/jobs\r\n\r\n",  # HTTP/0.9 style: no version
    b"GET\r\n\r\n",
    b"GET /v1/jobs HTTP/1.1 extra\r\n\r\n",
    b"GET /v1/jobs HTTX/1.1\r\n\r\n",
    b"GET /v1/jobs HTTP/1\r\n\r\n",
    b"GET /v1/jobs HTTP/2.0\r\n\r\n",
    b"GET /v1/jobs HTTP/1.12345678901\r\n\r\n",
    b"G(T /v1/jobs HTTP/1.1\r\n\r\n",
    b"GET  /v1/jobs HTTP/1.1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS ClientHello's first bytes
    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
]


def many_headers(n: int) -> bytes:
    return b"GET /v1/jobs HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(n)) + b"\r\n"


HEADER_ABUSE = [
    many_headers(150),
    b"GET /v1/jobs HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
    b"GET /v1/jobs HTTP/1.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 8000) for i in range(60)) + b"\r\n",
]

BAD_HEADERS = [
    b"GET /v1/jobs HTTP/1.1\r\nNo colon here\r\n\r\n",
    b"GET /v1/jobs HTTP/1.1\r\nX-A : spaced\r\n\r\n",
    b"GET /v1/jobs HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
]


class TestErrorBodies:
    @pytest.mark.parametrize("method", ODD_METHODS)
    def test_api_odd_methods_answer_json(self, sb: SandboxServer, method: str) -> None:
        """Unimplemented and lower-case methods: 405/501 with a JSON body (no body at all for HEAD)."""
        target = "127.0.0.1:443" if method == "CONNECT" else "/v1/jobs"
        r = raw(api_port(sb), request(method, target), head=method == "HEAD")
        assert r.status in (405, 501), r.status
        assert r.headers["content-type"].startswith("application/json")
        if method == "HEAD":
            assert r.body == b""
        else:
            assert method in r.json()["message"]

    @pytest.mark.parametrize("method", [m for m in ODD_METHODS if m != "HEAD"])
    def test_cdn_odd_methods_answer_xml(self, sb: SandboxServer, method: str) -> None:
        """The CDN answers every error in S3's XML, including methods it does not know."""
        target = "127.0.0.1:443" if method == "CONNECT" else "/files/x"
        assert_xml_error(raw(cdn_port(sb), request(method, target)), (405, 501))

    @pytest.mark.parametrize("line", MALFORMED_REQUEST_LINES, ids=range(len(MALFORMED_REQUEST_LINES)))
    def test_malformed_request_line(self, sb: SandboxServer, line: bytes) -> None:
        """A broken request line gets a real status line, headers and a JSON (API) / XML (CDN) body."""
        assert_json_error(raw(api_port(sb), line), (400, 414, 505))
        assert_xml_error(raw(cdn_port(sb), line), (400, 414, 505))

    @pytest.mark.parametrize(
        "line",
        [
            b"HEAD /v1/jobs\r\n\r\n",
            b"HEAD /a\tb HTTP/1.1\r\n\r\n",
            b"HEAD /x?a= 1 HTTP/1.1\r\n\r\n",
            b"HEAD /v1/jobs HTTP/2.0\r\n\r\n",
        ],
        ids=["no-version", "tab-in-target", "space-in-target", "http2"],
    )
    def test_head_with_a_malformed_line_gets_no_body(self, sb: SandboxServer, line: bytes) -> None:
        """A HEAD answer never has a body, even an error answer to a malformed line (found by the fuzz)."""
        for port in (api_port(sb), cdn_port(sb)):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(line)
                answer = b""
                while chunk := s.recv(65536):  # the server closes after an error
                    answer += chunk
            head, _, rest = answer.partition(b"\r\n\r\n")
            assert head.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 505 ")), head
            assert b"\r\nContent-Length: " in head and b"\r\nConnection: close" in head
            assert rest == b""  # no body bytes follow the head

    @pytest.mark.parametrize("data", HEADER_ABUSE, ids=["150-headers", "70k-line", "480k-total"])
    def test_oversized_headers_431(self, sb: SandboxServer, data: bytes) -> None:
        assert_json_error(raw(api_port(sb), data), 431)
        assert_xml_error(raw(cdn_port(sb), data), 431)

    @pytest.mark.parametrize("data", BAD_HEADERS, ids=["no-colon", "space-before-colon", "folded"])
    def test_malformed_headers_400(self, sb: SandboxServer, data: bytes) -> None:
        assert_json_error(raw(api_port(sb), data), 400)
        assert_xml_error(raw(cdn_port(sb), data), 400)

    def test_cdn_oversized_body_is_413_xml(self, sb: SandboxServer) -> None:
        """The CDN refuses a body over the limit with XML too (it used to drop the connection)."""
        data = request("POST", "/files/x", headers={"Content-Length": str(7 * 1024 * 1024)})
        assert_xml_error(raw(cdn_port(sb), data), 413)

    def test_keep_alive_survives_an_error_answer(self, sb: SandboxServer) -> None:
        """A JSON 400 for a bad body does not break the connection's framing."""
        with socket.create_connection(("127.0.0.1", api_port(sb)), timeout=10) as s:
            s.sendall(request("POST", f"/v1/generate/custom/{MODEL}", b'{"prompt": ""}'))
            assert read_response(s).status == 400
            s.sendall(request("GET", f"/v1/models/{MODEL}"))
            assert read_response(s).status == 200


# ------------------------------------------------------------------ 6. framing and the body limit


def chunked_upload(*chunks: bytes) -> bytes:
    head = request("POST", "/v1/assets", headers={"Transfer-Encoding": "chunked"})
    return head + b"".join(chunks)


class TestFraming:
    def test_negative_chunk_size_with_12mb_is_refused_unread(self, sb: SandboxServer) -> None:
        """The reported bypass: chunk size -1 then 12 MB. Refused as malformed, before the 12 MB are read."""
        with socket.create_connection(("127.0.0.1", api_port(sb)), timeout=10) as s:
            s.sendall(chunked_upload(b"-1\r\n"))
            r = read_response(s)  # answered without waiting for the body
            assert_json_error(r, 400)
            assert r.headers.get("connection") == "close"
            with pytest.raises(OSError):  # the server is not reading 12 MB
                for _ in range(12 * 16):
                    s.sendall(b"x" * 65536)

    @pytest.mark.parametrize(
        "chunks",
        [
            [b"-1\r\n", b"x" * 100],
            [b"zz\r\n", b"x" * 100],
            [b"0x10\r\n", b"x" * 16, b"\r\n0\r\n\r\n"],
            [b"+10\r\n", b"x" * 16, b"\r\n0\r\n\r\n"],
            [b" 10\r\n", b"x" * 16, b"\r\n0\r\n\r\n"],
            [b"\r\n"],
            [b"10\r\n", b"x" * 16, b"XX0\r\n\r\n"],  # no CRLF after the data
            [b"10\r\n", b"x" * 20, b"\r\n0\r\n\r\n"],  # more data than declared
            [b"1" + b"0" * 40 + b"\r\n", b"x"],  # size overflow
            [b"ffffffffffffffff\r\n", b"x"],
            [b"10\n", b"x" * 16, b"\r\n0\r\n\r\n"],  # bare LF
            [b"10;" + b"e" * 10000 + b"\r\n", b"x" * 16, b"\r\n0\r\n\r\n"],  # endless extension
            [b"0\r\n", b"".join(b"T%d: v\r\n" % i for i in range(200)), b"\r\n"],  # endless trailers
        ],
        ids=[
            "negative",
            "non-hex",
            "0x-prefix",
            "plus-sign",
            "leading-space",
            "empty-size",
            "missing-crlf",
            "overlong-data",
            "overflow",
            "huge",
            "bare-lf",
            "long-extension",
            "many-trailers",
        ],
    )
    def test_malformed_chunked_is_400_json(self, sb: SandboxServer, chunks: list[bytes]) -> None:
        r = raw(api_port(sb), chunked_upload(*chunks))
        assert_json_error(r, (400, 413, 431))
        assert r.headers.get("connection") == "close"

    def test_chunked_over_the_limit_is_413_before_the_data(self, sb: SandboxServer) -> None:
        """Chunk sizes adding up past 6 MB: 413 as soon as the size line says so, no data read."""
        r = raw(api_port(sb), chunked_upload(b"400000\r\n", b"x" * 0x400000, b"\r\n", b"300000\r\n"))
        assert_json_error(r, 413)

    def test_content_length_over_the_limit_is_413_before_the_data(self, sb: SandboxServer) -> None:
        r = raw(api_port(sb), request("POST", "/v1/assets", headers={"Content-Length": "7000000"}))
        assert_json_error(r, 413)

    @pytest.mark.parametrize(
        "headers",
        [
            {"Content-Length": "-1"},
            {"Content-Length": "+5"},
            {"Content-Length": "5_0"},
            {"Content-Length": "1" + "0" * 5000},
            {"Content-Length": "abc"},
            {"Content-Length": "5", "Transfer-Encoding": "chunked"},
            {"Transfer-Encoding": "gzip, chunked"},
            {"Transfer-Encoding": "identity"},
        ],
        ids=["negative", "plus", "underscore", "5000-digits", "text", "both", "gzip", "identity"],
    )
    def test_bad_framing_headers_are_4xx_or_501_json(
        self, sb: SandboxServer, headers: dict[str, str]
    ) -> None:
        r = raw(api_port(sb), request("POST", "/v1/assets", b"", headers))
        assert_json_error(r, (400, 501))
        assert r.headers.get("connection") == "close"

    def test_conflicting_content_lengths_are_400(self, sb: SandboxServer) -> None:
        data = request("POST", "/v1/assets").replace(
            b"\r\n\r\n", b"\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x"
        )
        assert_json_error(raw(api_port(sb), data), 400)

    def test_truncated_body_is_not_processed(self, sb: SandboxServer) -> None:
        """A client that hangs up mid-body creates nothing (the short body is not taken as the request)."""
        before = sb.stats()["jobs_created"]
        body = b'{"prompt": "a chest", "quality": "extra-low"}' + b" " * 100
        data = request(
            "POST", f"/v1/generate/custom/{MODEL}", headers={"Content-Length": str(len(body) + 50)}
        )
        with socket.create_connection(("127.0.0.1", api_port(sb)), timeout=10) as s:
            s.sendall(data + body)
            s.shutdown(socket.SHUT_WR)
            closed_within(s, 5)
        time.sleep(0.2)
        assert sb.stats()["jobs_created"] == before

    def test_valid_chunked_upload_still_works(self, sb: SandboxServer) -> None:
        image = base64.b64encode(png_declaring(16, 16)).decode()
        body = json.dumps({"name": "c.png", "image": image}).encode()
        mid = len(body) // 2
        chunks = [b"%x;ext=1\r\n" % mid, body[:mid], b"\r\n", b"%X\r\n" % (len(body) - mid), body[mid:]]
        r = raw(api_port(sb), chunked_upload(*chunks, b"\r\n0\r\nX-Trailer: 1\r\n\r\n"))
        assert r.status == 200, r.body


# --------------------------------------------------------- 7. bounded connections and idle time


class TestConnectionLimits:
    def test_300_idle_connections_keep_threads_bounded_and_service_up(self) -> None:
        """300 idle sockets cost at most max_connections threads, and a real request is still answered."""
        with serve(job_seconds=0.3, credentials=(KEY, SECRET), max_connections=32) as server:
            baseline = threading.active_count()
            socks: list[socket.socket] = []
            try:
                for _ in range(300):
                    socks.append(socket.create_connection(("127.0.0.1", api_port(server)), timeout=10))
                time.sleep(0.5)
                assert threading.active_count() - baseline <= 32 + 4
                r = raw(api_port(server), request("GET", f"/v1/models/{MODEL}"))
                assert r.status == 200
                assert threading.active_count() - baseline <= 32 + 4
            finally:
                for s in socks:
                    s.close()

    def test_busy_connections_over_the_cap_get_503_json(self) -> None:
        """When every slot is mid-request (nothing idle to evict), a new connection gets a quick 503."""
        with serve(job_seconds=0.3, credentials=(KEY, SECRET), max_connections=4) as server:
            socks = []
            try:
                for _ in range(4):  # each is waiting for a body it was promised
                    s = socket.create_connection(("127.0.0.1", api_port(server)), timeout=10)
                    s.sendall(request("POST", "/v1/assets", headers={"Content-Length": "100"}))
                    socks.append(s)
                time.sleep(0.3)
                t0 = time.monotonic()
                r = raw(api_port(server), request("GET", f"/v1/models/{MODEL}"))
                assert time.monotonic() - t0 < 3
                assert_json_error(r, 503)
                assert "retry-after" in r.headers
                r = raw(cdn_port(server), request("GET", "/files/x"))  # the CDN has its own slots
                assert_xml_error(r, 403)
            finally:
                for s in socks:
                    s.close()
            time.sleep(0.3)
            assert raw(api_port(server), request("GET", f"/v1/models/{MODEL}")).status == 200

    def test_idle_connection_closed_after_idle_timeout(self) -> None:
        with (
            serve(job_seconds=0.3, idle_timeout=0.5) as server,
            socket.create_connection(("127.0.0.1", api_port(server)), timeout=10) as s,
        ):
            t0 = time.monotonic()
            assert closed_within(s, 4)
            assert time.monotonic() - t0 >= 0.3

    def test_slow_loris_closed_after_idle_timeout(self) -> None:
        """One header byte every 0.1 s never lets a request head arrive: cut after the idle limit."""
        with serve(job_seconds=0.3, idle_timeout=0.5) as server:
            data = request("GET", "/v1/jobs", headers={"X-Slow": "a" * 200})
            with socket.create_connection(("127.0.0.1", api_port(server)), timeout=10) as s:
                t0 = time.monotonic()
                cut = False
                for i in range(len(data)):
                    try:
                        s.sendall(data[i : i + 1])
                    except OSError:
                        cut = True
                        break
                    if closed_within(s, 0.1):
                        cut = True
                        break
                    if time.monotonic() - t0 > 5:
                        break
                assert cut, "a slow-loris connection was kept open"
                assert time.monotonic() - t0 < 3

    def test_slow_body_closed_after_idle_timeout(self) -> None:
        with serve(job_seconds=0.3, idle_timeout=0.5) as server:
            head = request("POST", "/v1/assets", headers={"Content-Length": "1000"})
            with socket.create_connection(("127.0.0.1", api_port(server)), timeout=10) as s:
                s.sendall(head)
                t0 = time.monotonic()
                cut = False
                for _ in range(60):
                    try:
                        s.sendall(b" ")
                    except OSError:
                        cut = True
                        break
                    if closed_within(s, 0.1):
                        cut = True
                        break
                assert cut and time.monotonic() - t0 < 3

    def test_keep_alive_connection_reused_within_idle_timeout(self) -> None:
        with (
            serve(job_seconds=0.3, idle_timeout=1.0, credentials=(KEY, SECRET)) as server,
            socket.create_connection(("127.0.0.1", api_port(server)), timeout=10) as s,
        ):
            for _ in range(3):
                s.sendall(request("GET", f"/v1/models/{MODEL}"))
                assert read_response(s).status == 200
                time.sleep(0.3)

    @pytest.mark.parametrize("kw", [{"max_connections": 0}, {"idle_timeout": 0}, {"idle_timeout": "5"}])
    def test_bad_limits_raise_value_error(self, kw: dict[str, Any]) -> None:
        with pytest.raises(ValueError):
            serve(**kw)
