"""Every sandbox fault knob: the client survives it, the result arrives, no extra job is created."""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

import rodin_nb as rn
from rodin_nb.sandbox import serve
from rodin_nb.sandbox.faults import FaultConfig, FaultInjector
from rodin_nb.store import Downloader

from .conftest import FIXTURES, make_client


def run_some(client: rn.Client, n: int) -> list[rn.Run]:
    runs = [client.generate(prompt="a chair", seed=seed, quality="extra-low") for seed in range(n)]
    for run in runs:
        run.wait(timeout=60)
    return runs


@pytest.mark.parametrize(
    "faults",
    [
        {"latency_s": 0.05},
        {"error_rate": 0.3, "seed": 3},
        {"rate_limit_per_s": 15},
        {"drop_after_create_rate": 0.5, "seed": 5},
        {"url_ttl_s": 0.5},
    ],
    ids=["latency", "5xx", "429", "drop-after-create", "short-url-ttl"],
)
def test_client_survives_and_pays_once(faults: dict, tmp_path: Path) -> None:
    with serve(job_seconds=0.3, faults=faults) as sb, make_client(sb, tmp_path) as client:
        runs = run_some(client, 4)
        stats = sb.stats()
    assert all(run.status == "success" and run.glb is not None for run in runs)
    assert stats["jobs_created"] == 4
    assert len({run.job_id for run in runs}) == 4
    kind = next(iter(faults))
    if kind in ("error_rate", "rate_limit_per_s", "drop_after_create_rate"):
        assert sum(stats["faults_injected"].values()) > 0


def test_drop_after_create_reattaches(tmp_path: Path) -> None:
    with serve(job_seconds=0.3, faults={"drop_after_create_rate": 1.0}) as sb, make_client(sb, tmp_path) as c:
        run = c.generate(prompt="a chair", seed=1, quality="extra-low")
        assert run.reattached
        run.wait(timeout=30)
        assert sb.stats()["jobs_created"] == 1


def test_generate_timeout_after_create_reattaches(tmp_path: Path) -> None:
    """A read timeout on the create call is ambiguous: the job exists, so it is found, not paid again."""
    with (
        serve(job_seconds=0.3, faults={"slow_create_s": 1.0}) as sb,
        make_client(sb, tmp_path, timeout=(5.0, 0.3)) as client,
    ):
        run = client.generate(prompt="a chair", seed=1, quality="extra-low")
        assert run.reattached
        run.wait(timeout=30)
        stats = sb.stats()
    assert stats["jobs_created"] == 1 and stats["faults_injected"]["slow_create"] == 1


def test_failing_jobs_are_reported_not_retried(tmp_path: Path) -> None:
    with serve(job_seconds=0.2, faults={"fail_rate": 1.0}) as sb, make_client(sb, tmp_path) as client:
        runs = [client.generate(prompt="a chair", seed=s, quality="extra-low") for s in range(3)]
        for run in runs:
            with pytest.raises(rn.JobFailed):
                run.wait(timeout=30)
        assert sb.stats()["jobs_created"] == 3


def test_rate_limit_slows_everyone(tmp_path: Path) -> None:
    with serve(job_seconds=0.3, faults={"rate_limit_per_s": 5}) as sb, make_client(sb, tmp_path) as client:
        run_some(client, 3)
        limited = sb.stats()["faults_injected"].get("rate_limit", 0)
        total = sum(sb.stats()["requests"].values())
        gate = client.transport.gate
    # The shared gate paces everyone after the first 429s: they stay a small share of the traffic
    # instead of a storm (typically 2 or 3 of about 20 requests).
    assert limited > 0 and gate.refusals == limited
    assert limited < total / 4
    assert gate.interval > 0  # it learned a pace


