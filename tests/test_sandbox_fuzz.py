"""Hypothesis fuzz of the sandbox's HTTP surface, against a sandbox in a capped child process.

Hypothesis writes raw requests on loopback sockets: methods (lower-case and unknown ones too), framing
(Content-Length right, wrong, missing, negative, duplicated; chunked valid and malformed), headers (many,
huge, odd bytes), JSON bodies of every shape and size for generate, uploads and job actions, query
strings, paths with traversal (``..``, ``%2e%2e``, encoded slashes, NULs) on the API and the CDN, and
forged, tampered and expired URL signatures on the CDN. The properties, for every example:

- every request whose head arrived gets a well-formed HTTP/1.1 answer (status line, headers, exactly
  ``Content-Length`` bytes), or the connection is closed; nothing hangs past the socket timeout;
- an API error is JSON with a ``message``, a CDN error S3-style XML;
- no 5xx but 501 (method) and 505 (version): a 500 is a sandbox bug;
- nothing outside the sandbox's data is ever served: a CDN 200 carries exactly the bytes of the asset
  whose genuine, unexpired signature was sent, and no answer contains a canary file from the child's
  working folder, ``/etc/passwd``, or the state file;
- afterwards the service still answers ``GET /v1/jobs``.

The sandbox runs in a child process whose address space is capped (``RLIMIT_AS``), so a blow-up fails
the test instead of killing the runner; the last test checks it is still alive and logged no error
(the sandbox logs every 500 it answers), and the fixture checks it stops cleanly.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

from .test_sandbox_http import AUTH, KEY, MODEL, SECRET, Response, png_declaring, request

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

pytestmark = pytest.mark.proof  # long: CI runs it once, on Python 3.11 (.ci/run)

ROOT = Path(__file__).resolve().parents[1]
#: Address-space cap of the sandbox process: its handler threads reserve stacks and malloc arenas
#: (its peak address space here is about 0.5 GB, of which some 50 MB resident).
CHILD_MEMORY = 1024**3
#: How long one exchange may take before it counts as a hang (the child's idle timeout is 2 s).
SOCKET_TIMEOUT = 15.0
#: Status codes input may legitimately cause among the 5xx: unknown method, unsupported HTTP version.
INPUT_5XX = (501, 505)

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)

CHILD = """
import json, logging, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
# The sandbox logs every 500 it answers (and any handler crash) at ERROR: the parent reads this file.
logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s %(message)s")
from rodin_nb.sandbox import serve
sb = serve(
    job_seconds=0.3,
    credentials=(sys.argv[2], sys.argv[3]),
    idle_timeout=2.0,
    state_dir=sys.argv[4],
    faults={"stale_url_rate": 1.0},  # each asset's first URL is already expired: a genuine expired URL
)
print(json.dumps({"api": sb.port, "cdn": int(sb.cdn_url.rsplit(":", 1)[1])}), flush=True)
sys.stdin.read()  # until the parent closes our stdin
sb.stop()
"""


# --------------------------------------------------------------------------- talking to the child


@dataclass
class Service:
    proc: subprocess.Popen[str]
    api: int
    cdn: int
    log: Path
    canary: bytes
    png: bytes
    asset_id: str
    fresh: tuple[str, str]  # (expires, signature) of a valid URL for asset_id
    stale: tuple[str, str]  # (expires, signature) of a genuine URL that had expired when handed out
    job_id: str
    examples: int = 0

    def forbidden(self) -> list[bytes]:
        """Byte strings no answer may contain: they would mean a file outside the data was served."""
        return [self.canary, b"root:x:0:0", b"SQLite format 3", b"class SandboxServer"]


class Hang(AssertionError):
    """No complete answer within :data:`SOCKET_TIMEOUT`: the service hung on the request."""


def exchange(port: int, data: bytes, *, head: bool = False) -> tuple[list[Response], str]:
    """Send ``data``, half-close, and read every answer until the server closes.

    Returns the responses (each checked for HTTP/1.1 framing) and how the connection ended: ``"eof"``
    or ``"reset"``. A response cut short, or silence past :data:`SOCKET_TIMEOUT`, fails.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as s:
        with contextlib.suppress(OSError):  # the server may refuse mid-body and close; read what it said
            s.sendall(data)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_WR)
        f = s.makefile("rb")
        responses: list[Response] = []
        try:
            while True:
                try:
                    line = f.readline(65537)
                except ConnectionResetError:
                    return responses, "reset"
                if not line:
                    return responses, "eof"
                m = re.fullmatch(rb"HTTP/1\.1 ([1-5][0-9][0-9]) [^\r\n]*\r\n", line)
                assert m, f"not an HTTP/1.1 status line: {line[:200]!r}"
                status = int(m.group(1))
                headers: dict[str, str] = {}
                while True:
                    h = f.readline(65537)
                    assert h.endswith(b"\r\n"), f"header line cut short: {h[:200]!r}"
                    if h == b"\r\n":
                        break
                    hm = re.fullmatch(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+): ?([^\r\n]*)\r\n", h)
                    assert hm, f"malformed response header {h[:200]!r}"
                    headers[hm.group(1).decode().lower()] = hm.group(2).decode("latin-1").strip()
                if 100 <= status < 200:
                    continue  # 100 Continue: the real answer follows
                length = headers.get("content-length", "")
                assert length.isdigit(), f"answer {status} without a Content-Length: {headers}"
                body = b""
                if not (head and not responses):
                    body = f.read(int(length))
                    assert len(body) == int(length), f"answer {status} cut short: {len(body)} of {length}"
                responses.append(Response(status, headers, body))
        except TimeoutError:
            raise Hang(f"no (complete) answer within {SOCKET_TIMEOUT} s; got {len(responses)}") from None
        finally:
            f.close()


