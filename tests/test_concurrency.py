"""Two processes sharing a workspace submit the same request at the same instant: one job, one row."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import rodin_nb as rn
from rodin_nb.sandbox import serve

# Each child connects (schema read, run log opened), says it is ready, then waits for the go file and
# calls generate() at once: both generate calls start within about a millisecond of each other.
CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import rodin_nb as rn

    base_url, workspace, barrier, name = sys.argv[1:5]
    barrier = Path(barrier)
    with rn.connect(base_url=base_url, workspace=workspace, quiet=True) as client:
        (barrier / f"ready-{name}").touch()
        go = barrier / "go"
        deadline = time.monotonic() + 30
        while not go.exists():
            if time.monotonic() > deadline:
                sys.exit("no go")
            time.sleep(0.0005)
        run = client.generate(prompt="a teapot", seed=4242, quality="extra-low")
        run.wait(timeout=60)
        print(json.dumps({"run_id": run.run_id, "job_id": run.job_id, "status": run.status}))
    """
)


def test_same_request_from_two_processes_at_once_is_one_job_one_row(tmp_path: Path) -> None:
    workspace, barrier = tmp_path / "ws", tmp_path / "barrier"
    barrier.mkdir()
    with serve(state_dir=tmp_path / "sandbox_state", job_seconds=0.5) as sb:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, sb.url, str(workspace), str(barrier), name],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in ("a", "b")
        ]
        try:
            deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
            while not all((barrier / f"ready-{name}").exists() for name in ("a", "b")):
                assert time.monotonic() < deadline, "children never got ready"
                assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
                time.sleep(0.01)
            (barrier / "go").touch()
            results = []
            for proc in procs:
                out, err = proc.communicate(timeout=90)
                assert proc.returncode == 0, err
                results.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        stats = sb.stats()
    assert stats["jobs_created"] == 1, stats
    assert stats["requests"].get("POST /v1/generate/custom/{modelId}", 0) == 1
    assert {r["status"] for r in results} == {"success"}
    assert results[0]["run_id"] == results[1]["run_id"] and results[0]["job_id"] == results[1]["job_id"]
    (row,) = rn.RunLog(workspace).rows("1=1", ())
    assert row["run_id"] == results[0]["run_id"] and row["status"] == "success"
