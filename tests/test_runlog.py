"""The run log: durable, comparable, resumable, reproducible, never paid twice (over the sandbox)."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

import rodin_nb as rn
from rodin_nb import columns
from rodin_nb import store as store_module
from rodin_nb.logframe import upsert_frame
from rodin_nb.meshstats import MESH_STAT_KEYS, mesh_stats
from rodin_nb.runlog import SCHEMA_VERSION, RunLog
from rodin_nb.sandbox import SandboxServer, serve
from rodin_nb.schema import ModelSchema

from .conftest import FIXTURES, make_client

DATA = Path(__file__).parent / "data"


def wait_all(runs: list[rn.Run]) -> None:
    for run in runs:
        run.wait(timeout=60)


class TestRows:
    def test_row_exists_before_generate_returns_and_follows_the_run(self, client: rn.Client) -> None:
        seen_statuses: list[str] = []
        run = client.generate(prompt="a carved wooden chair", tier="Sketch", seed=7)
        seen_statuses.append(client.log.get(run.run_id)["status"])
        run.wait(timeout=30)
        row = client.log.get(run.run_id)
        assert seen_statuses[0] != "success" or run.done
        assert row["status"] == "success" and row["job_id"] == run.job_id
        assert row["params"]["seed"] == 7 and row["params"]["quality"] == "medium"
        assert row["files"][0].endswith(".glb") and not row["files"][0].startswith("/")
        assert row["sha256"][0] == run.stored[0].sha256
        assert row["faces"] == run.mesh_stats["faces"] > 1000 and row["vertices"] > 0
        assert row["cost"] == run.cost and row["duration_s"] > 0 and row["rodin_nb_version"] == rn.__version__

    def test_no_urls_or_secrets_in_the_log(self, tmp_path: Path) -> None:
        with (
            serve(job_seconds=0.2, credentials=("key_abc", "secret_xyz_987")) as sb,
            rn.connect("key_abc", "secret_xyz_987", base_url=sb.url, workspace=tmp_path, quiet=True) as c,
        ):
            c.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
            c.log.close()
        with closing(sqlite3.connect(tmp_path / "runs.sqlite")) as conn:
            dump = "\n".join(conn.iterdump())
        assert "secret_xyz_987" not in dump and "signature=" not in dump and "http" not in dump

    def test_dataframe_has_wire_columns_and_proper_dtypes(self, client: rn.Client) -> None:
        # Sketch always runs at medium quality; asking for another one would (rightly) warn.
        runs = [
            client.generate(prompt="a chair", seed=s, tier=t, **({} if t == "Sketch" else {"quality": "low"}))
            for s in (1, 2)
            for t in ("Sketch", "Regular")
        ]
        wait_all(runs)
        df = client.log.df
        assert len(df) == 4
        for column in (
            "run_id",
            "sweep_id",
            "backend",
            "model_id",
            "prompt",
            "images",
            "conditionMode",
            "material",
            "quality",
            "useHyper",
            "tier",
            "TAPose",
            "seed",
            "status",
            "progress",
            "job_id",
            "cost",
            "submitted_at",
            "started_at",
            "finished_at",
            "queue_s",
            "duration_s",
            "asset_ids",
            "files",
            "sha256",
            "faces",
            "vertices",
            "error",
            "hint",
            "params_hash",
            "rodin_nb_version",
        ):
            assert column in df.columns, column
        assert str(df["submitted_at"].dtype) == "datetime64[ns, UTC]" or "UTC" in str(
            df["submitted_at"].dtype
        )
        assert isinstance(df["tier"].dtype, pd.CategoricalDtype)
        assert isinstance(df["quality"].dtype, pd.CategoricalDtype)
        assert str(df["seed"].dtype) == "Int64"
        pivot = df.pivot_table(index="seed", columns="tier", values="duration_s", observed=True)
        assert pivot.shape == (2, 2) and pivot.notna().all().all()

    def test_standalone_runlog_reads_without_a_client(self, client: rn.Client) -> None:
        client.generate(prompt="a chair", seed=3, quality="extra-low").wait(timeout=30)
        with rn.RunLog(client.workspace) as log:
            assert len(log.df) == 1 and log.df.iloc[0]["status"] == "success"
            with pytest.raises(rn.ConfigError, match=r"client\.log\.rerun"):
                log.rerun(log.df.iloc[0]["run_id"])
            assert "success" in log._repr_html_() and "<img" in log._repr_html_()


class TestNoDoubleSpend:
    def test_identical_request_is_answered_from_the_log(
        self, client: rn.Client, sandbox: SandboxServer
    ) -> None:
        a = client.generate(prompt="a teapot", seed=5, quality="low").wait(timeout=30)
        b = client.generate(prompt="a teapot", seed=5, quality="low")
        assert b is a and sandbox.stats()["jobs_created"] == 1
        c = client.generate(prompt="a teapot", seed=5, quality="low", reuse=False).wait(timeout=30)
        assert c.run_id != a.run_id and sandbox.stats()["jobs_created"] == 2
        df = client.log.df
        assert df.loc[c.run_id, "reuse"] == False  # noqa: E712 (pandas boolean)
        assert df.loc[a.run_id, "params_hash"] == df.loc[c.run_id, "params_hash"]

    def test_sketch_quality_the_service_ignores_is_not_paid_twice(
        self, client: rn.Client, sandbox: SandboxServer
    ) -> None:
        first = client.generate(prompt="a chair", tier="Sketch", seed=3).wait(timeout=30)
        with pytest.warns(rn.RodinWarning, match="forces quality='medium'"):
            again = client.log.rerun(first.run_id, quality="low")
        assert again.run_id == first.run_id and sandbox.stats()["jobs_created"] == 1
        assert client.log.get(first.run_id)["params"]["quality"] == "medium"

    def test_twin_requests_in_one_process_share_one_run(self, tmp_path: Path) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with serve(job_seconds=0.3, faults={"slow_create_s": 0.5}) as sb, make_client(sb, tmp_path) as client:
            with ThreadPoolExecutor(4) as pool:
                runs = list(pool.map(lambda _: client.generate(prompt="a chair", seed=1), range(4)))
            assert all(run is runs[0] for run in runs)  # one object, following one job
            assert runs[0].wait(timeout=30).status == "success" and sb.stats()["jobs_created"] == 1

    def test_running_request_is_not_submitted_twice(self, tmp_path: Path) -> None:
        with serve(job_seconds=1.0) as sb, make_client(sb, tmp_path) as client:
            a = client.generate(prompt="a vase", seed=1, quality="extra-low")
            b = client.generate(prompt="a vase", seed=1, quality="extra-low")
            assert a is b
            a.wait(timeout=30)
            assert sb.stats()["jobs_created"] == 1

    def test_a_new_client_reuses_a_finished_result(self, sandbox: SandboxServer, tmp_path: Path) -> None:
        with make_client(sandbox, tmp_path) as first:
            done = first.generate(prompt="a bowl", seed=2, quality="extra-low").wait(timeout=30)
        with make_client(sandbox, tmp_path) as second:
            again = second.generate(prompt="a bowl", seed=2, quality="extra-low")
            assert again.run_id == done.run_id and again.done and again.glb == done.glb
        assert sandbox.stats()["jobs_created"] == 1

    def test_failed_runs_are_not_reused(self, tmp_path: Path) -> None:
        with serve(job_seconds=0.2, faults={"fail_rate": 1.0}) as sb, make_client(sb, tmp_path) as client:
            with pytest.raises(rn.JobFailed):
                client.generate(prompt="a cup", seed=1, quality="extra-low").wait(timeout=30)
            with pytest.raises(rn.JobFailed):
                client.generate(prompt="a cup", seed=1, quality="extra-low").wait(timeout=30)
            assert sb.stats()["jobs_created"] == 2

    def test_refused_submission_is_logged_as_not_billed(self, client: rn.Client) -> None:
        # Well-formed for the validator, refused by the service: the asset does not exist.
        with pytest.raises(rn.BadRequestError):
            client.generate(images=["asset_doesnotexist"], seed=1)
        (row,) = client.log.rows()
        assert (
            row["status"] == "not-submitted" and "not submitted" in row["error"] and "billed" in row["hint"]
        )
        # A refused request is not "paid for": asking again really asks again.
        with pytest.raises(rn.BadRequestError):
            client.generate(images=["asset_doesnotexist"], seed=1)
        assert len(client.log.rows()) == 2


SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, rodin_nb as rn
    url, workspace, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    client = rn.connect(base_url=url, workspace=workspace, quiet=True,
                        retry=rn.RetryPolicy(max_retries=6, backoff_base_s=0.02, backoff_cap_s=0.2))
    if mode == "kill":
        for seed in (1, 2, 3, 1):   # three distinct requests, one repeated
            client.generate(prompt="a chair", seed=seed, quality="extra-low")
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "same":
        run = client.generate(prompt="a lamp", seed=9, quality="extra-low")
        run.wait(timeout=60)
        print(run.run_id, run.job_id, flush=True)
    """
)


