"""Run-log benchmark: record 10,000 runs the way the client does, then load ``log.df``.

Prints the time per recorded run and the ``log.df`` load time, each as a ratio to writing and reading
the same rows with plain ``pandas.to_csv`` / ``read_csv`` in the same process (a baseline with no
durability, no concurrency safety and no dtypes), so the numbers mean something on any machine.

    python bench/bench_runlog.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from rodin_nb.runlog import RunLog
from rodin_nb.schema import RodinRequest


def rows(n: int) -> list[tuple[dict, dict]]:
    """(claim row, final update) pairs shaped exactly like the client's."""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    out = []
    for i in range(n):
        req = RodinRequest(
            prompt=f"a carved wooden chair #{i % 50}",
            seed=i % 65536,
            tier="Sketch" if i % 2 else "Regular",
            quality="medium",
        )
        claim = {
            "run_id": f"run_{i:012d}",
            "sweep_id": f"sweep_{i // 32}",
            "backend": "sandbox",
            "service": "sandbox",
            "model_id": "model_rodin-hyper3d",
            "params": req.identity(),
            "params_hash": req.params_hash,
            "seed": req.seed,
            "status": "submitting",
            "submitted_at": now,
        }
        final = {
            "status": "success",
            "progress": 1.0,
            "job_id": f"job_{i:020d}",
            "cost": 10.0,
            "created_at": now,
            "started_at": now,
            "finished_at": now,
            "queue_s": 1.5,
            "duration_s": 20.0,
            "asset_ids": [f"asset_{i:020d}"],
            "files": [f"assets/ab/{i:064d}.glb", f"assets/cd/{i:064d}.png"],
            "sha256": [f"{i:064d}", f"{i + 1:064d}"],
            "faces": 36300,
            "vertices": 18500,
            "bbox": [[-1, -1, -1], [1, 1, 1]],
            "textures": [[384, 384]] * 3,
        }
        out.append((claim, final))
    return out


def main(n: int = 10_000) -> None:
    data = rows(n)
    with tempfile.TemporaryDirectory() as tmp:
        log = RunLog(Path(tmp) / "ws", create=True)
        start = time.perf_counter()
        for claim, final in data:
            log.claim(claim, reuse=True)  # one atomic check-and-insert transaction, as generate() does
            log.update(claim["run_id"], **final)  # and the update when the run finished
        record_s = time.perf_counter() - start

        start = time.perf_counter()
        frame = log.df
        load_s = time.perf_counter() - start
        assert len(frame) == n

        flat = [{**claim, **final} for claim, final in data]
        csv_path = Path(tmp) / "runs.csv"
        start = time.perf_counter()
        pd.DataFrame(flat).to_csv(csv_path, index=False)
        csv_write_s = time.perf_counter() - start
        start = time.perf_counter()
        back = pd.read_csv(csv_path)
        csv_read_s = time.perf_counter() - start
        assert len(back) == n
        log.close()

    per_run_us = record_s / n * 1e6
    print(f"runs recorded:          {n}")
    print(f"record per run:         {per_run_us:8.1f} us  (claim + final update, each its own transaction)")
    print(f"pandas to_csv per row:  {csv_write_s / n * 1e6:8.1f} us  (one batch write, no durability)")
    print(f"ratio record/to_csv:    {record_s / csv_write_s:8.1f} x")
    print(f"log.df load:            {load_s * 1e3:8.1f} ms")
    print(f"pandas read_csv:        {csv_read_s * 1e3:8.1f} ms")
    print(f"ratio log.df/read_csv:  {load_s / csv_read_s:8.1f} x  (log.df also parses JSON and sets dtypes)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
