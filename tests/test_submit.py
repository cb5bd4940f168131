"""The submission protocol (rodin_nb.submit): every job created once, every outcome settled and logged."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

import rodin_nb as rn
from rodin_nb.sandbox import serve
from rodin_nb.submit import TRANSITIONS, IllegalTransition, Submission

from .conftest import make_client


class TestStateTable:
    def test_every_state_is_reachable_from_submitting(self) -> None:
        """The table has no dead entries: each state can be reached from the claim."""
        seen, frontier = {"submitting"}, ["submitting"]
        while frontier:
            for nxt in TRANSITIONS[frontier.pop()]:  # type: ignore[index]
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen == set(TRANSITIONS)

    def test_an_illegal_step_raises(self, client: rn.Client) -> None:
        """Created is final: a submission can never go back to submitting (that would pay twice)."""
        run = rn.Run(client, client.request(prompt="a chair", seed=1))
        submission = Submission(run)
        submission.advance("created")
        with pytest.raises(IllegalTransition, match="'created' to 'submitting'"):
            submission.advance("submitting")
        assert submission.history == ["submitting", "created"]


class TestAnsweredServerErrors:
    """Hole 1: a create call the service answered with 5xx, and no job exists: settled, not stranded."""

    def test_settled_failure_ends_not_submitted_and_asking_again_submits_afresh(self, tmp_path: Path) -> None:
        workspace = tmp_path / "ws"
        with serve(job_seconds=0.3, faults={"create_error_rate": 1.0}) as sb:
            with make_client(sb, workspace) as client:
                with pytest.raises(rn.ServerError, match="nothing was billed"):
                    client.generate(prompt="a chair", tier="Sketch", seed=1)
                (row,) = client.log.rows()
                assert row["status"] == "not-submitted"
                assert "after 3 attempts" in row["error"] and "nothing was billed" in row["hint"]
                # Asking again is a new attempt, recorded; never the stranded run of before.
                with pytest.raises(rn.ServerError):
                    client.generate(prompt="a chair", tier="Sketch", seed=1)
                assert [r["status"] for r in client.log.rows()] == ["not-submitted"] * 2
            assert sb.stats()["jobs_created"] == 0
            assert sb.stats()["requests"]["POST /v1/generate/custom/{modelId}"] == 6
        with serve(job_seconds=0.3) as sb, make_client(sb, workspace) as client:  # the service is back
            run = client.generate(prompt="a chair", tier="Sketch", seed=1)
            assert run.wait(timeout=30).status == "success"
            assert sb.stats()["jobs_created"] == 1

    def test_the_issue_reproduction_never_strands_a_run(self, tmp_path: Path) -> None:
        """error_rate 0.5, seed 8 (every route): each run settles, jobs created = runs that have one."""
        with (
            serve(job_seconds=0.5, faults={"error_rate": 0.5, "seed": 8}) as sb,
            make_client(sb, tmp_path) as client,
        ):
            client.schema  # noqa: B018
            for seed in (1, 2, 3):
                with contextlib.suppress(rn.RodinError):
                    client.generate(prompt="a chair", tier="Sketch", seed=seed).wait(timeout=60)
            rows = client.log.rows()
            assert all(row["status"] in ("success", "not-submitted", "lost") for row in rows)
            assert sb.stats()["jobs_created"] == sum(1 for row in rows if row["job_id"])

    def test_a_sweep_goes_on_past_not_submitted_runs(self, tmp_path: Path) -> None:
        faults = {"create_error_rate": 0.7, "seed": 4}
        with serve(job_seconds=0.2, faults=faults) as sb, make_client(sb, tmp_path) as client:
            sweep = client.sweep(prompt="a chair", seed=list(range(8)), quality="extra-low")
            frame = sweep.run(progress=False)  # does not raise: the end table reports each run
            statuses = list(frame["status"])
            assert len(statuses) == 8 and set(statuses) == {"success", "not-submitted"}
            assert sb.stats()["jobs_created"] == statuses.count("success")
            assert "not-submitted" in sweep.table()
            assert all(row["status"] != "submitting" for row in client.log.rows())

    def test_not_submitted_runs_free_their_slot(self, tmp_path: Path) -> None:
        """With one slot, runs that were never created must not hold it: the sweep reaches its end."""
        with (
            serve(job_seconds=0.2, faults={"create_error_rate": 1.0}) as sb,
            make_client(sb, tmp_path) as client,
        ):
            sweep = client.sweep(prompt="a chair", seed=[1, 2, 3], quality="extra-low", concurrency=1)
            sweep.start().wait(timeout=60)
            assert [run.status for run in sweep.runs] == ["not-submitted"] * 3
            assert sb.stats()["jobs_created"] == 0


class TestExitWhileDownloading:
    """Hole 2: a script that ends while results download never leaves success without files."""

    SCRIPT = textwrap.dedent(
        """
        import sys, time
        import rodin_nb as rn
        client = rn.connect(workspace=sys.argv[1], quiet=True,
                            sandbox_options={"speed": 200, "faults": {"latency_s": 0.2}})
        runs = [client.generate(prompt="a chair", tier="Sketch", seed=s) for s in range(3)]
        while not any(run.status in ("downloading", "success") for run in runs):
            time.sleep(0.005)
        # exit now, with downloads under way and no wait()
        """
    )

    def test_no_traceback_and_no_success_without_files(self, tmp_path: Path) -> None:
        workspace = tmp_path / "ws"
        done = subprocess.run(
            [sys.executable, "-c", self.SCRIPT, str(workspace)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        with rn.RunLog(workspace) as log:
            rows = log.rows()
        assert len(rows) == 3
        for row in rows:
            if row["status"] == "success":
                assert row["files"] and row["error"] is None
                assert all((workspace / name).is_file() for name in row["files"])
            else:
                assert row["status"] in (
                    "pending",
                    "queued",
                    "warming-up",
                    "in-progress",
                    "finalizing",
                    "downloading",
                )
        with rn.connect(workspace=workspace, quiet=True, sandbox_options={"speed": 200}) as client:
            for run in client.resume():
                run.wait(timeout=60)
        with rn.RunLog(workspace) as log:
            rows = log.rows()
        assert [row["status"] for row in rows] == ["success"] * 3
        assert all(row["files"] and row["error"] is None for row in rows)

    def test_a_later_download_clears_a_stale_error(self, client: rn.Client) -> None:
        run = client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
        run._download_failed("HTTP 500: Internal sandbox error")  # as a failed first attempt leaves it
        assert run.status == "downloading"
        assert client.log.get(run.run_id)["error"] == "HTTP 500: Internal sandbox error"
        client.download(run)
        run.wait(timeout=30)
        row = client.log.get(run.run_id)
        assert row["status"] == "success" and row["error"] is None and row["files"]


class TestAmbiguousFailures:
    """No answer after the request was sent: the job is found, never created again."""

    def test_a_late_answer_is_reattached_not_reposted(self, tmp_path: Path) -> None:
        """The job is created but the answer comes after the read timeout: found in the list."""
        with (
            serve(job_seconds=0.3, faults={"slow_create_s": 0.6}) as sb,
            make_client(sb, tmp_path, timeout=(2.0, 0.3)) as client,
        ):
            run = client.generate(prompt="a chair", seed=1, quality="extra-low")
            assert run.wait(timeout=30).status == "success" and run.reattached
            assert sb.stats()["jobs_created"] == 1
            assert sb.stats()["requests"]["POST /v1/generate/custom/{modelId}"] == 1

    def test_reconciliation_never_takes_a_job_another_run_owns(self, sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        with make_client(sandbox, tmp_path) as first, make_client(sandbox, tmp_path) as second:
            owned = first.generate(prompt="a chair", seed=1, quality="extra-low", reuse=False).wait(
                timeout=30
            )
            req = second.request(prompt="a chair", seed=1, quality="extra-low")
            job, complete = second.submitter.find_job(req.to_body(), since=owned.submitted_at)
            assert job is None and complete  # the only matching job is recorded for another run

    def test_an_upload_timeout_is_not_ambiguous(self, tmp_path: Path) -> None:
        """An upload cannot create a job: its failure ends the run not-submitted, nothing billed."""
        picture = tmp_path / "ref.png"
        Image.new("RGB", (8, 8), "red").save(picture)
        retry = rn.RetryPolicy(max_retries=1, backoff_base_s=0.01, backoff_cap_s=0.02)
        with (
            serve(job_seconds=0.3, faults={"latency_s": 0.4}) as sb,
            make_client(sb, tmp_path, timeout=(2.0, 0.1), retry=retry) as client,
        ):
            client._schema = rn.ModelSchema.snapshot()  # the live schema would time out too
            with pytest.raises(rn.APITimeoutError):
                client.generate(images=[picture], seed=1, quality="extra-low")
            (row,) = client.log.rows()
            assert row["status"] == "not-submitted" and "nothing was billed" in row["hint"]
            assert sb.stats()["jobs_created"] == 0