class TestSteadyRateLimit:
    """A steady rate limit slows the client down and never fails a submission, poll or download."""

    # 2 requests/s keeps the test near 15 s; the 1/s regime is covered by the concurrent-calls test below.
    @pytest.mark.parametrize("rate", [2])
    def test_sweep_finishes_every_run(self, rate: int, tmp_path: Path) -> None:
        """6 runs through 2 requests/s: all succeed with files, one job each, 429s a minority."""
        with (
            serve(job_seconds=0.5, faults={"rate_limit_per_s": rate}) as sb,
            make_client(sb, tmp_path) as client,
        ):
            sweep = client.sweep(prompt="a mug", seed=[1, 2, 3, 4, 5, 6], quality="extra-low")
            df = sweep.run(progress=False)  # raised RateLimitError before pacing
            stats = sb.stats()
            runs = list(sweep.runs)
        assert list(df["status"]) == ["success"] * 6, df[["status", "error"]]
        assert all(run.glb is not None and run.glb.is_file() and not run.download_error for run in runs)
        assert stats["jobs_created"] == 6
        limited = stats["faults_injected"].get("rate_limit", 0)
        assert 0 < limited < sum(stats["requests"].values()) / 4

    def test_concurrent_generate_calls_all_succeed(self, tmp_path: Path) -> None:
        """4 generate() calls from 4 threads at 1 request/s, and no retries allowed for other faults:
        429s are waited out without using up max_retries."""
        retry = rn.RetryPolicy(max_retries=0, backoff_base_s=0.02, backoff_cap_s=0.2)
        with (
            serve(job_seconds=0.5, faults={"rate_limit_per_s": 1}) as sb,
            make_client(sb, tmp_path, retry=retry) as client,
        ):
            runs: list[rn.Run] = []
            errors: list[BaseException] = []

            def submit(seed: int) -> None:
                try:
                    runs.append(client.generate(prompt="a mug", seed=seed, quality="extra-low"))
                except BaseException as exc:  # reported below, with the others
                    errors.append(exc)

            threads = [threading.Thread(target=submit, args=(seed,)) for seed in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=90)
            assert not errors, errors
            for run in runs:
                run.wait(timeout=90)  # raises on a failed job or a failed download
            stats = sb.stats()
        assert len(runs) == 4 and all(run.status == "success" and run.glb is not None for run in runs)
        assert stats["jobs_created"] == 4 and len({run.job_id for run in runs}) == 4
        assert stats["faults_injected"].get("rate_limit", 0) > 0

    def test_past_its_patience_a_request_raises_rate_limit_error(self, tmp_path: Path) -> None:
        """With rate_limit_patience_s=0 the first 429 is final: a clear error, nothing created."""
        retry = rn.RetryPolicy(rate_limit_patience_s=0)
        with (
            serve(job_seconds=0.3, faults={"rate_limit_per_s": 0.1}) as sb,  # one request per 10 s
            make_client(sb, tmp_path, retry=retry) as client,  # connecting used the one slot
        ):
            with pytest.raises(rn.RateLimitError, match="rate_limit_patience_s=0") as caught:
                client.generate(prompt="a mug", seed=1, quality="extra-low")
            assert caught.value.retry_after is not None and caught.value.retry_after > 0
            assert sb.stats()["jobs_created"] == 0
            (row,) = client.log.rows("1=1", ())
        assert row["status"] == "not-submitted" and "429" in row["error"]

    def test_a_client_never_limited_is_never_paced(self, tmp_path: Path) -> None:
        """Without 429s the gate never holds a request back (counted, not timed)."""
        with serve(job_seconds=0.3) as sb, make_client(sb, tmp_path) as client:
            run_some(client, 3)
            gate = client.transport.gate
            requests = sum(sb.stats()["requests"].values())
        assert requests > 5
        assert (gate.interval, gate.delayed, gate.refusals) == (0.0, 0, 0)


