"""The rodin-nb command line, run as a user would run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests

from rodin_nb.sandbox import serve


def rodin_nb(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("rodin-nb")
    command = [exe] if exe else [sys.executable, "-m", "rodin_nb.cli"]
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
    exe = shutil.which("rodin-nb")
    command = [exe] if exe else [sys.executable, "-m", "rodin_nb.cli"]
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
    exe = shutil.which("rodin-nb")
    command = [exe] if exe else [sys.executable, "-m", "rodin_nb.cli"]
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
