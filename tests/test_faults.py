"""Every sandbox fault knob: the client survives it, the result arrives, no extra job is created."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

import rodin_nb as rn
from rodin_nb.sandbox import serve

from .conftest import make_client


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
    # The shared Retry-After gate keeps 429s a small share of the traffic instead of a storm.
    assert limited < total / 2


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