def check_api(r: Response, service: Service) -> None:
    assert r.status < 500 or r.status in INPUT_5XX, (r.status, r.body[:300])
    assert r.headers.get("content-type", "").startswith("application/json"), (r.status, r.headers)
    if r.body:
        payload = json.loads(r.body)
        if r.status >= 400:
            assert isinstance(payload, dict), payload
            assert isinstance(payload.get("message"), str) and payload["message"], payload
    for marker in service.forbidden():
        assert marker not in r.body


def check_cdn(r: Response, service: Service, *, genuine: bool) -> None:
    """``genuine``: the request carried asset_id's valid signature, the only way to a 200."""
    assert r.status < 500 or r.status in INPUT_5XX, (r.status, r.body[:300])
    if r.status == 200:
        assert genuine, "the CDN served a file for a request without a valid signature"
        if r.body:
            assert r.body == service.png
    elif r.status >= 400:
        assert r.headers.get("content-type", "").startswith("application/xml"), (r.status, r.headers)
        if r.body:
            text = r.body.decode()
            assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'), text
            assert "<Message>" in text and "</Error>" in text, text
    for marker in service.forbidden():
        assert marker not in r.body


SEEN: Counter[str] = Counter()


def still_serving(service: Service) -> None:
    """The service is alive and answers a normal ``GET /v1/jobs``."""
    assert service.proc.poll() is None, f"the sandbox died (exit {service.proc.returncode})"
    responses, _ = exchange(service.api, request("GET", "/v1/jobs"))
    assert [r.status for r in responses] == [200], [(r.status, r.body[:200]) for r in responses]
    assert isinstance(responses[0].json()["jobs"], list)
    service.examples += 1


def api_round(service: Service, data: bytes, *, head: bool = False, answered: bool = True) -> list[Response]:
    """One fuzzed API request: every answer checked, at least one when ``answered``, then liveness."""
    responses, _ = exchange(service.api, data, head=head)
    for r in responses:
        check_api(r, service)
    SEEN["api " + ",".join(str(r.status) for r in responses)] += 1
    if answered:
        assert responses, "a request whose head arrived got no answer"
    still_serving(service)
    return responses


