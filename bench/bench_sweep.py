"""Sweep benchmark: 32 runs against the sandbox with ``parallel_jobs=4`` and a fixed ``job_seconds``.

Prints, for rodin_nb's engine and for the pattern the official docs show (submit every job, then poll
each job every 3 s, jobs gathered concurrently, then download):
  (a) makespan / ideal, where ideal = ceil(32 / 4) * job_seconds
  (b) job-status requests per run (GET /v1/jobs/{jobId} plus GET /v1/jobs list calls)
Targets: (a) within 1.10, (b) fewer than the docs' pattern.

    python bench/bench_sweep.py [job_seconds]
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import requests

import rodin_nb as rn
from rodin_nb.sandbox import serve

RUNS = 32
PARALLEL = 4
STATUS_ROUTES = ("GET /v1/jobs/{jobId}", "GET /v1/jobs")


def status_requests(stats: dict) -> int:
    return sum(stats["requests"].get(route, 0) for route in STATUS_ROUTES)


def docs_pattern(url: str, job_seconds: float) -> tuple[float, int]:
    """Submit all, then poll each job every 3 s concurrently, then download its files."""
    session = requests.Session()

    def one(seed: int) -> None:
        body = {"prompt": "a carved wooden chair", "seed": seed, "tier": "Regular", "quality": "extra-low"}
        job = session.post(f"{url}/generate/custom/model_rodin-hyper3d", json=body, timeout=60).json()["job"]
        while job["status"] not in ("success", "failure", "canceled"):
            time.sleep(3.0)
            job = session.get(f"{url}/jobs/{job['jobId']}", timeout=60).json()["job"]
        for asset_id in job["metadata"].get("assetIds", []):
            asset = session.get(f"{url}/assets/{asset_id}", timeout=60).json()["asset"]
            session.get(asset["url"], timeout=60).content  # noqa: B018

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=RUNS) as pool:
        list(pool.map(one, range(RUNS)))
    return time.monotonic() - start, 0


def rodin_nb_engine(url: str, workspace: str) -> float:
    with rn.connect(base_url=url, workspace=workspace, quiet=True, parallel_jobs=PARALLEL) as client:
        sweep = client.sweep(
            prompt="a carved wooden chair", seed=list(range(RUNS)), tier="Regular", quality="extra-low"
        )
        start = time.monotonic()
        sweep.run(progress=False)
        elapsed = time.monotonic() - start
        assert all(run.status == "success" and run.glb for run in sweep.runs)
    return elapsed


def main(job_seconds: float = 3.0) -> None:
    ideal = math.ceil(RUNS / PARALLEL) * job_seconds
    with serve(job_seconds=job_seconds, parallel_jobs=PARALLEL) as sb, tempfile.TemporaryDirectory() as tmp:
        ours = rodin_nb_engine(sb.url, tmp)
        ours_status = status_requests(sb.stats())
        assert sb.stats()["jobs_created"] == RUNS
    with serve(job_seconds=job_seconds, parallel_jobs=PARALLEL) as sb:
        docs, _ = docs_pattern(sb.url, job_seconds)
        docs_status = status_requests(sb.stats())
    print(f"{RUNS} runs, parallel_jobs={PARALLEL}, job_seconds={job_seconds:g}, ideal makespan {ideal:g} s")
    print(f"{'':24}{'makespan/ideal':>16}{'status req/run':>16}")
    print(f"{'rodin_nb engine':24}{ours / ideal:16.3f}{ours_status / RUNS:16.2f}")
    print(f"{'docs pattern (3 s poll)':24}{docs / ideal:16.3f}{docs_status / RUNS:16.2f}")
    print(
        f"targets: makespan/ideal <= 1.10 (ours {'met' if ours / ideal <= 1.10 else 'MISSED'}); "
        f"fewer status requests than the docs pattern ({'met' if ours_status < docs_status else 'MISSED'})"
    )


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
