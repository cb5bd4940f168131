"""Run handles: statuses, timeouts that leave jobs running, cancel, re-attach, failure details."""

from __future__ import annotations

from pathlib import Path

import pytest

import rodin_nb as rn
from rodin_nb.sandbox import serve
from rodin_nb.timing import PollPolicy

from .conftest import make_client


class TestLifecycle:
    def test_status_walks_the_documented_sequence(self, tmp_path: Path) -> None:
        with serve(job_seconds=0.8) as sb, make_client(sb, tmp_path) as client:
            run = client.generate(prompt="chair", seed=1, quality="extra-low")
            seen: list[str] = []
            run.on_change(lambda r: seen.append(r.status))
            run.wait(timeout=30)
        assert seen[-1] == "success"
        assert "in-progress" in seen
        # The service's success is "downloading" until the files are on disk: success means files.
        order = ["pending", "queued", "warming-up", "in-progress", "finalizing", "downloading", "success"]
        positions = [order.index(status) for status in seen]
        assert positions == sorted(positions)

    def test_timeout_leaves_the_job_running(self, tmp_path: Path) -> None:
        with serve(job_seconds=1.0) as sb, make_client(sb, tmp_path) as client:
            run = client.generate(prompt="chair", seed=2, quality="extra-low")
            with pytest.raises(rn.JobTimeout) as info:
                run.wait(timeout=0.05)
            assert isinstance(info.value, TimeoutError) and info.value.job_id == run.job_id
            assert run.wait(timeout=30).status == "success"

    def test_a_new_client_reattaches_by_job_id(self, tmp_path: Path) -> None:
        with serve(job_seconds=1.0) as sb:
            first = make_client(sb, tmp_path / "a")
            running = first.generate(prompt="chair", seed=3, quality="extra-low")
            first.close()  # the kernel "dies"; the job keeps running on the service
            with make_client(sb, tmp_path / "b") as second:
                again = second.attach(str(running.job_id))
                assert again.reattached and again.seed == 3
                assert again.wait(timeout=30).glb is not None
            assert sb.stats()["jobs_created"] == 1

    def test_failure_carries_error_and_hint(self, tmp_path: Path) -> None:
        with serve(job_seconds=0.3, faults={"fail_rate": 1.0}) as sb, make_client(sb, tmp_path) as client:
            run = client.generate(prompt="chair", seed=1, quality="extra-low")
            with pytest.raises(rn.JobFailed) as info:
                run.wait(timeout=30)
        assert info.value.error and info.value.hint
        assert run.status == "failure" and run.error == info.value.error

    def test_cancel(self, tmp_path: Path) -> None:
        with serve(job_seconds=5) as sb, make_client(sb, tmp_path) as client:
            run = client.generate(prompt="chair", seed=1, quality="extra-low")
            assert run.cancel() is True
            with pytest.raises(rn.JobCanceled):
                run.wait(timeout=5)
            assert run.status == "canceled"

    def test_parallel_limit_queues_and_all_finish(self, tmp_path: Path) -> None:
        with serve(job_seconds=0.4, parallel_jobs=2) as sb, make_client(sb, tmp_path) as client:
            runs = [client.generate(prompt="chair", seed=s, quality="extra-low") for s in range(5)]
            for run in runs:
                run.wait(timeout=30)
            assert sb.stats()["jobs_created"] == 5
        assert all(run.status == "success" for run in runs)
        queued = [run.queue_s or 0 for run in runs]
        assert max(queued) >= 0.3  # the later ones waited for a slot


class TestPollPolicy:
    def test_waiting_backs_off_and_a_known_finish_is_hit_just_after(self) -> None:
        policy = PollPolicy(first_s=1, min_s=0.5, max_s=10, growth=2)
        assert policy.next_delay(1, None) == 2  # nothing to go on: back off
        assert policy.next_delay(8, None) == 10  # ...up to the cap
        assert policy.next_delay(4, 6.0) == 6.5  # expected finish in 6 s: look just after it
        assert policy.next_delay(4, 30.0) == 10  # never longer than the cap
        assert policy.next_delay(0.5, -1.0, base=3.0) == 6.0  # overdue: back off from a share of the phase

    def test_polls_per_run_stay_low(self, tmp_path: Path) -> None:
        with serve(job_seconds=1.0) as sb, make_client(sb, tmp_path) as client:
            client.generate(prompt="chair", seed=1, quality="extra-low").wait(timeout=30)
            polls = sb.stats()["requests"]["GET /v1/jobs/{jobId}"]
        assert polls <= 20
