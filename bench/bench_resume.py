"""Resume benchmark: how long ``client.resume()`` takes in a workspace full of finished results.

After a kernel restart, ``resume()`` checks that every successful run's files are still intact. Files
verified once are trusted by their stat signature afterwards, so a later resume costs a ``stat`` per
file instead of reading and hashing every byte. Prints, for a workspace of RUNS results:
  (a) resume() with the verified-file index, as a ratio to resume() without it (every file hashed),
  (b) both as ratios to the baseline: hashing every stored byte once with hashlib in the same run.

    python bench/bench_resume.py [runs]
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from pathlib import Path

import rodin_nb as rn
from rodin_nb import store as store_module
from rodin_nb.sandbox import serve


def hash_everything(assets: Path) -> float:
    started = time.perf_counter()
    for path in sorted(assets.glob("??/*")):
        hashlib.sha256(path.read_bytes()).hexdigest()
    return time.perf_counter() - started


def timed_resume(url: str, workspace: Path) -> float:
    with rn.connect(base_url=url, workspace=workspace, quiet=True) as client:
        started = time.perf_counter()
        assert client.resume() == []
        return time.perf_counter() - started


def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, serve(job_seconds=0.05, parallel_jobs=8) as server:
        workspace = Path(tmp)
        with rn.connect(base_url=server.url, workspace=workspace, quiet=True) as client:
            sweep = client.sweep(
                prompt="a carved wooden chair",
                seed=list(range(runs)),
                quality="high",
                material="PBR",
                concurrency=8,
            )
            sweep.run()
        assets = workspace / "assets"
        files = sorted(assets.glob("??/*"))
        total = sum(path.stat().st_size for path in files)
        store_module.SETTLE_NS = 0  # the results are seconds old; trust them as if written yesterday
        index = assets / "verified.sqlite"

        baseline = min(hash_everything(assets) for _ in range(3))
        cold, warm = [], []
        for _ in range(3):
            for suffix in ("", "-wal", "-shm"):
                Path(f"{index}{suffix}").unlink(missing_ok=True)
            cold.append(timed_resume(server.url, workspace))  # no index: every file hashed (and indexed)
            warm.append(timed_resume(server.url, workspace))  # indexed: a stat per file
        print(f"workspace: {runs} runs, {len(files)} files, {total / 1e6:.1f} MB")
        print(f"baseline (hash every byte once): {baseline * 1e3:.1f} ms")
        print(f"resume(), files hashed:  {min(cold) * 1e3:.1f} ms = {min(cold) / baseline:.2f}x baseline")
        print(f"resume(), files indexed: {min(warm) * 1e3:.1f} ms = {min(warm) / baseline:.2f}x baseline")
        print(f"(a) indexed / hashed: {min(warm) / min(cold):.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 64)
