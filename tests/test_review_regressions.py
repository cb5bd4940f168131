"""Regressions found by an independent review: each one a way to pay twice, hang, forget or leak."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

import rodin_nb as rn
from rodin_nb.errors import APITimeoutError
from rodin_nb.sandbox import serve

from .conftest import make_client


def test_lost_connection_is_never_reposted(tmp_path: Path) -> None:
    """The job was created, the answer lost, and the list cannot show it yet: raise, keep the row."""
    with serve(job_seconds=0.3) as sb, make_client(sb, tmp_path) as client:
        real = client.api.generate

        def created_then_dropped(model_id: str, body: dict) -> dict:
            real(model_id, body)
            raise APITimeoutError("no answer in time", maybe_sent=True)

        client.api.generate = created_then_dropped  # type: ignore[method-assign]
        client.api.list_jobs = lambda **kw: iter(())  # type: ignore[method-assign]  # the list lags behind
        with pytest.raises(rn.APITimeoutError) as info:
            client.generate(prompt="a chair", seed=1, quality="extra-low")
        assert info.value.ambiguous
        assert sb.stats()["jobs_created"] == 1
        (row,) = client.log.rows()
        assert row["status"] == "submitting"  # not "nothing billed": resume() will look for the job


def test_resume_finds_the_job_of_a_lost_answer(tmp_path: Path) -> None:
    with serve(job_seconds=0.3) as sb:
        with make_client(sb, tmp_path) as client:
            real = client.api.generate

            def created_then_dropped(model_id: str, body: dict) -> dict:
                real(model_id, body)
                raise APITimeoutError("no answer in time", maybe_sent=True)

            client.api.generate = created_then_dropped  # type: ignore[method-assign]
            client.api.list_jobs = lambda **kw: iter(())  # type: ignore[method-assign]
            with pytest.raises(rn.APITimeoutError):
                client.generate(prompt="a chair", seed=1, quality="extra-low")
        with make_client(sb, tmp_path) as later:
            (run,) = later.resume()
            assert run.wait(timeout=120).glb is not None
        assert sb.stats()["jobs_created"] == 1


def test_reconciliation_never_takes_a_job_another_run_owns(sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with make_client(sandbox, tmp_path) as first, make_client(sandbox, tmp_path) as second:
        owned = first.generate(prompt="a chair", seed=1, quality="extra-low", reuse=False).wait(timeout=30)
        req = second.request(prompt="a chair", seed=1, quality="extra-low")
        job, complete = second._find_submitted_job(req.to_body(), since=owned.submitted_at)
        assert job is None and complete  # the only matching job is recorded for another run


def test_an_upload_timeout_is_not_ambiguous(client: rn.Client, tmp_path: Path) -> None:
    """An upload cannot create a job: its failure leaves an honest "nothing billed" row."""
    picture = tmp_path / "ref.png"
    Image.new("RGB", (8, 8), "red").save(picture)

    def upload_times_out(*args: object) -> dict:
        raise APITimeoutError("no answer in time", maybe_sent=True)

    client.api.upload_image = upload_times_out  # type: ignore[method-assign]
    with pytest.raises(rn.APITimeoutError):
        client.generate(images=[picture], seed=1, quality="extra-low")
    (row,) = client.log.rows()
    assert row["status"] == "failure" and "nothing was created" in row["hint"]


def test_closing_the_client_releases_waiters(tmp_path: Path) -> None:
    with serve(job_seconds=5) as sb:
        client = make_client(sb, tmp_path)
        run = client.generate(prompt="a chair", seed=1, quality="extra-low")
        client.close()
        started = time.monotonic()
        with pytest.raises(rn.RodinError, match="resume"):
            run.wait(timeout=10)
        assert time.monotonic() - started < 2
        with make_client(sb, tmp_path) as again:
            assert [r.run_id for r in again.resume()] == [run.run_id]


def test_a_single_404_does_not_lose_a_job(client: rn.Client, sandbox) -> None:  # type: ignore[no-untyped-def]
    real = client.api.get_job
    calls = {"n": 0}

    def flaky(job_id: str) -> dict:
        calls["n"] += 1
        if calls["n"] == 1:
            raise rn.NotFoundError("not yet replicated", status_code=404)
        return real(job_id)

    client.api.get_job = flaky  # type: ignore[method-assign]
    run = client.generate(prompt="a chair", seed=1, quality="extra-low")
    assert run.wait(timeout=30).status == "success"


def test_a_failed_row_reopens_at_once(client: rn.Client) -> None:
    with pytest.raises(rn.BadRequestError):
        client.generate(images=["asset_missing"], seed=1)
    (row,) = client.log.rows()
    started = time.monotonic()
    with pytest.raises(rn.JobFailed):
        client.run(row["run_id"]).wait(timeout=10)
    assert time.monotonic() - started < 1 and client.log.get(row["run_id"])["status"] == "failure"


def test_a_broken_submission_ends_the_sweep_instead_of_hanging(client: rn.Client) -> None:
    sweep = client.sweep(prompt="a chair", seed=[1, 2, 3], quality="extra-low", concurrency=1)

    def broken(*args: object, **kwargs: object) -> rn.Run:
        raise RuntimeError("database is locked")

    client.generate = broken  # type: ignore[method-assign]
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="locked"):
        sweep.run(progress=False)
    assert sweep.done and time.monotonic() - started < 5


def test_download_again_then_wait_again(client: rn.Client) -> None:
    real = client.downloader.fetch
    calls = {"n": 0}

    def fails_once(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise rn.AssetError("connection reset mid-download")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    client.downloader.fetch = fails_once  # type: ignore[method-assign]
    run = client.generate(prompt="a chair", seed=1, quality="extra-low")
    with pytest.raises(rn.AssetError, match=r"client\.download"):
        run.wait(timeout=30)
    client.download(run)
    assert run.wait(timeout=30).glb is not None
