"""Never leak a key: a whole session with a recognisable key and secret, then where Authorization may go.

Everything a user can see or keep is searched for the key, the secret and their Basic-auth form: DEBUG
logs, repr() and str() of every public object and error, every file the workspace holds (the run log,
downloads), the log's CSV and JSON exports, an executed notebook and its HTML.
"""

from __future__ import annotations

import base64
import io
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import rodin_nb as rn
from rodin_nb.sandbox import serve
from rodin_nb.transport import Transport

KEY = "sk_live_RECOGNISABLE_KEY_0123"
SECRET = "SECRET_RECOGNISABLE_4567"
BASIC = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
FORBIDDEN = (KEY, SECRET, BASIC)
RETRY = rn.RetryPolicy(max_retries=2, backoff_base_s=0.01, backoff_cap_s=0.05)


def leaks(text: str | bytes) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    return [secret for secret in FORBIDDEN if secret.encode() in data]


def shown(obj: object) -> str:
    """What a user can see of an object: its repr, its str and its HTML form if it has one."""
    parts = [repr(obj), str(obj)]
    html = getattr(obj, "_repr_html_", None)
    if callable(html):
        parts.append(str(html()))
    return "\n".join(parts)


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Every record of every logger, at DEBUG, into a string."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_a_whole_session_leaks_neither_key_nor_secret(tmp_path: Path, debug_log: io.StringIO) -> None:
    workspace = tmp_path / "ws"
    seen: list[str] = []  # every text a user could see
    errors: list[BaseException] = []
    faults = {"error_rate": 0.15, "fail_rate": 0.4, "seed": 3}
    with serve(credentials=(KEY, SECRET), job_seconds=0.2, faults=faults) as sb:
        with rn.connect(KEY, SECRET, base_url=sb.url, workspace=workspace, quiet=True, retry=RETRY) as client:
            runs = []
            for seed in range(3):  # generate, some of which fail on the service (fail_rate)
                run = client.generate(prompt="a chair", seed=seed, quality="extra-low")
                try:
                    run.wait(timeout=30)
                except rn.RodinError as exc:
                    errors.append(exc)
                runs.append(run)
            sweep = client.sweep(prompt="a mug", seed=[1, 2, 3, 4], quality="extra-low")
            df = sweep.run(progress=False)
            assert "failure" in set(df["status"]) | {run.status for run in runs}  # a failing job was seen
            for run in sweep.runs:
                try:
                    run.wait(timeout=30)
                except rn.RodinError as exc:
                    errors.append(exc)
            seen += [shown(obj) for obj in (client, client.transport, client.log, client.schema, sweep)]
            seen += [shown(run) for run in [*runs, *sweep.runs]]
            seen += [shown(request) for request in sweep.requests]
            seen += [df.to_string(), client.log.df.to_string(), shown(sweep.progress())]
            seen.append(shown(rn.RodinRequest(schema=client.schema, prompt="a vase", seed=5)))
            client.log.export(tmp_path / "export" / "log.csv")
            client.log.export(tmp_path / "export" / "log.json")
            seen.append(shown(client.api))
        # A 401: the right key with a wrong secret (its error must not echo the key either).
        with (
            rn.connect(
                KEY, "not_the_secret", base_url=sb.url, workspace=tmp_path / "w401", quiet=True
            ) as bad,
            pytest.raises(rn.AuthenticationError) as refused,
        ):
            bad.generate(prompt="a chair", seed=1, quality="extra-low")
        errors.append(refused.value)
        assert sb.stats()["file_requests_with_authorization"] == 0
    # Answered 5xx on every request: the run ends not-submitted with the server's error.
    with (
        serve(credentials=(KEY, SECRET), faults={"error_rate": 1.0}) as broken,
        rn.connect(
            KEY, SECRET, base_url=broken.url, workspace=tmp_path / "w5xx", quiet=True, retry=RETRY
        ) as c,
    ):
        run = c.generate(prompt="a chair", seed=1, quality="extra-low")
        with pytest.raises(rn.RodinError) as server_error:
            run.wait(timeout=30)
        errors.append(server_error.value)
        seen += [shown(run), shown(c), c.log.df.to_string()]
    assert any(isinstance(e, rn.JobFailed) for e in errors)
    for error in errors:
        seen += [shown(error), repr(error.__cause__), repr(vars(error))]
    seen.append(debug_log.getvalue())
    assert "rodin_nb.http" in debug_log.getvalue()  # DEBUG logging really was on
    for text in seen:
        assert not leaks(text), (leaks(text), text[:2000])
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(p.name == "log.csv" for p in files) and any(p.name == "log.json" for p in files)
    assert any(p.suffix == ".sqlite" for p in files)
    for path in files:  # the run log (and its WAL), downloads, exports
        assert not leaks(path.read_bytes()), path