def signature_of(url: str) -> tuple[str, str]:
    query = parse_qs(urlsplit(url).query)
    return query["expires"][0], query["signature"][0]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("sandbox-fuzz")
    canary = b"rodin-fuzz-canary-" + secrets.token_hex(8).encode()
    (home / "canary.txt").write_bytes(canary)
    log = home / "sandbox.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONFAULTHANDLER="1")
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(CHILD),
                str(CHILD_MEMORY),
                KEY,
                SECRET,
                str(home / "state"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=home,
            env=env,
        )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        ports = json.loads(proc.stdout.readline() or "{}")
        assert ports, f"the sandbox did not start: {log.read_text()[-2000:]}"
        png = png_declaring(8, 8)
        body = json.dumps({"name": "fuzz.png", "image": base64.b64encode(png).decode()}).encode()
        (r,), _ = exchange(ports["api"], request("POST", "/v1/assets", body))
        assert r.status == 200, r.body
        asset = r.json()["asset"]
        (again,), _ = exchange(ports["api"], request("GET", f"/v1/assets/{asset['id']}"))
        body = json.dumps({"prompt": "a chest", "quality": "extra-low"}).encode()
        (job,), _ = exchange(ports["api"], request("POST", f"/v1/generate/custom/{MODEL}", body))
        assert job.status == 200, job.body
        svc = Service(
            proc=proc,
            api=ports["api"],
            cdn=ports["cdn"],
            log=log,
            canary=canary,
            png=png,
            asset_id=asset["id"],
            fresh=signature_of(again.json()["asset"]["url"]),
            stale=signature_of(asset["url"]),
            job_id=job.json()["job"]["jobId"],
        )
        yield svc
        proc.stdin.close()
        proc.stdout.close()
        assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- strategies

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT", "BREW", "M-SEARCH"]
methods = st.one_of(
    st.sampled_from([*METHODS, "get", "post", "Get", "pOsT", "delete", "head"]),
    st.text(TOKEN_CHARS, min_size=1, max_size=24),
)

#: Pieces of request paths: traversal in its spellings, encoded slashes and NULs, odd bytes.
TRAVERSAL = [
    "..",
    ".",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%2e.",
    "%252e%252e",
    "..%2f..%2f..%2fetc%2fpasswd",
    "..%2F..%2Fcanary.txt",
    "%2f",
    "%2F",
    "%5c",
    "..%5c..%5c",
    "%00",
    "%00.png",
    "%c0%ae%c0%ae",
    "..;",
    "~",
    "",
    "etc",
    "passwd",
    "canary.txt",
    "sandbox.sqlite",
    "state",
    "%ff",
    "\u00e9",
    "a" * 300,
    "\x00",
    "\x7f",
    "a\tb",
]


def segments(extra: list[str]) -> st.SearchStrategy[str]:
    odd = st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="?#/"), max_size=12
    )
    return st.lists(
        st.one_of(st.sampled_from(TRAVERSAL + extra), odd, odd.map(lambda s: quote(s, safe=""))), max_size=6
    )


def api_paths(service: Service) -> st.SearchStrategy[str]:
    ids = [service.asset_id, service.job_id, MODEL, "asset_nope", "job_nope"]
    bases = st.sampled_from(
        [
            "/v1",
            "/v1/jobs",
            f"/v1/jobs/{service.job_id}",
            f"/v1/jobs/{service.job_id}/action",
            "/v1/assets",
            f"/v1/assets/{service.asset_id}",
            f"/v1/models/{MODEL}",
            f"/v1/generate/custom/{MODEL}",
            "/_sandbox/stats",
            "",
            "/",
            "//v1//jobs",
            "/v1/./jobs",
            "/v1/../v1/jobs",
        ]
    )
    return st.builds(lambda base, segs: base + "".join("/" + s for s in segs), bases, segments(ids))


QUERY_KEYS = [
    "pageSize",
    "paginationToken",
    "status",
    "createdAfter",
    "type",
    "types",
    "dryRun",
    "projectId",
    "expires",
    "signature",
]


def token_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


query_values = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "100",
            "101",
            "-1",
            "1" + "0" * 400,
            "1e3",
            "true",
            "api",
            "success",
            "queued",
            "custom",
            "custom,upload",
            "2025-06-02T10:15:03.120Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "2025-13-45",
            "%00",
            "%ff%fe",
            "\u00e9",
            token_of({"before": 10**30}),
            token_of({"before": -(10**30)}),
            token_of({"before": 1.5}),
            token_of({"before": True}),
            token_of({"before": 3}),
            token_of([]),
            token_of("x"),
            "!!!",
        ]
    ),
    st.text(max_size=30).map(lambda s: quote(s.encode("utf-8", "surrogatepass"), safe="")),
)

queries = st.lists(st.tuples(st.sampled_from(QUERY_KEYS), query_values), max_size=5).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)
)

