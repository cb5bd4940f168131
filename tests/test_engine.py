"""The background engine: polls that survive service hiccups, downloads that can be repeated, clean stops."""

from __future__ import annotations

import pytest

import rodin_nb as rn


def test_a_single_404_does_not_lose_a_job(client: rn.Client) -> None:
    """One 404 may be a lagging replica: the job is polled again, not marked lost."""
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


def test_download_again_then_wait_again(client: rn.Client) -> None:
    """A failed download leaves the run downloading (never success without files); again, it succeeds."""
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
    assert run.status == "downloading" and client.log.get(run.run_id)["status"] == "downloading"
    client.download(run)
    assert run.wait(timeout=30).glb is not None
    row = client.log.get(run.run_id)
    assert row["status"] == "success" and row["error"] is None


def test_the_engine_keeps_its_bookkeeping_off_the_run(client: rn.Client) -> None:
    """A Run is a thin handle: poll delays, error counts and deadlines live in the engine."""
    run = client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
    for name in ("poll_delay", "errors_in_a_row", "not_found", "follow_deadline", "posting", "expected_s"):
        assert not hasattr(run, name)