NOTEBOOK_CELLS = [
    "import os, logging\nlogging.basicConfig(level=logging.DEBUG, force=True)\nimport rodin_nb as rn",
    "client = rn.connect(workspace='ws', quiet=True)\nclient",
    "run = client.generate(prompt='a chair', seed=1, quality='extra-low').wait(timeout=60)\nrun",
    "client.log.df",
    "sweep = client.sweep(prompt='a mug', seed=[1, 2], quality='extra-low')\nsweep.run(progress=False)",
    "print(repr(client.transport), client.schema, sweep)",
    # an error with its traceback in the notebook: the wrong secret, the right key
    "rn.connect(os.environ['SCENARIO_SDK_API_KEY'], 'wrong_one', quiet=True, workspace='w2')"
    ".generate(prompt='a chair', seed=2)",
]


@pytest.mark.kernel
def test_an_executed_notebook_and_its_html_hold_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in NOTEBOOK_CELLS]
    with serve(credentials=(KEY, SECRET), job_seconds=0.2) as sb:
        monkeypatch.setenv("SCENARIO_SDK_API_KEY", KEY)  # the kernel's environment carries the key
        monkeypatch.setenv("SCENARIO_SDK_API_SECRET", SECRET)
        monkeypatch.setenv("SCENARIO_BASE_URL", sb.url)
        NotebookClient(
            nb,
            timeout=120,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(tmp_path)}},
        ).execute()
    outputs = [out for cell in nb.cells for out in cell.get("outputs", [])]
    errors = [out for out in outputs if out.output_type == "error"]
    assert [e.ename for e in errors] == ["AuthenticationError"], [f"{e.ename}: {e.evalue}" for e in errors]
    assert any("DEBUG:urllib3" in out.get("text", "") for out in outputs)  # DEBUG logging reached it
    path = tmp_path / "session.ipynb"
    nbformat.write(nb, path)
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert "AuthenticationError" in html
    assert not leaks(path.read_bytes())
    assert not leaks(html)
    for file in (tmp_path / "ws").rglob("*"):
        if file.is_file():
            assert not leaks(file.read_bytes()), file


# --- where Authorization may go -------------------------------------------------------------------


class Recorder:
    """A loopback HTTP server that records each request's path and headers, and answers ``answer``."""

    def __init__(self, answer: Any = None) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                recorder.seen.append((self.command, self.path, dict(self.headers.items())))
                status, headers, body = answer(self.path) if answer else (200, {}, b"{}")
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def authorizations(self) -> list[str | None]:
        return [
            next((v for k, v in headers.items() if k.lower() == "authorization"), None)
            for *_, headers in self.seen
        ]


@pytest.fixture
def elsewhere() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_authorization_never_follows_a_redirect_to_another_origin(
    status: int, host: str, method: str, elsewhere: Recorder
) -> None:
    """The API answers a redirect to another port (or host): the request may follow, its credentials not."""
    target = f"http://{host}:{elsewhere.port}/landing"
    api = Recorder(lambda path: (status, {"Location": target}, b"{}"))
    try:
        transport = Transport(f"http://127.0.0.1:{api.port}/v1", api_key=KEY, api_secret=SECRET, retry=RETRY)
        try:
            transport.request(method, "jobs", json={"a": 1} if method == "POST" else None, idempotent=False)
        finally:
            transport.close()
    finally:
        api.close()
    assert api.authorizations() == [f"Basic {BASIC}"]  # the API itself did get the credentials
    assert len(elsewhere.seen) == 1  # the redirect was followed ...
    assert elsewhere.authorizations() == [None]  # ... without them
    assert not any(leaks(str(headers)) for *_, headers in elsewhere.seen)


def test_signed_url_downloads_carry_no_authorization(elsewhere: Recorder) -> None:
    transport = Transport("http://127.0.0.1:9/v1", api_key=KEY, api_secret=SECRET)
    try:
        for host in ("127.0.0.1", "localhost"):
            transport.get_external(f"http://{host}:{elsewhere.port}/files/x?signature=y").close()
    finally:
        transport.close()
    assert elsewhere.authorizations() == [None, None]


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "api.cloud.scenario.com", "10.0.0.5", "[2001:db8::1]", "127.0.0.1.example.com"]
)
def test_a_non_loopback_http_base_url_is_refused_before_any_request(
    host: str, elsewhere: Recorder, tmp_path: Path
) -> None:
    """0.0.0.0 is not a loopback address, yet on Linux connecting to it reaches the recorder listening on
    127.0.0.1: nothing arriving there shows that the refusal comes before any request."""
    url = f"http://{host}:{elsewhere.port}/v1"
    with pytest.raises(rn.ConfigError, match="https"):
        rn.connect(KEY, SECRET, base_url=url, quiet=True, workspace=tmp_path)
    with pytest.raises(rn.ConfigError) as refused:
        Transport(url, api_key=KEY, api_secret=SECRET)
    assert not leaks(shown(refused.value))
    assert elsewhere.seen == []
    assert not any(tmp_path.iterdir())  # not even a workspace was made