def python(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


class TestResume:
    def test_sigkill_after_submitting_then_resume(self, tmp_path: Path) -> None:
        with serve(job_seconds=1.0) as sb:
            proc = python(sb.url, str(tmp_path), "kill")
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == -signal.SIGKILL, err
            with RunLog(tmp_path) as log:
                rows = log.rows()
            assert len(rows) == 3 and all(row["job_id"] for row in rows)
            assert all(row["status"] not in ("success",) for row in rows)
            with make_client(sb, tmp_path) as client:
                resumed = client.resume()
                assert len(resumed) == 3
                wait_all(resumed)
                assert all(run.glb is not None for run in resumed)
                assert set(client.log.df["status"]) == {"success"}
            assert sb.stats()["jobs_created"] == 3

    def test_two_processes_same_request_one_job(self, tmp_path: Path) -> None:
        with serve(job_seconds=0.8) as sb:
            procs = [python(sb.url, str(tmp_path), "same") for _ in range(2)]
            outs = [proc.communicate(timeout=90) for proc in procs]
            assert all(proc.returncode == 0 for proc in procs), [err for _, err in outs]
            assert sb.stats()["jobs_created"] == 1
        lines = {out.strip() for out, _ in outs}
        assert len(lines) == 1  # both saw the same run and job

    def test_job_the_service_forgot_is_marked_lost_not_resubmitted(self, tmp_path: Path) -> None:
        with serve(job_seconds=5) as first, make_client(first, tmp_path) as client:
            run = client.generate(prompt="a chair", seed=1, quality="extra-low")
        with serve(job_seconds=0.2) as second, make_client(second, tmp_path) as client:
            (again,) = client.resume()
            with pytest.raises(rn.JobFailed, match="no longer knows"):
                again.wait(timeout=30)
            assert again.run_id == run.run_id and again.status == "lost"
            assert client.log.get(run.run_id)["status"] == "lost"
            assert second.stats()["jobs_created"] == 0

    def test_interrupted_submission_reattaches_or_is_not_submitted(
        self, sandbox: SandboxServer, tmp_path: Path
    ) -> None:
        with make_client(sandbox, tmp_path) as client:
            req = client.request(prompt="a stool", seed=4, quality="extra-low")
            created = client.api.generate(client.model_id, req.to_body())  # the POST went through...
            orphan = rn.Run(client, req)
            client.log.claim(
                client.submitter._new_row(orphan) | {"owner": f"{socket.gethostname()}:999998:dead"},
                reuse=True,
            )
            never = rn.Run(client, client.request(prompt="a stool", seed=5, quality="extra-low"))
            client.log.claim(
                client.submitter._new_row(never) | {"owner": f"{socket.gethostname()}:999999:dead"},
                reuse=True,
            )
        with make_client(sandbox, tmp_path) as client:
            client.engine  # noqa: B018
            runs = {run.run_id: run for run in client.resume()}
            found, missing = runs[orphan.run_id], runs[never.run_id]
            found.wait(timeout=120)
            assert found.job_id == created["job"]["jobId"]
            with pytest.raises(rn.JobFailed, match="interrupted"):
                missing.wait(timeout=30)
            assert missing.status == "not-submitted"  # no such job: nothing was created or billed
        assert sandbox.stats()["jobs_created"] == 1

    def test_a_stale_interrupted_row_is_never_settled_over_the_job_resume_found(
        self, sandbox: SandboxServer, tmp_path: Path
    ) -> None:
        """resume() finds a dead submitter's job while a reopening sweep holds the row as read before.

        Found by tests/test_crash_resume.py: settling that stale row marked it not-submitted over its
        job, and the sweep paid for the request again.
        """
        with make_client(sandbox, tmp_path) as client:
            req = client.request(prompt="a stool", seed=4, quality="extra-low")
            created = client.api.generate(client.model_id, req.to_body())  # the POST went through...
            orphan = rn.Run(client, req)  # ...and its process died before recording the job
            client.log.claim(
                client.submitter._new_row(orphan) | {"owner": f"{socket.gethostname()}:999998:dead"},
                reuse=True,
            )
        with make_client(sandbox, tmp_path) as client:
            stale = client.log.get(orphan.run_id)  # what Sweep.reopen read: submitting, no job
            (found,) = client.resume()
            found.wait(timeout=30)  # resume's search recorded the job meanwhile
            row = client.submitter.settle_interrupted(stale)
            assert row is not None and row["job_id"] == created["job"]["jobId"]
            assert client.log.get(orphan.run_id)["status"] == "success"
        assert sandbox.stats()["jobs_created"] == 1

    def test_a_run_without_a_job_never_erases_a_recorded_one(self, client: rn.Client) -> None:
        """A row's job id stays once recorded: a process that knows no job cannot overwrite it."""
        run = rn.Run(client, client.request(prompt="a stool", seed=4, quality="extra-low"))
        client.log.claim(client.submitter._new_row(run), reuse=True)
        client.log.update(run.run_id, job_id="job_found_elsewhere", status="pending")
        run._end("not-submitted", "interrupted", None, None)
        client.log.record(run)  # e.g. a background search that ended just after another found the job
        row = client.log.get(run.run_id)
        assert row["job_id"] == "job_found_elsewhere" and row["status"] == "pending"

    @pytest.mark.parametrize("damage", ["truncated", "same_size_edit", "deleted", "index_garbage"])
    def test_missing_or_corrupt_file_is_fetched_again(
        self, client: rn.Client, sandbox: SandboxServer, damage: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Files are trusted by their stat signature once verified; trust them at once here (not after
        # the usual settling time) so the damage below must be noticed through a changed signature.
        monkeypatch.setattr(store_module, "SETTLE_NS", 0)
        run = client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
        assert run.glb is not None
        good = run.glb.read_bytes()
        assert client.resume() == []  # intact: nothing to do (and now known to be intact)
        time.sleep(0.05)  # past the file system's clock tick, so the damage changes mtime/ctime
        if damage == "truncated":
            run.glb.write_bytes(good[: len(good) // 2])
        elif damage == "same_size_edit":  # one byte flipped in place: same size, same inode
            with run.glb.open("r+b") as handle:
                handle.seek(len(good) - 1)
                handle.write(bytes([good[-1] ^ 0xFF]))
        elif damage == "deleted":
            run.glb.unlink()
        else:  # the verified-file index itself is garbage: it is only a cache, so files are hashed
            client.close()
            (client.workspace / "assets" / "verified.sqlite").write_bytes(b"not a database" * 100)
            run.glb.write_bytes(good[:100])
        with make_client(sandbox, client.workspace) as other:
            (again,) = other.resume()
            again.wait(timeout=30)
            assert again.glb is not None and again.glb.read_bytes() == good
        assert sandbox.stats()["jobs_created"] == 1

    def test_run_by_id(self, client: rn.Client, sandbox: SandboxServer) -> None:
        run = client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
        with make_client(sandbox, client.workspace) as other:
            again = other.run(run.run_id).wait(timeout=30)
            assert again.glb == run.glb and again.mesh_stats == run.mesh_stats


class TestAnalysis:
    def test_diff_shows_only_what_differs(self, client: rn.Client) -> None:
        a = client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
        b = client.generate(prompt="a chair", seed=2, quality="low").wait(timeout=30)
        diff = client.log.diff(a, b)
        assert {"seed", "quality", "faces"} <= set(diff.index)
        assert "prompt" not in diff.index and "tier" not in diff.index
        assert list(diff.columns) == [a.run_id, b.run_id]

    def test_rerun_changes_one_thing(self, client: rn.Client, sandbox: SandboxServer) -> None:
        a = client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
        b = client.log.rerun(a.run_id, quality="low").wait(timeout=30)
        assert b.seed == 1 and b.params["quality"] == "low" and b.params["prompt"] == "a chair"
        assert sandbox.stats()["jobs_created"] == 2

    @pytest.mark.parametrize("suffix", [".parquet", ".csv", ".json"])
    def test_export(self, client: rn.Client, tmp_path: Path, suffix: str) -> None:
        client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
        path = client.log.export(tmp_path / f"runs{suffix}")
        back = {".parquet": pd.read_parquet, ".csv": pd.read_csv, ".json": pd.read_json}[suffix](path)
        assert len(back) == 1 and back["seed"].iloc[0] == 1

    def test_csv_export_reads_back_as_json_lists(self, client: rn.Client, tmp_path: Path) -> None:
        run = client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
        back = pd.read_csv(client.log.export(tmp_path / "runs.csv"))
        assert json.loads(back.loc[0, "files"]) == client.log.get(run.run_id)["files"]

    def test_analysis_of_a_missing_workspace_is_an_error_not_a_new_log(self, tmp_path: Path) -> None:
        with pytest.raises(rn.ConfigError, match="no run log"):
            rn.RunLog(tmp_path / "typo")
        assert not (tmp_path / "typo").exists()

    def test_export_refuses_unknown_formats(self, client: rn.Client, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="parquet"):
            client.log.export(tmp_path / "runs.xlsx")

    def test_run_html(self, client: rn.Client) -> None:
        from rodin_nb.reprs import run_html

        run = client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
        text = run_html(run)
        assert "success" in text and "faces" in text and "<img" in text


class TestColumns:
    def test_column_lists_name_exactly_the_tables_columns(self, tmp_path: Path) -> None:
        with RunLog(tmp_path, create=True) as log:
            assert log.df.empty  # opening the frame creates the table
        with closing(sqlite3.connect(log.path)) as conn:
            table = [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
        shown = [*columns.FRAME_LEADING, *columns.FRAME_TRAILING, *columns.NOT_IN_FRAME]
        assert sorted(shown) == sorted(table)
        assert set(columns.JSON_COLUMNS) | set(columns.TIME_COLUMNS) | set(MESH_STAT_KEYS) <= set(table)

    def test_dataframe_columns_in_order(self, tmp_path: Path) -> None:
        with RunLog(tmp_path, create=True) as log:
            df = log.df
        names = ModelSchema.snapshot().names
        assert list(df.columns) == [*columns.FRAME_LEADING, *names, *columns.FRAME_TRAILING]

    def test_mesh_stats_are_the_logged_keys(self) -> None:
        assert tuple(mesh_stats(FIXTURES / "BoxTextured.glb")) == MESH_STAT_KEYS


class TestMigration:
    def test_a_log_written_by_version_1_opens(self, tmp_path: Path) -> None:
        shutil.copy(DATA / "runlog_v1.sqlite", tmp_path / "runs.sqlite")
        with RunLog(tmp_path) as log:
            df = log.df
        assert len(df) >= 1 and set(df["status"]) <= {"success", "failure", "lost", "queued"}
        with closing(sqlite3.connect(tmp_path / "runs.sqlite")) as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        assert version == SCHEMA_VERSION

    def test_a_newer_log_is_refused_clearly(self, tmp_path: Path) -> None:
        conn = sqlite3.connect(tmp_path / "runs.sqlite")
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
        conn.close()
        with pytest.raises(rn.ConfigError, match="newer rodin_nb"):
            RunLog(tmp_path).count()


class TestConnections:
    """Every SQLite connection the log, the asset index and the sandbox open is closed (Python 3.13 warns
    about connections left to the garbage collector; a long session would leak file handles)."""

    def test_a_closed_log_never_reopens(self, tmp_path: Path) -> None:
        log = RunLog(tmp_path, create=True)
        assert log.count() == 0 and log.rows() == []
        conn = log._conn
        log.close()
        assert log.closed and "closed" in repr(log) and "closed" in log._repr_html_()
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")  # type: ignore[union-attr]
        with pytest.raises(rn.ConfigError, match="is closed"):
            log.rows()
        with pytest.raises(rn.ConfigError, match="is closed"):
            _ = log.df
        log.close()  # twice is fine

    def test_a_dropped_log_closes_its_connection(self, tmp_path: Path) -> None:
        import gc

        with RunLog(tmp_path, create=True) as log:
            assert log.df.empty
        log = RunLog(tmp_path)
        assert log.df.empty  # the documented one-liner: rn.RunLog(path).df
        conn = log._conn
        del log
        gc.collect()
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")  # type: ignore[union-attr]

    def test_a_log_it_cannot_read_leaves_nothing_open(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from rodin_nb import runlog

        with closing(sqlite3.connect(tmp_path / "runs.sqlite")) as conn:
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
        opened: list[sqlite3.Connection] = []
        real = runlog.open_shared
        monkeypatch.setattr(runlog, "open_shared", lambda path: opened.append(real(path)) or opened[-1])
        with pytest.raises(rn.ConfigError, match="newer rodin_nb"):
            RunLog(tmp_path).count()
        with pytest.raises(sqlite3.ProgrammingError):
            opened[0].execute("SELECT 1")

    def test_a_closed_client_leaves_no_connection_open(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from rodin_nb import _sqlite

        opened: list[sqlite3.Connection] = []
        real = _sqlite.open_shared

        def tracking(path: Path, **kwargs: float) -> sqlite3.Connection:
            opened.append(real(path, **kwargs))
            return opened[-1]

        for module in ("rodin_nb.runlog", "rodin_nb.store", "rodin_nb.sandbox.persist"):
            monkeypatch.setattr(f"{module}.open_shared", tracking)
        client = rn.connect(workspace=tmp_path / "ws", quiet=True, sandbox_options={"job_seconds": 0.2})
        run = client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
        assert run.status == "success" and len(client.log.df) == 1
        assert client.resume() == []  # checks the stored files: the verified-file index opens
        client.close()
        assert len(opened) == 3  # the run log, the verified-file index, the sandbox's state file
        for conn in opened:
            with pytest.raises(sqlite3.ProgrammingError):
                conn.execute("SELECT 1")
        with pytest.raises(rn.ConfigError, match="is closed"):
            client.log.rows()


class TestCli:
    def test_log_and_resume_commands(self, client: rn.Client, sandbox: SandboxServer) -> None:
        client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
        base = [sys.executable, "-m", "rodin_nb.cli"]
        table = subprocess.run(
            [*base, "log", "--workspace", str(client.workspace)], capture_output=True, text=True, check=True
        ).stdout
        assert "success" in table and "extra-low" in table
        rows = json.loads(
            subprocess.run(
                [*base, "log", "--workspace", str(client.workspace), "--format", "json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert rows[0]["seed"] == 1
        csv = subprocess.run(
            [*base, "log", "--workspace", str(client.workspace), "--format", "csv"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert csv.startswith("run_id,")
        resumed = subprocess.run(
            [*base, "resume", "--workspace", str(client.workspace), "--base-url", sandbox.url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert resumed.returncode == 0 and "nothing to resume" in resumed.stdout


# --- log.df's decoding, pinned (issue 13): the column-wise reader must show exactly what the
# row-by-row one did. ``_reference_frame`` is that reader as it was (pd.read_sql_query, then a
# per-column decode), kept here as the oracle.


def _reference_frame(conn: sqlite3.Connection, where: str = "1=1", params: tuple = ()) -> pd.DataFrame:
    """log.df as issue 13 found it: read_sql_query of the table, then decode (the oracle)."""
    from rodin_nb.logframe import _SNAPSHOT

    raw = pd.read_sql_query(
        f"SELECT * FROM runs WHERE {where} ORDER BY submitted_at, rowid", conn, params=params
    )

    def parse(values: pd.Series) -> list:
        return [] if values.empty else json.loads("[" + ",".join(values.fillna("null").astype(str)) + "]")

    params_frame = pd.DataFrame(parse(raw["params"]), index=raw.index)
    names = [*_SNAPSHOT.names, *(c for c in params_frame.columns if c not in _SNAPSHOT.names)]
    params_frame = params_frame.reindex(columns=names)
    trailing = [c for c in columns.FRAME_TRAILING if c in raw]
    frame = pd.concat([raw[list(columns.FRAME_LEADING)], params_frame, raw[trailing].copy()], axis=1)
    for name in [n for n in columns.JSON_COLUMNS if n != "params"]:
        frame[name] = parse(raw[name]) if len(raw) else []
    for name in columns.TIME_COLUMNS:
        frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
    for name in ("tier", "quality", "material", "conditionMode"):
        allowed = list(_SNAPSHOT[name].allowed_values or []) if name in _SNAPSHOT else []
        seen = [value for value in frame[name].dropna().unique() if value not in allowed]
        frame[name] = pd.Categorical(frame[name], categories=[*allowed, *seen])
    for name in ("status", "backend"):
        frame[name] = frame[name].astype("category")
    for name in ("seed", "faces", "vertices"):
        frame[name] = pd.to_numeric(frame[name]).astype("Int64")
    for name in ("useHyper", "TAPose", "reuse"):
        frame[name] = frame[name].astype("boolean")
    for name in ("progress", "cost", "queue_s", "duration_s"):
        frame[name] = pd.to_numeric(frame[name]).astype("Float64")
    return frame.set_index("run_id", drop=False).rename_axis(None)


def _claim(log: RunLog, index: int, *, submitted_at: str, reuse: bool = True, **params: object) -> str:
    request = {"prompt": f"a carved wooden chair #{index}", "seed": index, "tier": "Regular", **params}
    run_id = f"run_{index:03d}"
    log.claim(
        {
            "run_id": run_id,
            "sweep_id": "sweep_a" if index % 2 else None,
            "backend": "sandbox",
            "service": "sandbox",
            "model_id": "model_rodin-hyper3d",
            "params": request,
            "params_hash": f"hash{index}",
            "seed": index,
            "status": "submitting",
            "submitted_at": submitted_at,
        },
        reuse=reuse,
    )
    return run_id


def _representative_log(path: Path) -> RunLog:
    """Every kind of cell log.df decodes: JSON lists and nested lists, params expanded (with images, a
    parameter the snapshot lacks, one left out), NULLs, times in another offset and with microseconds,
    categories outside the schema's, equal submission times (rowid breaks the tie)."""
    log = RunLog(path, create=True)
    done = _claim(log, 0, submitted_at="2025-01-01T12:00:00.000+00:00", quality="medium", useHyper=True)
    log.update(
        done,
        status="success",
        progress=1.0,
        job_id="job_0",
        cost=10.5,
        created_at="2025-01-01T12:00:01.000+00:00",
        started_at="2025-01-01T12:00:02.250+00:00",
        finished_at="2025-01-01T12:00:30.000+00:00",
        queue_s=1.25,
        duration_s=28.0,
        asset_ids=["asset_a"],
        files=["assets/ab/x.glb", "assets/cd/y.png"],
        sha256=["a" * 64, "b" * 64],
        faces=36300,
        vertices=18500,
        bbox=[[-1.5, -1, -1], [1, 1, 1.25]],
        textures=[[384, 384], [512, 256]],
    )
    failed = _claim(
        log, 1, submitted_at="2025-01-01T14:00:00.000+02:00", images=["asset_i1", "asset_i2"],
        conditionMode="fuse", newParam={"k": [1, 2]}, tier="Gen-2", TAPose=True,
    )  # fmt: skip
    log.update(failed, status="failure", error="the model could not make sense of it", hint="rephrase")
    _claim(log, 2, submitted_at="2025-01-01T12:00:00.000+00:00", reuse=False)  # ties with run_000
    lost = _claim(log, 3, submitted_at="2025-01-02T09:30:15.123456+00:00", material="Shaded")
    log.update(lost, status="lost", job_id="job_3", cost=None, progress=0.4, bbox=None)
    return log


# What log.df's columns are on this pandas: text is "str" on pandas 3 (object before); times are UTC.
_TEXT = str(pd.Series(["a"]).dtype)
_TIME = str(pd.to_datetime(pd.Series(["2025-01-01T00:00:00.000+00:00"]), utc=True, format="ISO8601").dtype)
EXPECTED_DTYPES = {
    "run_id": _TEXT, "sweep_id": _TEXT, "backend": "category", "model_id": _TEXT, "prompt": _TEXT,
    "images": "object", "conditionMode": "category", "material": "category", "quality": "category",
    "useHyper": "boolean", "tier": "category", "TAPose": "boolean", "seed": "Int64", "newParam": "object",
    "status": "category", "progress": "Float64", "job_id": _TEXT, "cost": "Float64",
    "submitted_at": _TIME, "created_at": _TIME, "started_at": _TIME, "finished_at": _TIME,
    "queue_s": "Float64", "duration_s": "Float64", "asset_ids": "object", "files": "object",
    "sha256": "object", "faces": "Int64", "vertices": "Int64", "bbox": "object", "textures": "object",
    "error": _TEXT, "hint": _TEXT, "reuse": "boolean", "params_hash": _TEXT, "service": _TEXT,
    "updated_at": _TIME, "rodin_nb_version": _TEXT,
}  # fmt: skip


class TestFrameDecoding:
    def test_dtypes_are_pinned(self, tmp_path: Path) -> None:
        with _representative_log(tmp_path / "ws") as log:
            dtypes = {name: str(dtype) for name, dtype in log.df.dtypes.items()}
        assert dtypes == EXPECTED_DTYPES

    def test_values_are_pinned(self, tmp_path: Path) -> None:
        with _representative_log(tmp_path / "ws") as log:
            df = log.df
        assert list(df.index) == ["run_000", "run_002", "run_001", "run_003"]  # time, then rowid
        assert list(df["run_id"]) == list(df.index) and df.index.name is None
        done, failed, fresh, lost = (df.loc[f"run_{i:03d}"] for i in range(4))
        assert done["files"] == ["assets/ab/x.glb", "assets/cd/y.png"] and done["sha256"] == [
            "a" * 64,
            "b" * 64,
        ]
        assert done["bbox"] == [[-1.5, -1, -1], [1, 1, 1.25]] and done["textures"] == [[384, 384], [512, 256]]
        assert done["asset_ids"] == ["asset_a"] and failed["asset_ids"] == [] and lost["bbox"] is None
        assert done["useHyper"] == True and done["cost"] == 10.5 and done["faces"] == 36300  # noqa: E712
        assert failed["submitted_at"] == pd.Timestamp("2025-01-01T12:00:00", tz="UTC")
        assert lost["submitted_at"] == pd.Timestamp("2025-01-02T09:30:15.123456", tz="UTC")
        assert failed["images"] == ["asset_i1", "asset_i2"] and failed["newParam"] == {"k": [1, 2]}
        assert pd.isna(done["images"]) and pd.isna(done["newParam"]) and pd.isna(fresh["TAPose"])
        assert failed["error"] == "the model could not make sense of it" and pd.isna(done["error"])
        assert pd.isna(lost["cost"]) and lost["progress"] == 0.4 and pd.isna(fresh["job_id"])
        assert list(df["tier"].cat.categories) == ["Sketch", "Regular", "Gen-2"]
        assert list(df["status"].cat.categories) == ["failure", "lost", "submitting", "success"]
        assert fresh["reuse"] == False and done["reuse"] == True  # noqa: E712

    @pytest.mark.parametrize("kept", [(), (1,), (3,), (2, 3), (1, 2, 3, 4)])
    def test_the_frame_is_what_the_row_by_row_reader_made(
        self, tmp_path: Path, kept: tuple[int, ...]
    ) -> None:
        """Subsets too: an empty log, and columns all NULL (times, errors, images) or all set."""
        with _representative_log(tmp_path / "ws") as log:
            with log._write() as conn:
                conn.execute(f"DELETE FROM runs WHERE rowid NOT IN ({','.join('?' * len(kept))})", kept)
            pd.testing.assert_frame_equal(log.df, _reference_frame(log._connect()))

    def test_changed_rows_are_decoded_alike(self, tmp_path: Path) -> None:
        with _representative_log(tmp_path / "ws") as log:
            frame, stamp = log.changed_since()
            pd.testing.assert_frame_equal(frame, _reference_frame(log._connect()))
            log.update("run_002", hint="again")
            changed, _ = log.changed_since(stamp)
            where = ("updated_at > ?", (stamp.updated_at,))
            pd.testing.assert_frame_equal(changed, _reference_frame(log._connect(), *where))

    def test_an_upserted_frame_is_what_a_full_load_gives(self, tmp_path: Path) -> None:
        """Updates stay in place (even among equal submission times), rows submitted earlier than the
        last are sorted in, new statuses join the categories, a parameter one side lacks is a column.

        (Rows are sorted in by their instant; log.df orders by the stored text. The two agree for every
        time rodin_nb writes, all UTC in one format, hence no offset in the rows added here.)"""
        with _representative_log(tmp_path / "ws") as log:
            frame, stamp = log.changed_since()
            steps = [
                lambda: log.update("run_000", hint="first of two at 12:00"),  # stays before run_002
                lambda: log.update("run_001", error=None, hint=None, status="canceled"),
                lambda: _claim(log, 4, submitted_at="2025-01-01T11:00:00.000+00:00"),  # sorted in first
                lambda: _claim(log, 5, submitted_at="2025-01-03T00:00:00.000+00:00", extra=1),
                lambda: (
                    log.update("run_003", params={"prompt": "a chair", "seed": 3, "images": ["asset_z"]}),
                    log.update("run_004", status="queued"),
                ),
            ]
            for step in steps:
                step()
                changed, stamp = log.changed_since(stamp)
                before, kept = frame, frame.copy()
                frame = upsert_frame(frame, changed)
                pd.testing.assert_frame_equal(frame, log.df)
                frame.loc[frame.index[0], ["prompt", "hint"]] = ["edited", "edited"]  # a user's edit
                pd.testing.assert_frame_equal(before, kept)  # never reaches the frame it came from
                frame = upsert_frame(before, changed)