#: The job list's own parameters, each with values near and far from what it accepts.
list_queries = st.fixed_dictionaries(
    {
        # Mostly a plausible value, else left out (None), sometimes any odd value.
        name: st.integers(0, 5).flatmap(
            lambda i, v=values: v if i < 3 else st.none() if i < 5 else query_values
        )
        for name, values in {
            "pageSize": st.integers(-3, 130).map(str),
            "status": st.sampled_from(["success", "queued", "in-progress", "canceled", "Success", "done"]),
            "createdAfter": st.datetimes(timezones=st.none() | st.timezones()).map(
                lambda d: quote(d.isoformat())
            ),
            "paginationToken": st.integers(-(2**70), 2**70).map(lambda n: token_of({"before": n})),
            "type": st.sampled_from(["custom", "upload", ""]),
            "types": st.sampled_from(["custom,upload", ",", "custom,,x"]),
        }.items()
    }
).map(lambda q: "&".join(f"{k}={v}" for k, v in q.items() if v is not None))

header_names = st.one_of(
    st.sampled_from(
        [
            "Host",
            "Authorization",
            "Content-Type",
            "Accept",
            "Connection",
            "Expect",
            "User-Agent",
            "X-Forwarded-For",
            "Range",
            "If-None-Match",
            "Upgrade",
            "Cookie",
        ]
    ),
    st.text(TOKEN_CHARS, min_size=1, max_size=30),
)
header_values = st.one_of(
    st.sampled_from(
        [
            AUTH,
            "Basic !!!",
            "Basic " + base64.b64encode(b"key:").decode(),
            "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
            "Bearer x",
            "keep-alive",
            "close",
            "100-continue",
            "application/json",
            "bytes=0-1",
            "websocket",
        ]
    ),
    st.text(st.characters(min_codepoint=0, max_codepoint=0xFF), max_size=40),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "v" * n),
)
headers_lists = st.lists(st.tuples(header_names, header_values), max_size=12) | st.integers(90, 130).map(
    lambda n: [(f"X-Many-{i}", "v") for i in range(n)]
)


