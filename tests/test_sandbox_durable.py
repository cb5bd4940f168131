"""The durable sandbox: jobs and uploads kept in a folder, shared by every sandbox using it.

Over real loopback HTTP like ``test_sandbox.py`` (its ``Api`` helper), except the replay test, which
drives two states on one file with hand-set clocks to reach an interleaving that real time only hits by
luck. Timelines are compared through the jobs' own ``statusHistory`` dates, never wall time around polls.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import rodin_nb as rn
from rodin_nb.sandbox import serve
from rodin_nb.sandbox.faults import FaultConfig, FaultInjector
from rodin_nb.sandbox.persist import FILE_NAME, StateFile
from rodin_nb.sandbox.state import SandboxState

from .test_sandbox import Api, history, png_bytes


def job_ids(api: Api, **params: Any) -> list[str]:
    r = api.get("/jobs", params=params)
    assert r.status_code == 200, r.text
    return [j["jobId"] for j in r.json()["jobs"]]


def all_pages(api: Api, page_size: int) -> list[list[str]]:
    pages: list[list[str]] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"pageSize": page_size}
        if token:
            params["paginationToken"] = token
        doc = api.get("/jobs", params=params).json()
        pages.append([j["jobId"] for j in doc["jobs"]])
        token = doc.get("nextPaginationToken")
        if not token:
            return pages


class TestRestart:
    def test_jobs_assets_and_timelines_survive_a_restart(self, tmp_path: Path) -> None:
        """Stopped and restarted on the same folder (another port): everything answers as before."""
        first = serve(job_seconds=1.0, state_dir=tmp_path)
        api = Api(first, auth=None)
        try:
            image = api.upload(png_bytes((10, 120, 200)))
            done = api.wait(api.create(images=[image], seed=5)["jobId"])
            assert done["status"] == "success"
            glb_id = done["metadata"]["assetIds"][0]
            glb = api.download(glb_id)
            running = api.create(prompt="still running", seed=6)
            assert running["status"] == "pending"
        finally:
            api.close()
            first.stop()
        assert (tmp_path / FILE_NAME).is_file()

        # Another job length now: the jobs created before keep the one they were created with.
        with serve(job_seconds=0.2, state_dir=tmp_path) as second:
            again = Api(second, auth=None)
            try:
                assert second.url != first.url
                assert job_ids(again) == [running["jobId"], done["jobId"]]
                assert again.job(done["jobId"]) == done
                assert again.download(glb_id) == glb  # same bytes, made again from the stored request
                assert again.download(image) == png_bytes((10, 120, 200))
                assert again.asset(image)["metadata"]["name"] == "img.png"
                finished = again.wait(running["jobId"])
                h = history(finished)
                assert finished["createdAt"] == running["createdAt"]
                assert h["success"] - h["warming-up"] == pytest.approx(1.0, abs=0.0025)
                assert h["pending"] == history(running)["pending"]
                # The cached upload id still works for a new image-to-3D job.
                assert again.wait(again.create(images=[image], seed=7)["jobId"])["status"] == "success"
                stats = second.stats()
                assert stats["jobs_created"] == 1 and stats["uploads"] == 0
                assert stats["jobs_by_status"] == {"success": 3}
            finally:
                again.close()

    def test_a_job_runs_on_while_no_sandbox_does(self, tmp_path: Path) -> None:
        """Times are wall-clock: a job created before a stop has moved on by the next start."""
        with serve(job_seconds=0.6, state_dir=tmp_path) as first:
            api = Api(first, auth=None)
            created = api.create(prompt="a stool", seed=1)
            api.close()
        time.sleep(0.8)
        with serve(job_seconds=30, state_dir=tmp_path) as second:
            api = Api(second, auth=None)
            job = api.job(created["jobId"])  # the very first request: no time to run it here
            api.close()
        assert job["status"] == "success"
        assert history(job)["success"] < time.time()

    def test_in_memory_by_default(self, tmp_path: Path) -> None:
        """Without state_dir nothing is written and a restart forgets (the previous behaviour)."""
        with serve(job_seconds=0.2) as sb:
            assert sb.state_dir is None and "state in" not in repr(sb)
            api = Api(sb, auth=None)
            job_id = api.create(prompt="a cup")["jobId"]
            api.close()
        with serve(job_seconds=0.2) as sb:
            assert Api(sb, auth=None).get(f"/jobs/{job_id}").status_code == 404
        assert list(tmp_path.iterdir()) == []

    def test_a_newer_file_format_is_refused(self, tmp_path: Path) -> None:
        """A file written by a newer sandbox is not misread: ValueError naming the fix."""
        serve(state_dir=tmp_path).stop()
        with closing(sqlite3.connect(tmp_path / FILE_NAME)) as conn:
            conn.execute("PRAGMA user_version=99")
        with pytest.raises(ValueError, match="newer rodin_nb sandbox"):
            serve(state_dir=tmp_path)


class TestSharedFolder:
    def test_two_live_sandboxes_share_jobs_queue_cancel_and_pages(self, tmp_path: Path) -> None:
        """Jobs made through one are listed, queued, cancelled through the other, with one timeline."""
        with (
            serve(job_seconds=3.0, parallel_jobs=1, state_dir=tmp_path) as sa,
            serve(job_seconds=3.0, parallel_jobs=1, state_dir=tmp_path) as sb,
        ):
            a, b = Api(sa), Api(sb)  # the default KEY: one account on both
            try:
                j1 = a.create(prompt="one")["jobId"]
                j2 = b.create(prompt="two")["jobId"]
                j3 = a.create(prompt="three")["jobId"]
                assert all_pages(b, 2) == all_pages(a, 2) == [[j3, j2], [j1]]
                # One parallel slot for the account, whichever sandbox the jobs came through.
                b.wait_status(j1, {"warming-up", "in-progress"})
                assert a.job(j2)["status"] == b.job(j2)["status"] == "queued"
                r = b.post(f"/jobs/{j1}/action", json={"action": "cancel"})
                assert r.status_code == 200 and r.json()["job"]["status"] == "canceled"
                started = a.wait_status(j2, {"warming-up", "in-progress"})
                assert 0 <= history(started)["warming-up"] - history(a.job(j1))["canceled"] < 0.05
                assert a.job(j1) == b.job(j1)
                assert a.job(j2)["statusHistory"] == b.job(j2)["statusHistory"]
                r = a.post(f"/jobs/{j1}/action", json={"action": "cancel"})
                assert r.status_code == 400 and "already canceled" in r.json()["message"]
                for api, job_id in ((a, j2), (b, j3)):
                    r = api.post(f"/jobs/{job_id}/action", json={"action": "cancel"})
                    assert r.json()["job"]["status"] == "canceled"
                assert job_ids(a, status="canceled") == job_ids(b, status="canceled") == [j3, j2, j1]
                assert sa.stats()["jobs_created"] == 2 and sb.stats()["jobs_created"] == 1
            finally:
                a.close()
                b.close()

    def test_uploads_are_shared_and_results_identical(self, tmp_path: Path) -> None:
        """An upload through one is usable through the other; same request and seed, same GLB bytes."""
        with (
            serve(job_seconds=0.2, state_dir=tmp_path) as sa,
            serve(job_seconds=0.2, state_dir=tmp_path) as sb,
        ):
            a, b = Api(sa, auth=None), Api(sb, auth=None)
            try:
                image = a.upload()
                assert b.asset(image)["metadata"]["name"] == "img.png"
                glb = a.result_glb(images=[image], seed=3)
                assert b.result_glb(images=[image], seed=3) == glb
                assert b.result_glb(images=[image], seed=4) != glb
            finally:
                a.close()
                b.close()
        with serve(job_seconds=0.2) as elsewhere:  # the same bytes as an in-memory sandbox makes
            c = Api(elsewhere, auth=None)
            try:
                assert c.result_glb(images=[c.upload()], seed=3) == glb
            finally:
                c.close()

    def test_the_last_opened_sets_the_parallel_limit(self, tmp_path: Path) -> None:
        """One limit per folder (it is the service's): the sandbox opened last sets it for all."""
        with serve(parallel_jobs=1, state_dir=tmp_path) as sa:
            assert sa.state.parallel_jobs == 1
            with serve(parallel_jobs=3, state_dir=tmp_path) as sb:
                Api(sa, auth=None).get("/jobs")
                assert sa.state.parallel_jobs == sb.state.parallel_jobs == 3


class TestReplay:
    def test_an_event_in_the_simulated_past_is_replayed_from_scratch(self, tmp_path: Path) -> None:
        """A cancel logged at a time another process has already simulated past rewrites its view."""
        clocks = {"a": 1000.0, "b": 1000.0}

        def state(name: str) -> SandboxState:
            return SandboxState(
                speed=1.0,
                job_seconds=10.0,
                parallel_jobs=1,
                faults=FaultInjector(FaultConfig()),
                wall_clock=lambda: clocks[name],
                state_file=StateFile(tmp_path),
            )

        a, b = state("a"), state("b")
        try:
            first = a.create_job("acct", {"prompt": "first", "seed": 1})
            second = b.create_job("acct", {"prompt": "second", "seed": 2})
            clocks["b"] = 1100.0  # b looks late: first has succeeded, second has run
            assert b.status(*b.get_job("acct", first.id)) == "success"
            clocks["a"] = 1005.0  # ...but a had cancelled first at 1005, an event b did not know yet
            a.cancel_job("acct", first.id)
            for s in (a, b):
                clocks["a"] = clocks["b"] = 1100.0
                job, now = s.get_job("acct", first.id)
                assert s.status(job, now) == "canceled" and job.end_t == 1005.0
                job, now = s.get_job("acct", second.id)
                assert job.start_t == 1005.0 and s.status(job, now) == "success"
            assert a.job_json(*a.get_job("acct", second.id)) == b.job_json(*b.get_job("acct", second.id))
        finally:
            a.close()
            b.close()


# ----------------------------------------------------------------- the client

KILLED = textwrap.dedent(
    """
    import os, signal, sys, rodin_nb as rn
    workspace, picture = sys.argv[1], sys.argv[2]
    client = rn.connect(workspace=workspace, sandbox_options={"job_seconds": 3}, quiet=True)
    image = client.generate(images=[picture], seed=1, quality="extra-low")
    text = client.generate(prompt="a carved wooden chair", seed=2, quality="extra-low")
    print(image.run_id, text.run_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


class TestClientOnTheDurableSandbox:
    def test_sigkilled_kernel_then_resume_finishes_both_runs(self, tmp_path: Path) -> None:
        """Kernel killed mid-run; the next one (no credentials) resumes both runs and reuses the upload."""
        picture = tmp_path / "red.png"
        Image.new("RGB", (32, 32), (200, 30, 30)).save(picture)
        workspace = tmp_path / "ws"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SCENARIO_", "RODIN_NB_"))}
        # The rodin_nb under test, whatever the current directory (a relative PYTHONPATH would move).
        env["PYTHONPATH"] = os.pathsep.join([str(Path(rn.__file__).parents[1]), env.get("PYTHONPATH", "")])
        proc = subprocess.run(
            [sys.executable, "-c", KILLED, str(workspace), str(picture)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        image_run, text_run = proc.stdout.split()
        assert (workspace / "sandbox" / FILE_NAME).is_file()
        with rn.connect(workspace=workspace, quiet=True) as client:
            assert client.backend == "sandbox"
            resumed = client.resume()
            assert {run.run_id for run in resumed} == {image_run, text_run}
            for run in resumed:
                run.wait(timeout=60)
                assert run.status == "success" and run.glb is not None
            assert set(client.log.df["status"]) == {"success"}
            other = client.generate(images=[picture], seed=9, tier="Sketch").wait(timeout=60)
            assert other.status == "success"
            stats = client._sandbox_server.stats()  # type: ignore[union-attr]
            assert stats["uploads"] == 0 and stats["jobs_created"] == 1  # the cached upload id was valid
            glb = client.run(text_run).glb
            assert glb is not None
            good = glb.read_bytes()
            glb.unlink()
        with rn.connect(workspace=workspace, quiet=True) as client:
            (again,) = client.resume()  # a deleted result is fetched again from a new sandbox process
            again.wait(timeout=60)
            assert again.run_id == text_run and again.glb is not None and again.glb.read_bytes() == good

    def test_two_kernels_on_one_workspace_follow_each_others_jobs(self, tmp_path: Path) -> None:
        """Kernel B follows a run kernel A started, each with its own embedded sandbox."""
        options = {"sandbox_options": {"job_seconds": 0.5}, "quiet": True, "workspace": tmp_path}
        with rn.connect(**options) as a, rn.connect(**options) as b:  # type: ignore[arg-type]
            assert a.base_url != b.base_url
            run = a.generate(prompt="a lamp", seed=4, quality="extra-low")
            followed = b.run(run.run_id).wait(timeout=60)
            assert followed.status == "success" and followed.job_id == run.job_id
            assert run.wait(timeout=60).status == "success"

    def test_state_dir_none_gives_a_throwaway_sandbox(self, tmp_path: Path) -> None:
        """sandbox_options may override the folder, including None for an in-memory sandbox."""
        with rn.connect(workspace=tmp_path, quiet=True, sandbox_options={"state_dir": None}) as c:
            assert c._sandbox_server is not None and c._sandbox_server.state_dir is None
        assert not (tmp_path / "sandbox").exists()
        with rn.connect(workspace=tmp_path / "w", quiet=True) as c:
            assert c._sandbox_server is not None
            assert c._sandbox_server.state_dir == (tmp_path / "w" / "sandbox").absolute()


def test_the_state_file_never_holds_an_api_key(tmp_path: Path) -> None:
    """A standalone sandbox used with a real-looking key keys its accounts by a digest of it."""
    key, secret = "sk_live_SECRETKEY123", "shh-SECRET-456"
    with serve(state_dir=tmp_path, job_seconds=0.2, credentials=(key, secret)) as sb:
        client = rn.connect(
            api_key=key, api_secret=secret, base_url=sb.url, workspace=tmp_path / "ws", quiet=True
        )
        with client:
            client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
    stored = b"".join(path.read_bytes() for path in tmp_path.rglob("*") if path.is_file())
    assert key.encode() not in stored and secret.encode() not in stored
