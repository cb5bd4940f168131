"""Batch status: runs in flight together are followed with the job list, not one request per job per look."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import rodin_nb as rn
from rodin_nb.batchpoll import since, updated_at, whole
from rodin_nb.sandbox import SandboxServer, serve

from .conftest import make_client

# Looks at least every 0.3 s, so progress is seen while the jobs run.
POLICY = rn.PollPolicy(first_s=0.05, min_s=0.02, max_s=0.3, growth=1.6)
RUNS = 6


def status_requests(sb: SandboxServer) -> tuple[int, int]:
    """(GET /v1/jobs/{jobId}, GET /v1/jobs) counted by the sandbox."""
    requests = sb.stats()["requests"]
    return requests.get("GET /v1/jobs/{jobId}", 0), requests.get("GET /v1/jobs", 0)


def run_together(client: rn.Client, runs: int = RUNS) -> tuple[list[rn.Run], dict[str, list[float]]]:
    """Start ``runs`` runs at once and wait for all; the progress values each one showed."""
    seen: dict[str, list[float]] = {}
    started = []
    for seed in range(runs):
        run = client.generate(prompt="a chair", seed=seed, quality="extra-low")
        seen[run.run_id] = []
        run.on_change(lambda r: seen[r.run_id].append(r.progress))
        started.append(run)
    for run in started:
        run.wait(timeout=60)
    return started, seen


class TestFollowingTogether:
    def test_runs_in_flight_take_far_fewer_status_requests(self, tmp_path: Path) -> None:
        """Six runs at once: the list follows them all; per-job GETs (the list given up) cost far more."""
        counts = {}
        for mode in ("list", "per-job"):
            with (
                serve(job_seconds=2.0, parallel_jobs=RUNS) as sb,
                make_client(sb, tmp_path / mode, poll=POLICY) as client,
            ):
                if mode == "per-job":
                    client.engine.lister.give_up("this test compares with one request per job")
                runs, progress = run_together(client)
                assert all(run.status == "success" and run.glb is not None for run in runs)
                assert all(any(0 < p < 1 for p in values) for values in progress.values()), progress
                counts[mode] = status_requests(sb)
        gets, lists = counts["list"]
        # A job's own GET only for its first answer (before a list reported it) or for a job silent for
        # long on a busy machine (a CI run saw 6 of 6 under load): the list does the rest.
        assert gets <= RUNS and lists >= 1, counts
        assert sum(counts["list"]) * 2 <= sum(counts["per-job"]), counts

    def test_a_brief_list_falls_back_to_each_job_for_results(self, tmp_path: Path) -> None:
        """Items without assetIds or progress only say a job changed: its own GET gives the rest."""
        with (
            serve(job_seconds=1.0, parallel_jobs=RUNS, list_items="brief") as sb,
            make_client(sb, tmp_path, poll=POLICY) as client,
        ):
            runs, _ = run_together(client)
            gets, lists = status_requests(sb)
        assert all(run.status == "success" and run.glb is not None for run in runs)
        assert all(run.asset_ids and run.finished_at is not None for run in runs)
        assert lists >= 1 and gets >= RUNS  # at least each success was read whole, job by job

    def test_an_erroring_list_falls_back_to_each_job(self, sandbox: SandboxServer, tmp_path: Path) -> None:
        """A list that fails (after retries) is rested: the runs are followed one by one and finish."""
        with make_client(sandbox, tmp_path, poll=POLICY) as client:

            def broken(**kwargs: Any) -> Any:
                raise rn.APIError("the list is down", status_code=500)

            client.api.list_jobs_page = broken  # type: ignore[method-assign]
            runs, _ = run_together(client, 4)
            assert all(run.status == "success" and run.glb is not None for run in runs)
            assert status_requests(sandbox)[0] >= 4

    def test_a_silent_list_still_ends_every_run(self, tmp_path: Path) -> None:
        """A list that never reports a change (stale): jobs silent for long are asked about directly."""
        with (
            serve(job_seconds=0.6, parallel_jobs=RUNS) as sb,
            make_client(sb, tmp_path, poll=POLICY) as client,
        ):
            real = client.api.list_jobs_page
            client.api.list_jobs_page = lambda **kwargs: ([], None)  # type: ignore[method-assign]
            runs, _ = run_together(client, 4)
            client.api.list_jobs_page = real  # type: ignore[method-assign]
        assert all(run.status == "success" and run.glb is not None for run in runs)

    def test_a_list_that_never_reports_our_jobs_is_rested_at_once(self, tmp_path: Path) -> None:
        """A complete list that leaves out jobs it must report (another job type, a filter that misses
        ours): each job is followed on its own at once, not after being silent for long."""
        with (
            serve(job_seconds=0.6, parallel_jobs=RUNS) as sb,
            make_client(sb, tmp_path, poll=POLICY) as client,
        ):
            client.api.list_jobs_page = lambda **kwargs: ([], None)  # type: ignore[method-assign]
            runs, _ = run_together(client, 4)
            rest = client.engine.lister.last_rest
        assert all(run.status == "success" and run.glb is not None for run in runs)
        assert rest is not None and "left out" in rest

    def test_a_list_longer_than_its_page_limit_is_rested(self, tmp_path: Path) -> None:
        """A busy account (other jobs fill every page): the cut-short list is rested, runs still end."""
        with (
            serve(job_seconds=0.6, parallel_jobs=RUNS) as sb,
            make_client(sb, tmp_path, poll=POLICY) as client,
        ):
            other = {"jobId": "job_of_another_app", "status": "queued", "updatedAt": "2099-01-01T00:00:00Z"}
            client.api.list_jobs_page = lambda **kwargs: ([other], "more")  # type: ignore[method-assign]
            runs, _ = run_together(client, 4)
            rest = client.engine.lister.last_rest
        assert all(run.status == "success" and run.glb is not None for run in runs)
        assert rest is not None and "page limit" in rest

    def test_a_success_listed_without_its_results_is_confirmed_by_its_own_answer(
        self, tmp_path: Path
    ) -> None:
        """A list item that says success but lists no assets (a lagging list) must not fail the run."""
        with (
            serve(job_seconds=0.6, parallel_jobs=RUNS) as sb,
            make_client(sb, tmp_path, poll=POLICY) as client,
        ):
            real = client.api.list_jobs_page

            def without_results(**kwargs: Any) -> tuple[list[dict[str, Any]], str | None]:
                jobs, token = real(**kwargs)
                for job in jobs:
                    job["metadata"] = {**job.get("metadata", {}), "assetIds": []}
                return jobs, token

            client.api.list_jobs_page = without_results  # type: ignore[method-assign]
            runs, _ = run_together(client, 4)
        assert all(run.status == "success" and run.glb is not None for run in runs)

    def test_a_refused_list_is_given_up(self, sandbox: SandboxServer, tmp_path: Path) -> None:
        """A service that refuses the filtered list (400) is followed job by job for the session."""
        with make_client(sandbox, tmp_path, poll=POLICY) as client:

            def refused(**kwargs: Any) -> Any:
                raise rn.BadRequestError("updatedAfter is not supported", status_code=400)

            client.api.list_jobs_page = refused  # type: ignore[method-assign]
            runs, _ = run_together(client, 3)
            assert all(run.status == "success" for run in runs)
            assert client.engine.lister.given_up is not None

    def test_jobs_the_service_forgot_are_lost(self, tmp_path: Path) -> None:
        """Several resumed runs whose jobs a new service never knew: the list cannot vouch for them,
        their own 404s (three in a row) end them lost, and nothing is submitted again."""
        with serve(job_seconds=5) as first, make_client(first, tmp_path) as client:
            for seed in range(3):
                client.generate(prompt="a chair", seed=seed, quality="extra-low")
        with serve(job_seconds=0.2) as second, make_client(second, tmp_path, poll=POLICY) as client:
            resumed = client.resume()
            assert len(resumed) == 3
            for run in resumed:
                with pytest.raises(rn.JobFailed, match="no longer knows"):
                    run.wait(timeout=30)
            assert {run.status for run in resumed} == {"lost"}
            assert second.stats()["jobs_created"] == 0


class TestWhole:
    def test_whole_and_abbreviated_items(self) -> None:
        """A whole item has progress, statusHistory and metadata.assetIds; anything less is a signal."""
        item = {
            "jobId": "j",
            "status": "success",
            "progress": 1,
            "statusHistory": [],
            "metadata": {"assetIds": []},
        }
        assert whole({**item, "metadata": {"assetIds": ["asset_1"]}})
        assert whole({**item, "status": "in-progress"})  # no results yet: nothing missing
        assert not whole(item)  # a success without its results: the job's own answer has them
        assert not whole({**item, "metadata": {"input": {}}})
        assert not whole({k: v for k, v in item.items() if k != "progress"})


class TestUpdatedAt:
    def test_a_date_without_an_offset_is_utc_not_local_time(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import time
        from datetime import datetime, timezone

        monkeypatch.setenv("TZ", "America/New_York")
        time.tzset()
        try:
            got = updated_at({"updatedAt": "2025-06-02T10:15:03.120"})
        finally:
            monkeypatch.undo()
            time.tzset()
        assert got == datetime(2025, 6, 2, 10, 15, 3, 120000, tzinfo=timezone.utc)


class TestSince:
    def test_since_reaches_back_past_the_oldest_known_moment(self) -> None:
        """The next look starts before the moment up to which the least known job is known."""
        from datetime import datetime, timezone

        a = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
        b = datetime(2026, 1, 1, 12, 5, 0, tzinfo=timezone.utc)
        start = since([b, a])
        assert start is not None and start < a
        assert since([]) is None