def head_bytes(method: str, target: str, headers: list[tuple[str, str]], version: str = "HTTP/1.1") -> bytes:
    lines = [f"{method} {target} {version}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


# JSON: scalars of every awkward kind, nested a little; the sizes come from dedicated templates below.
FIELD_NAMES = [
    "prompt",
    "images",
    "seed",
    "tier",
    "quality",
    "material",
    "conditionMode",
    "useHyper",
    "TAPose",
    "geometryFileFormat",
    "action",
    "name",
    "image",
]
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, -(10**400), 2**63, -(2**63) - 1, 65535, 65536, -1, 0, 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        ["\ud800", "a\udfff b", "\x00", "Regular", "Sketch", "high", "extra-low", "PBR", "fuse", "cancel", ""]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def encode_json(value: Any, ascii_only: bool) -> bytes:
    # ensure_ascii=False with a lone surrogate gives bytes that are not UTF-8: the server must say so.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def generate_bodies(service: Service) -> st.SearchStrategy[Any]:
    valid: dict[str, st.SearchStrategy[Any]] = {
        "prompt": st.sampled_from(["a chest", "", " ", "\ud800", "x" * 5000]),
        "images": st.lists(st.sampled_from([service.asset_id, "asset_nope", "", 1]), max_size=7),
        "seed": st.sampled_from([0, 65535, 65536, -1, 1.5, True, "7", 10**30]),
        "tier": st.sampled_from(["Regular", "Sketch", "Detail", "regular", ""]),
        "quality": st.sampled_from(["high", "medium", "low", "extra-low", "ultra"]),
        "material": st.sampled_from(["PBR", "Shaded", "pbr"]),
        "conditionMode": st.sampled_from(["concat", "fuse", "none"]),
        "useHyper": st.sampled_from([True, False, "true", 1]),
        "TAPose": st.sampled_from([True, False, None]),
    }
    good = {
        "images": st.lists(st.just(service.asset_id), min_size=1, max_size=2),
        "seed": st.integers(0, 65535),
        "tier": st.sampled_from(["Regular", "Sketch"]),
        "quality": st.sampled_from(["medium", "low", "extra-low"]),
        "material": st.sampled_from(["PBR", "Shaded"]),
        "useHyper": st.booleans(),
    }
    plausible = st.fixed_dictionaries(
        {"prompt": st.sampled_from(["a chest", "a lamp \u00e9"])}, optional=good
    )
    picked = st.fixed_dictionaries({}, optional={k: v | json_values for k, v in valid.items()})
    return st.one_of(plausible, picked, json_values)


def upload_bodies(service: Service) -> st.SearchStrategy[Any]:
    images = st.one_of(
        st.sampled_from(
            [
                base64.b64encode(service.png).decode(),
                "data:image/png;base64," + base64.b64encode(service.png).decode(),
                base64.b64encode(png_declaring(30000, 30000)).decode(),
                base64.b64encode(png_declaring(0, 0)).decode(),
                base64.b64encode(b"GIF89a" + b"\x00" * 20).decode(),
                base64.b64encode(service.png[:20]).decode(),
                "!!!not base64",
                "",
            ]
        ),
        st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
        json_values,
    )
    names = st.one_of(
        st.sampled_from(["a.png", "", "../../etc/passwd", "\ud800.png", "a\x00b.png"]), json_values
    )
    plausible = st.fixed_dictionaries(
        {"name": st.just("a.png"), "image": st.just(base64.b64encode(service.png).decode())}
    )
    anything = st.fixed_dictionaries({}, optional={"name": names, "image": images})
    return st.one_of(plausible, anything, json_values)


action_bodies = st.one_of(
    st.fixed_dictionaries(
        {}, optional={"action": st.sampled_from(["cancel", "Cancel", "retry", ""]) | json_values}
    ),
    json_values,
)

#: Bodies whose size or depth is the point (each a template over a size).
SIZED: list[Callable[[int], bytes]] = [
    lambda n: b'{"prompt": "' + b"a" * n + b'"}',
    lambda n: b'{"prompt": "a chest", "seed": 1' + b"0" * min(n, 100_000) + b"}",
    lambda n: b"[" * min(n, 200_000) + b"]" * min(n, 200_000),
    lambda n: b'{"a":' * min(n, 100_000) + b"1" + b"}" * min(n, 100_000),
    lambda n: b'{"images": [' + b",".join([b'"asset_x"'] * max(1, n // 10)) + b"]}",
    lambda n: b'{"prompt": "' + b"\\ud800" * max(1, n // 6) + b'"}',
    lambda n: b"{" + b",".join(b'"k%d": %d' % (i, i) for i in range(max(1, n // 12))) + b"}",
]
SIZES = [0, 1, 31, 32, 33, 1000, 100_000, 1_000_000, 6 * 1024 * 1024 - 40]


# --------------------------------------------------------------------------- framing


@dataclass(frozen=True)
class Framing:
    """How a body goes on the wire, and whether the server must refuse it (and close)."""

    name: str
    build: Callable[[bytes, list[tuple[str, str]]], tuple[list[tuple[str, str]], bytes]]
    refused: bool


def _chunks(body: bytes, cut: int, ext: bool = False, trailer: bool = False) -> bytes:
    pieces = [body[i : i + cut] for i in range(0, len(body), cut)] if body else []
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(p), b";x=1" if ext else b"", p) for p in pieces)
    return out + b"0\r\n" + (b"X-T: 1\r\n" if trailer else b"") + b"\r\n"


def _cl(value: str) -> Callable[[bytes, list[tuple[str, str]]], tuple[list[tuple[str, str]], bytes]]:
    return lambda body, h: ([*h, ("Content-Length", value.replace("N", str(len(body))))], body)


FRAMINGS = [
    Framing("length", _cl("N"), False),
    Framing("length-listed-twice", lambda b, h: ([*h, ("Content-Length", f"{len(b)}, {len(b)}")], b), False),
    Framing(
        "length-duplicated",
        lambda b, h: ([*h, ("Content-Length", str(len(b))), ("Content-Length", str(len(b)))], b),
        False,
    ),
    Framing(
        "length-conflicting",
        lambda b, h: ([*h, ("Content-Length", str(len(b))), ("Content-Length", str(len(b) + 1))], b),
        True,
    ),
    Framing("length-short", lambda b, h: ([*h, ("Content-Length", str(max(0, len(b) - 3)))], b), False),
    Framing("length-long", lambda b, h: ([*h, ("Content-Length", str(len(b) + 7))], b), True),
    Framing("length-missing", lambda b, h: (h, b), False),
    Framing("length-negative", _cl("-N"), True),
    Framing("length-plus", _cl("+N"), True),
    Framing("length-hex", lambda b, h: ([*h, ("Content-Length", hex(len(b)))], b), True),
    Framing("length-huge", _cl("9" * 40), True),
    Framing("length-over-limit", _cl(str(6 * 1024 * 1024 + 1)), True),
    Framing("length-spaces", _cl(" N "), False),
    Framing(
        "chunked",
        lambda b, h: ([*h, ("Transfer-Encoding", "chunked")], _chunks(b, max(7, len(b) // 16))),
        False,
    ),
    Framing(
        "chunked-ext-trailer",
        lambda b, h: (
            [*h, ("Transfer-Encoding", "chunked")],
            _chunks(b, max(3, len(b) // 16), ext=True, trailer=True),
        ),
        False,
    ),
    Framing(
        "chunked-upper",
        lambda b, h: ([*h, ("Transfer-Encoding", "CHUNKED")], _chunks(b, max(50, len(b) // 8))),
        False,
    ),
    Framing(
        "chunked-and-length",
        lambda b, h: (
            [*h, ("Transfer-Encoding", "chunked"), ("Content-Length", str(len(b)))],
            _chunks(b, max(7, len(b) // 16)),
        ),
        True,
    ),
    Framing(
        "chunked-gzip",
        lambda b, h: ([*h, ("Transfer-Encoding", "gzip, chunked")], _chunks(b, max(7, len(b) // 16))),
        True,
    ),
    Framing("identity", lambda b, h: ([*h, ("Transfer-Encoding", "identity")], b), True),
    Framing(
        "chunked-no-end",
        lambda b, h: ([*h, ("Transfer-Encoding", "chunked")], _chunks(b, max(7, len(b) // 16))[:-5]),
        True,
    ),
    Framing("chunked-negative", lambda b, h: ([*h, ("Transfer-Encoding", "chunked")], b"-1\r\n" + b), True),
    Framing(
        "chunked-0x",
        lambda b, h: ([*h, ("Transfer-Encoding", "chunked")], b"0x%x\r\n%s\r\n0\r\n\r\n" % (len(b), b)),
        True,
    ),
    Framing(
        "chunked-overlong-data",
        lambda b, h: ([*h, ("Transfer-Encoding", "chunked")], b"1\r\n" + b + b"xx\r\n0\r\n\r\n"),
        True,
    ),
    Framing(
        "chunked-size-overflow",
        lambda b, h: ([*h, ("Transfer-Encoding", "chunked")], b"1" + b"0" * 30 + b"\r\n" + b),
        True,
    ),
    Framing(
        "chunked-bare-lf",
        lambda b, h: (
            [*h, ("Transfer-Encoding", "chunked")],
            b"%x\n%s\r\n0\r\n\r\n" % (len(b) or 1, b or b"x"),
        ),
        True,
    ),
]


# --------------------------------------------------------------------------- the properties

VERSIONS = ["HTTP/1.1"] * 6 + ["HTTP/1.0", "HTTP/2.0", "HTTP/0.9", "HTTP/1.2", "HTTP/1", "http/1.1", ""]


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_request_heads(service: Service, data: st.DataObject) -> None:
    """Any method, target, query, header set and version, on either origin: a well-formed answer."""
    method = data.draw(methods, "method")
    path = data.draw(api_paths(service), "path")
    query = data.draw(queries, "query")
    target = path + ("?" + query if query else "")
    headers = data.draw(headers_lists, "headers")
    if data.draw(st.booleans(), "auth"):
        headers = [("Authorization", AUTH), *headers]
    version = data.draw(st.sampled_from(VERSIONS), "version")
    raw = (
        head_bytes(method, target, headers, version)
        if version
        else f"{method} {target}\r\n\r\n".encode("latin-1", "replace")
    )
    if data.draw(st.booleans(), "cdn"):
        responses, _ = exchange(service.cdn, raw, head=method == "HEAD")
        for r in responses:
            check_cdn(r, service, genuine=False)
        assert responses, "a request whose head arrived got no answer"
        still_serving(service)
    else:
        api_round(service, raw, head=method == "HEAD")


@settings(FUZZ, max_examples=400)
@given(data=st.data())
def test_bodies_and_framing(service: Service, data: st.DataObject) -> None:
    """JSON of every shape and size, raw bytes, under every framing, to generate, uploads and actions."""
    route = data.draw(
        st.sampled_from(
            [
                ("generate", f"/v1/generate/custom/{MODEL}"),
                ("generate", f"/v1/generate/custom/{MODEL}?dryRun=true"),
                ("upload", "/v1/assets"),
                ("action", f"/v1/jobs/{service.job_id}/action"),
                ("action", "/v1/jobs/job_nope/action"),
            ]
        ),
        "route",
    )
    kind, target = route
    shape = data.draw(st.sampled_from(["json", "json", "json", "sized", "binary"]), "shape")
    if shape == "json":
        value = data.draw(
            {"generate": generate_bodies(service), "upload": upload_bodies(service), "action": action_bodies}[
                kind
            ],
            "body",
        )
        body = encode_json(value, data.draw(st.booleans(), "ascii"))
    elif shape == "sized":
        template = data.draw(st.sampled_from(SIZED), "template")
        body = template(data.draw(st.sampled_from(SIZES), "size"))[: 6 * 1024 * 1024]
    else:
        body = data.draw(st.binary(max_size=200), "binary")
    framing = data.draw(st.sampled_from(FRAMINGS), "framing")
    method = data.draw(st.sampled_from(["POST"] * 8 + ["PUT", "PATCH", "GET", "DELETE"]), "method")
    headers = [("Host", "127.0.0.1"), ("Authorization", AUTH), ("Content-Type", "application/json")]
    if data.draw(st.booleans(), "expect"):
        headers.append(("Expect", "100-continue"))
    headers, payload = framing.build(body, headers)
    responses = api_round(service, head_bytes(method, target, headers) + payload)
    SEEN[f"{framing.name}: {responses[0].status}"] += 1
    SEEN[f"body {len(body) // 100_000 * 100} kB+"] += 1
    if framing.refused:
        first = responses[0]
        assert first.status in (400, 413, 501), (framing.name, first.status, first.body[:200])
        assert first.headers.get("connection") == "close", (framing.name, first.headers)


def cdn_targets(service: Service) -> st.SearchStrategy[tuple[str, bool, bool]]:
    """(target, genuine, stale): genuine = the asset's valid signature; stale = its expired genuine one."""
    ids = st.one_of(
        st.just(service.asset_id),
        st.just(quote(service.asset_id, safe="")),
        st.just("".join(f"%{b:02x}" for b in service.asset_id.encode())),
        segments([service.asset_id, service.job_id]).map("/".join),
        st.builds(
            lambda a, b: a + b,
            st.sampled_from(["../", "%2e%2e/", "./", "%2F", "/", ""]),
            st.just(service.asset_id),
        ),
        st.builds(
            lambda a, b: a + b,
            st.just(service.asset_id),
            st.sampled_from(["/..", "%00", "/", "%2f..%2f", "?", "#x"]),
        ),
    )
    prefixes = st.sampled_from(
        ["/files/"] * 6 + ["/files", "/", "/FILES/", "//files/", "/files/../files/", "/v1/assets/"]
    )
    fe, fs = service.fresh
    se, ss = service.stale
    flipped = fs[:-1] + ("0" if fs[-1] != "0" else "1")
    pairs_list = [
        [("expires", fe), ("signature", fs)],
        [("signature", fs), ("expires", fe)],
        [("expires", se), ("signature", ss)],
        [("expires", fe), ("signature", flipped)],
        [("expires", str(int(fe) + 1)), ("signature", fs)],
        [("expires", str(10**12)), ("signature", fs)],
        [("expires", se), ("signature", fs)],
        [("expires", fe)],
        [("signature", fs)],
        [],
        [("expires", fe), ("signature", fs), ("expires", "1")],
        [("expires", "1"), ("expires", fe), ("signature", fs)],
        [("expires", fe), ("signature", fs.upper())],
        [("expires", "%20" + fe), ("signature", fs)],
        [("expires", fe + ".0"), ("signature", fs)],
        [("expires", "-1"), ("signature", fs)],
        [("expires", "1" + "0" * 400), ("signature", "0" * 64)],
        [("expires", fe), ("signature", fs + "00")],
        [("expires", fe), ("signature", "%00" * 32)],
    ]
    pairs = st.sampled_from(pairs_list)
    extra = st.lists(st.tuples(st.sampled_from(QUERY_KEYS), query_values), max_size=2)

    def build(
        prefix: str, asset: str, pair: list[tuple[str, str]], more: list[tuple[str, str]]
    ) -> tuple[str, bool, bool]:
        query = "&".join(f"{k}={v}" for k, v in [*pair, *more])
        target = prefix + asset + ("?" + query if query else "")
        parts = urlsplit(target)
        got = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        is_asset = (
            parts.path.startswith("/files/") and unquote(parts.path[len("/files/") :]) == service.asset_id
        )
        signed = (got.get("expires"), got.get("signature"))
        return target, is_asset and signed == service.fresh, is_asset and signed == service.stale

    exact = st.builds(
        build, st.just("/files/"), st.just(service.asset_id), st.sampled_from(pairs_list[:3]), extra
    )
    return st.one_of(exact, st.builds(build, prefixes, ids, pairs, extra))


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_cdn_paths_and_signatures(service: Service, data: st.DataObject) -> None:
    """Traversal, forged, tampered and expired signatures on the CDN: only the genuine URL is served."""
    target, genuine, stale = data.draw(cdn_targets(service), "target")
    method = data.draw(st.sampled_from(["GET"] * 6 + ["HEAD", "POST", "get", "DELETE", "OPTIONS"]), "method")
    headers = [("Host", "127.0.0.1")]
    if data.draw(st.booleans(), "auth"):
        headers.append(("Authorization", AUTH))
    responses, _ = exchange(service.cdn, head_bytes(method, target, headers), head=method == "HEAD")
    assert responses, "a request whose head arrived got no answer"
    SEEN[f"genuine={genuine} stale={stale} {method}: {responses[0].status}"] += 1
    for r in responses:
        check_cdn(r, service, genuine=genuine and method in ("GET", "HEAD"))
    if method in ("GET", "HEAD"):
        if genuine:
            assert responses[0].status == 200, responses[0].body[:300]
        if stale:
            assert responses[0].status == 403
            if method == "GET":
                assert b"Request has expired" in responses[0].body
    still_serving(service)


@settings(FUZZ, max_examples=150)
@given(
    query=list_queries | queries,
    auth=st.integers(0, 5).map(lambda i: i != 5),
    path=st.sampled_from(["/v1/jobs", "/v1/jobs/", "//v1/jobs"]),
)
def test_job_list_queries(service: Service, query: str, auth: bool, path: str) -> None:
    """The job list's query parameters (page sizes, tokens, dates, filters) in every odd form."""
    headers = [("Host", "127.0.0.1")] + ([("Authorization", AUTH)] if auth else [])
    responses = api_round(service, head_bytes("GET", f"{path}?{query}", headers))
    if auth and responses[0].status == 200:
        assert isinstance(responses[0].json()["jobs"], list)


@settings(FUZZ, max_examples=100)
@given(
    origin=st.sampled_from(["api", "cdn"]),
    prefix=st.sampled_from(
        [b"", b"GET ", b"GET /v1/jobs HTTP/1.1\r\n", b"POST /v1/assets HTTP/1.1\r\nContent-Length: 5\r\n\r\n"]
    ),
    garbage=st.binary(max_size=300),
)
def test_garbage(service: Service, origin: str, prefix: bytes, garbage: bytes) -> None:
    """Bytes that are not HTTP: answered with an error in the origin's format, or the connection closed."""
    port = service.api if origin == "api" else service.cdn
    responses, _ = exchange(port, prefix + garbage)
    for r in responses:
        if origin == "api":
            check_api(r, service)
        else:
            check_cdn(r, service, genuine=False)
    still_serving(service)


def test_the_sandbox_survived_every_example(service: Service) -> None:
    """Still alive, still serving, and it logged no error (every 500 and handler crash is logged)."""
    still_serving(service)
    text = service.log.read_text()
    assert "ERROR" not in text and "Traceback" not in text, text[-3000:]
    peak = ""
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{service.proc.pid}/status").read_text()
        peak = ", ".join(
            " ".join(line.split()) for line in status.splitlines() if line.startswith(("VmHWM", "VmPeak"))
        )
    if os.environ.get("RODIN_NB_FUZZ_STATS"):
        print(dict(sorted(SEEN.items())))
    print(f"\nsandbox fuzz: {service.examples} examples survived; child memory peak {peak}")
