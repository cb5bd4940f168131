"""The rodin-nb command line, run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from rodin_nb.sandbox import serve


def cli_command() -> list[str]:
    """The ``rodin-nb`` installed beside the Python running the tests (a ``rodin-nb`` found on PATH may
    belong to another environment, with another copy of rodin_nb); else ``python -m rodin_nb.cli``."""
    exe = Path(sys.executable).parent / "rodin-nb"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "rodin_nb.cli"]


def rodin_nb(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    command = cli_command()
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_generate_on_the_sandbox(tmp_path: Path) -> None:
    with serve(job_seconds=0.3) as sb:
        result = rodin_nb(
            "generate",
            "--prompt",
            "a chair",
            "--seed",
            "1",
            "2",
            "--tier",
            "Sketch",
            "Regular",
            "--quality",
            "extra-low",
            "--base-url",
            sb.url,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert sb.stats()["jobs_created"] == 4
    lines = [line for line in result.stdout.splitlines()[1:] if line.startswith("run_")]
    assert len(lines) == 4 and all("success" in line and ".glb" in line for line in lines)


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    result = rodin_nb("generate", "--prompt", "a chair", "--tier", "Ultra", "--sandbox", cwd=tmp_path)
    assert result.returncode == 2
    assert "tier" in result.stderr and "'Sketch'" in result.stderr


def test_sandbox_command_serves(tmp_path: Path) -> None:
    command = cli_command()
    proc = subprocess.Popen(
        [*command, "sandbox", "--port", "0", "--speed", "50"], cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" at ")[1].split()[0]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            response = requests.get(url + "/models/model_rodin-hyper3d", timeout=5)
            if response.ok:
                break
        assert response.json()["model"]["id"] == "model_rodin-hyper3d"
        stats = requests.get(url.rsplit("/v1", 1)[0] + "/_sandbox/stats", timeout=5).json()
        assert stats["requests"]["GET /v1/models/{modelId}"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_sandbox_on_a_busy_port_says_so(tmp_path: Path) -> None:
    with serve() as sb:
        port = sb.url.split(":")[2].split("/")[0]
        result = rodin_nb("sandbox", "--port", port, cwd=tmp_path)
    assert result.returncode == 2 and f"127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_sandbox_command_keeps_jobs_in_a_state_folder(tmp_path: Path) -> None:
    command = cli_command()
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [*command, "sandbox", "--port", "0", "--job-seconds", "0.2", "--state", str(state)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split(" at ")[1].split()[0]
        assert str(state) in proc.stdout.readline()
        body = {"prompt": "a chair", "seed": 1, "quality": "extra-low"}
        job = requests.post(url + "/generate/custom/model_rodin-hyper3d", json=body, timeout=10).json()["job"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    with serve(state_dir=state) as sb:  # the next sandbox on the folder knows the job
        listed = requests.get(sb.url + "/jobs", timeout=10).json()["jobs"]
        assert [j["jobId"] for j in listed] == [job["jobId"]]


# --- quiet, honest output (issue 11, part 6) --------------------------------------------------------

NOTICE = "no Scenario credentials found"


def test_sandbox_flag_means_no_sandbox_notice(tmp_path: Path) -> None:
    """The user asked for the sandbox: no line telling them it stands in for Scenario."""
    args = ["generate", "--prompt", "a chair", "--seed", "1", "--tier", "Sketch", "--quality", "medium"]
    env = {"RODIN_NB_SANDBOX_SPEED": "200"}
    asked = rodin_nb(*args, "--sandbox", cwd=tmp_path, env=env)
    assert asked.returncode == 0, asked.stderr
    assert NOTICE not in asked.stderr and "success" in asked.stdout
    defaulted = rodin_nb(*args, cwd=tmp_path, env=env)  # no credentials, no flag: said once
    assert defaulted.returncode == 0, defaulted.stderr
    assert defaulted.stderr.count(NOTICE) == 1


def test_bad_input_is_refused_before_connecting(tmp_path: Path) -> None:
    for flag in ([], ["--sandbox"]):
        result = rodin_nb("generate", "--prompt", "a chair", "--tier", "Ultra", *flag, cwd=tmp_path)
        assert result.returncode == 2 and "'Sketch'" in result.stderr
        assert NOTICE not in result.stderr and "Traceback" not in result.stderr
        swept = rodin_nb("sweep", "--prompt", "a chair", "--quality", "low", "best", *flag, cwd=tmp_path)
        assert swept.returncode == 2 and "quality" in swept.stderr
        assert NOTICE not in swept.stderr and "Traceback" not in swept.stderr
    assert list(tmp_path.iterdir()) == []  # no ./rodin_runs


def test_resume_in_an_empty_folder_creates_nothing(tmp_path: Path) -> None:
    result = rodin_nb("resume", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("nothing to resume in ") and NOTICE not in result.stderr
    sweep = rodin_nb("sweep", "--resume", "sweep_abc", cwd=tmp_path)
    assert sweep.returncode == 2 and "no sweep 'sweep_abc'" in sweep.stderr
    assert NOTICE not in sweep.stderr and "Traceback" not in sweep.stderr
    assert list(tmp_path.iterdir()) == []


def test_log_of_an_empty_workspace_says_so(tmp_path: Path) -> None:
    from rodin_nb.runlog import RunLog

    log = RunLog(tmp_path / "ws", create=True)
    assert log.count() == 0 and log.rows() == []  # the file exists, with no runs
    log.close()
    result = rodin_nb("log", "--workspace", str(tmp_path / "ws"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"no runs in {tmp_path / 'ws'} yet\n"
    as_json = rodin_nb("log", "--workspace", str(tmp_path / "ws"), "--format", "json", cwd=tmp_path)
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == []
    missing = rodin_nb("log", cwd=tmp_path)
    assert missing.returncode == 1 and "no run log in rodin_runs" in missing.stderr
    assert not (tmp_path / "rodin_runs").exists()


def test_log_lists_sweeps_to_resume(tmp_path: Path) -> None:
    env = {"RODIN_NB_SANDBOX_SPEED": "200"}
    empty = rodin_nb("log", "--sweeps", "--workspace", str(tmp_path / "none"), cwd=tmp_path)
    assert empty.returncode == 1 and "no run log in" in empty.stderr
    swept = rodin_nb("sweep", "--sandbox", "--prompt", "a chair", "--seed", "1", "2", cwd=tmp_path, env=env)
    assert swept.returncode == 0, swept.stderr
    sweep_id = swept.stdout.split()[1].rstrip(":")
    listed = rodin_nb("log", "--sweeps", cwd=tmp_path)
    assert listed.returncode == 0 and sweep_id in listed.stdout and "sweep --resume" in listed.stdout
    again = rodin_nb("sweep", "--sandbox", "--resume", sweep_id, cwd=tmp_path, env=env)
    assert again.returncode == 0 and "2 runs, 0 to pay" in again.stdout, again.stderr
    assert NOTICE not in again.stderr and "Traceback" not in again.stderr