def test_file_host_429s_are_waited_out_without_using_attempts(tmp_path: Path) -> None:
    """A signed-URL host answering 429 is waited out (Retry-After), even with a single attempt."""
    body = (FIXTURES / "BoxTextured.glb").read_bytes()
    hits: list[int] = []

    class Limited(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(1)
            if len(hits) <= 3:
                self.send_response(429)
                self.send_header("retry-after-ms", "20")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "model/gltf-binary")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    host = ThreadingHTTPServer(("127.0.0.1", 0), Limited)
    threading.Thread(target=host.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{host.server_address[1]}/file.glb?signature=x"
    asset = {"url": url, "mimeType": "model/gltf-binary"}
    try:
        with serve(job_seconds=0.3) as sb, make_client(sb, tmp_path) as client:
            patient = Downloader(client.api, client.store, retry=client.transport.retry, attempts=1)
            stored = patient.fetch("asset_limited", asset=asset)
            assert stored.sha256 == hashlib.sha256(body).hexdigest() and len(hits) == 4
            hits.clear()
            impatient = Downloader(client.api, client.store, retry=rn.RetryPolicy(rate_limit_patience_s=0))
            with pytest.raises(rn.AssetError, match="429"):
                impatient.fetch("asset_limited", asset=asset)
    finally:
        host.shutdown()
        host.server_close()


def test_corrupt_download_is_detected_and_refetched(tmp_path: Path) -> None:
    with serve(job_seconds=0.2) as sb, make_client(sb, tmp_path) as client:
        run = client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
        assert run.glb is not None
        good = run.glb.read_bytes()
        run.glb.write_bytes(good[: len(good) // 2])  # a truncated file on disk
        sha = run.stored[0].sha256
        assert client.store.has(sha, ".glb") is None  # noticed: content no longer matches its name
        client.download(run)
        again = client.attach(str(run.job_id))
        assert again is run
        deadline = time.monotonic() + 10
        while run.glb.read_bytes() != good and time.monotonic() < deadline:
            time.sleep(0.05)
        assert run.glb.read_bytes() == good


def test_expired_url_is_refreshed(tmp_path: Path) -> None:
    with serve(job_seconds=0.2, faults={"url_ttl_s": 0.2}) as sb, make_client(sb, tmp_path) as client:
        run = client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
        asset_id = run.stored[0].asset_id
        stale = client.api.get_asset(asset_id)
        expires = float(parse_qs(urlsplit(stale["url"]).query)["expires"][0])
        time.sleep(max(0.0, expires - time.time()) + 0.1)  # now the signed URL in `stale` has expired
        before = sb.stats()["requests"]["GET /v1/assets/{assetId}"]
        again = client.downloader.fetch(asset_id, asset=stale)
        assert again.sha256 == run.stored[0].sha256
        assert sb.stats()["requests"]["GET /v1/assets/{assetId}"] == before + 1  # one fresh URL
        assert sb.stats()["file_requests_with_authorization"] == 0


def test_stale_first_url_is_refused_then_refreshed(tmp_path: Path) -> None:
    """Every asset's first URL handed out already expired: 403 on first use, one fresh URL, right bytes."""
    with (
        serve(job_seconds=0.2, faults={"stale_url_rate": 1.0}) as sb,
        make_client(sb, tmp_path) as client,
    ):
        run = client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
        assert run.status == "success"
        stats = sb.stats()
        model = run.stored[0]
        assert hashlib.sha256(model.path.read_bytes()).hexdigest() == model.sha256
        assert model.sha256 == hashlib.sha256(sb.asset_bytes(model.asset_id)[1]).hexdigest()
    assert stats["file_refusals"] == {"expired": 1}  # the model's first URL (the preview's went unused)
    assert stats["faults_injected"]["stale_url"] == 2  # the model's URL and the preview URL inside it
    assert stats["requests"]["GET /v1/assets/{assetId}"] == 3  # model, its fresh URL, then the preview
    assert stats["file_requests"] == stats["downloads"] + 1


@pytest.mark.parametrize(
    ("rate", "capacity", "window"),
    [(1, 1, 1.0), (5, 5, 1.0), (0.5, 1, 2.0), (2.5, 3, 1.2)],
)
def test_sandbox_rate_limit_admits_exactly_its_rate(rate: float, capacity: int, window: float) -> None:
    """N/s admits ``capacity`` per ``window`` (capacity / window == N); Retry-After says when a slot frees."""
    now = [100.0]
    limiter = FaultInjector(FaultConfig(rate_limit_per_s=rate), clock=lambda: now[0])
    assert [limiter.rate_limited() for _ in range(capacity)] == [None] * capacity
    now[0] += 0.25 * window
    assert limiter.rate_limited() == pytest.approx(0.75 * window)  # the first admitted leaves then
    now[0] += 0.75 * window
    assert limiter.rate_limited() is None  # exactly when it said
    assert limiter.snapshot()["rate_limit"] == 1
