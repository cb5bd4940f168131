"""Crash and resume: a sweeping process SIGKILLed 20+ times against one durable sandbox, then finished.

Each round starts a fresh client process on one workspace and one sandbox state folder. It resumes what
the killed ones left, in one of four ways taken in turn: ``client.resume()``; that plus reopening the
last logged sweeps by id (``client.sweep_by_id``, what ``rodin-nb sweep --resume`` does); planning the
last sweeps' grids again with ``client.sweep(...)`` (the same plan is the same sweep); or only planning
its own sweep again. Its own sweep has 8 runs (3 at a time) and is worked on by two rounds: new in one,
planned again in the next. The process is SIGKILLed after a seeded random delay, while submitting,
polling or downloading (the figures say which rows it left in each phase). About a third of the rounds
go through a second front door on the same state folder whose creates answer after the client's read
timeout, or never (``slow_create_s``, ``drop_after_create_rate``). A last process resumes everything to
the end.

Then the accounts (``tests/accounts.py``, shared with the chaos proof): jobs the sandbox created (both
doors' counts, and the jobs in its state file) == distinct job ids in the log == rows with a job, one
job per request, every row terminal with a reason when not a success, every success's files on disk
with its sha256. On top of that: every request of every logged sweep has a success row and every sweep a
round started is logged; ``PRAGMA integrity_check`` is "ok" on every SQLite file of the workspace (after
every kill, and at the end) and of the sandbox's state folder; no row names a temp file; every file in
the store is the content its sha256 name says; the sandbox runs no job nobody follows.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import rodin_nb as rn
from rodin_nb.runlog import LOG_FILE, RunLog
from rodin_nb.sandbox import serve
from rodin_nb.sandbox.persist import FILE_NAME
from rodin_nb.schema import ModelSchema, RodinRequest
from rodin_nb.status import ON_SERVICE

from .accounts import check_accounts

pytestmark = pytest.mark.proof  # long: CI runs it once, on Python 3.11 (.ci/run)

MIN_KILLS = 20
MAX_ROUNDS = 40  # a round that finishes before its kill counts as a round, not a kill
KILL_SPAN_S = 2.6  # a round's sweep takes about 3 s here: kills land anywhere in it
SLOW_FAULTS: dict[str, Any] = {
    "slow_create_s": 0.8,  # past the child's 0.5 s read timeout: the job exists, no answer in time
    "drop_after_create_rate": 0.3,  # the job exists, the connection is cut
    "seed": 12,
}

CHILD = textwrap.dedent(
    """
    import sys
    import rodin_nb as rn

    url, workspace, round_no, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    def grid(n):
        seeds = [n * 10 + i for i in range(4)]
        return {"prompt": ["a chair", "a mug"], "seed": seeds, "quality": "extra-low"}

    retry = rn.RetryPolicy(max_retries=4, backoff_base_s=0.02, backoff_cap_s=0.2)
    client = rn.connect(
        base_url=url, workspace=workspace, quiet=True, timeout=(2, 0.5), retry=retry, parallel_jobs=3
    )
    print("connected", flush=True)
    resumed = client.resume() if mode in ("resume", "reopen", "final") else []
    if mode in ("reopen", "final"):  # rodin-nb sweep --resume SWEEP_ID: the last 3 sweeps, or all
        logged = client.log.sweeps()[-3 if mode == "reopen" else 0 :]
        sweeps = [client.sweep_by_id(entry["sweep_id"]) for entry in logged]
    elif mode == "replan":  # the last rounds' grids planned again: the same sweeps, reopened
        earlier = range(max(0, round_no // 2 - 3), round_no // 2)
        sweeps = [client.sweep(concurrency=3, **grid(n)) for n in earlier]
    else:
        sweeps = []
    if mode != "final":  # each sweep is worked on by two rounds: new in one, planned again in the next
        sweeps.append(client.sweep(concurrency=3, **grid(round_no // 2)))
    for sweep in sweeps:
        sweep.start()
    print("started", flush=True)
    for sweep in sweeps:
        sweep.wait()
    for run in resumed:
        run.wait()
    print("done", flush=True)
    client.close()
    """
)
MODES = ("resume", "reopen", "replan", "none")


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCENARIO_", "RODIN_NB_"))}
    # The rodin_nb under test, whatever the current directory.
    env["PYTHONPATH"] = os.pathsep.join([str(Path(rn.__file__).parents[1]), env.get("PYTHONPATH", "")])
    return env


class Child:
    """A child process and the lines it has said so far (read on a thread, so nothing blocks)."""

    def __init__(self, args: list[str], env: dict[str, str], stderr: Path) -> None:
        self.stderr = stderr
        with stderr.open("w") as err:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        self.said: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.said.append(line.strip())

    def wait_until_said(self, word: str, timeout: float = 60.0) -> bool:
        """True once the child said ``word``; False if it ended first."""
        deadline = time.monotonic() + timeout
        while word not in self.said:
            if self.proc.poll() is not None:
                self._reader.join(5)
                return word in self.said
            assert time.monotonic() < deadline, f"the child never said {word!r}: {self.stderr.read_text()}"
            time.sleep(0.01)
        return True

    def end(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(5)
            assert self.proc.stdout is not None
            self.proc.stdout.close()
        return code


def newest_stamp(workspace: Path) -> str:
    """The run log's newest ``updated_at`` ("" before the log exists)."""
    if not (workspace / LOG_FILE).is_file():
        return ""
    with closing(sqlite3.connect(workspace / LOG_FILE, timeout=30)) as conn:
        return str(conn.execute("SELECT coalesce(max(updated_at), '') FROM runs").fetchone()[0])


def phases(workspace: Path, since: str) -> set[str]:
    """What a killed process was doing: the unfinished rows it wrote (``updated_at`` after ``since``)."""
    if not (workspace / LOG_FILE).is_file():
        return {"starting"}
    with closing(sqlite3.connect(workspace / LOG_FILE, timeout=30)) as conn:
        query = "SELECT DISTINCT status FROM runs WHERE updated_at > ?"
        statuses = {row[0] for row in conn.execute(query, (since,))}
    found = {
        "submitting": "submitting" in statuses,
        "polling": bool(statuses & ON_SERVICE),
        "downloading": "downloading" in statuses,
    }
    return {name for name, hit in found.items() if hit} or {"between runs"}


def sqlite_files(*folders: Path) -> list[Path]:
    return sorted(
        path
        for folder in folders
        for pattern in ("*.sqlite", "*.sqlite3", "*.db")
        for path in folder.rglob(pattern)
    )


def integrity(path: Path) -> str:
    with closing(sqlite3.connect(path, timeout=30)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.mark.timeout(600)
def test_twenty_sigkills_then_resume_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    rng = random.Random(12)
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    workspace, state_dir = tmp_path / "ws", tmp_path / "sandbox-state"
    env = child_env()
    kills = rounds = slow_rounds = checks = 0
    started: set[int] = set()  # the sweeps a round started (by number: seeds 10n..10n+3)
    killed_in: Counter[str] = Counter()  # kills that left a row submitting, polled or downloading
    began = time.monotonic()
    with (
        serve(job_seconds=0.4, parallel_jobs=3, state_dir=state_dir) as clean,
        serve(job_seconds=0.4, parallel_jobs=3, state_dir=state_dir, faults=SLOW_FAULTS) as slow,
    ):

        def launch(round_no: int, mode: str, url: str) -> Child:
            args = [sys.executable, str(script), url, str(workspace), str(round_no), mode]
            return Child(args, env, tmp_path / f"child-{round_no}.err")

        while kills < MIN_KILLS + 1 and rounds < MAX_ROUNDS:
            mode = MODES[rounds % len(MODES)]
            use_slow = rng.random() < 0.35
            slow_rounds += use_slow
            since = newest_stamp(workspace)
            child = launch(rounds, mode, slow.url if use_slow else clean.url)
            child.wait_until_said("connected")
            time.sleep(rng.uniform(0.0, KILL_SPAN_S))
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGKILL)
            code = child.end(timeout=60)
            assert code in (0, -signal.SIGKILL), child.stderr.read_text()
            if "started" in child.said:
                started.add(rounds // 2)
            if code == -signal.SIGKILL:
                kills += 1
                killed_in.update(phases(workspace, since))
            rounds += 1
            # What a kill can break right away: the client's SQLite files, in the middle of a write.
            for path in sqlite_files(workspace):
                assert integrity(path) == "ok", path
                checks += 1

        final = launch(rounds, "final", clean.url)
        assert final.end(timeout=180) == 0, final.stderr.read_text()
        assert final.said[-1] == "done", final.said
        jobs_created = clean.stats()["jobs_created"] + slow.stats()["jobs_created"]
        slow_faults = slow.stats()["faults_injected"]
        by_status = clean.stats()["jobs_by_status"]
    elapsed = time.monotonic() - began

    assert kills >= MIN_KILLS
    assert slow_faults.get("slow_create", 0) > 0 and slow_faults.get("drop_after_create", 0) > 0
    with closing(sqlite3.connect(state_dir / FILE_NAME)) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == jobs_created
    assert set(by_status) == {"success"}  # no job the service runs on that nobody follows

    log = RunLog(workspace)
    try:
        rows = log.rows()
        plans = [log.get_sweep(entry["sweep_id"])["plan"] for entry in log.sweeps()]
    finally:
        log.close()
    sha_checks = check_accounts(workspace, rows, jobs_created)
    assert len({row["job_id"] for row in rows if row["job_id"]}) == jobs_created

    # Every request any sweep planned ended with a success (no fault here makes a job fail).
    schema = ModelSchema.snapshot()
    planned = {RodinRequest.logged(schema, params).params_hash for plan in plans for params in plan}
    succeeded = {row["params_hash"] for row in rows if row["status"] == "success"}
    assert planned and planned <= succeeded, planned - succeeded
    assert started <= {params["seed"] // 10 for plan in plans for params in plan}  # started is logged

    # No partial file taken as complete: rows name stored files only, and each stored file is the
    # content its name says (leftover temp files of killed downloads are allowed, never referenced).
    store = workspace / "assets"
    for row in rows:
        for name in row["files"] or []:
            assert Path(name).parent.name != "tmp" and not name.endswith(".part"), row
    stored = [path for path in store.glob("??/*") if path.is_file()]
    for path in stored:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name.split(".")[0], path
    leftovers = list((store / "tmp").glob("*")) if (store / "tmp").is_dir() else []

    databases = sqlite_files(workspace, state_dir)
    assert {path.name for path in databases} >= {"runs.sqlite", "verified.sqlite", FILE_NAME}
    for path in databases:
        assert integrity(path) == "ok", path
        checks += 1

    statuses = Counter(row["status"] for row in rows)
    print(
        f"\ncrash-resume: {kills} SIGKILLs in {rounds} rounds ({slow_rounds} through slow/dropped creates; "
        f"killed {dict(killed_in)}), {jobs_created} jobs created, {len(rows)} rows {dict(statuses)}, "
        f"{len(planned)} requests planned in {len(plans)} sweeps, {sha_checks} sha256 checks of rows + "
        f"{len(stored)} stored files, {checks} integrity checks ok, {len(leftovers)} temp leftovers, "
        f"slow-door faults {slow_faults}, {elapsed:.1f} s"
    )
