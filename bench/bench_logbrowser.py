"""LogBrowser benchmark: a filter change and redraw over a 10,000-run log, against plain pandas.

Fills a log the way the client does (``bench_runlog.rows``: claim, then the final update), with real
preview PNGs on disk (50 distinct ones, as a sweep's previews would be), then changes one filter control
at a time and times the browser's whole reaction: the change check on the log (``PRAGMA data_version``),
the vectorised filter, the page label and the 12 cards. The baseline, measured in the same process on
the same frame, is pandas alone evaluating the same filters (boolean masks, then ``frame[mask]``).
The aim is a ratio within 3x.

    python bench/bench_logbrowser.py [N]
"""

from __future__ import annotations

import hashlib
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from bench_runlog import rows  # the sibling benchmark's client-shaped rows
from PIL import Image

from rodin_nb.logbrowser import LogBrowser
from rodin_nb.runlog import RunLog

PREVIEWS = 50
REPEAT = 30


def write_previews(workspace: Path) -> list[tuple[str, str]]:
    """(relative path, sha256) of small PNG previews stored like the client stores them."""
    out = []
    for i in range(PREVIEWS):
        buffer = io.BytesIO()
        Image.new("RGB", (256, 256), (i * 5 % 256, 90, 160)).save(buffer, format="PNG")
        data = buffer.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        relative = f"assets/{sha[:2]}/{sha}.png"
        (workspace / relative).parent.mkdir(parents=True, exist_ok=True)
        (workspace / relative).write_bytes(data)
        out.append((relative, sha))
    return out


def fill(log: RunLog, n: int, previews: list[tuple[str, str]]) -> None:
    for i, (claim, final) in enumerate(rows(n)):
        png, sha = previews[i % len(previews)]
        final["files"] = [final["files"][0], png]
        final["sha256"] = [final["sha256"][0], sha]
        if i % 7 == 0:
            final["status"] = "failure"
        log.claim(claim, reuse=False)
        log.update(claim["run_id"], **final)


# One control changes per step; each step's baseline evaluates every filter then active.
STEPS: list[tuple[str, Any]] = [
    ("tier", ("Sketch",)),
    ("prompt", "chair #1"),
    ("status", ("success",)),
    ("tier", ()),
    ("prompt", ""),
    ("status", ()),
]


def pandas_filter(frame: pd.DataFrame, state: dict[str, Any]) -> pd.DataFrame:
    """The baseline: the same filters as plain pandas boolean masks."""
    mask = pd.Series(True, index=frame.index)
    for name in ("status", "tier"):
        if state[name]:
            mask &= frame[name].isin(state[name])
    if state["prompt"]:
        mask &= frame["prompt"].str.contains(state["prompt"], case=False, regex=False, na=False)
    return frame[mask]


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main(n: int = 10_000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "ws"
        workspace.mkdir()
        log = RunLog(workspace, create=True)
        start = time.perf_counter()
        fill(log, n, write_previews(workspace))
        fill_s = time.perf_counter() - start

        start = time.perf_counter()
        browser = LogBrowser(log)
        open_s = time.perf_counter() - start
        browser.close()  # nothing writes now; keep timer threads out of the measurement
        frame = browser.frame
        assert len(frame) == n

        controls = {
            "status": browser.filters["status"],
            "tier": browser.filters["tier"],
            "prompt": browser.prompt,
        }
        state: dict[str, Any] = {"status": (), "tier": (), "prompt": ""}
        ours: list[float] = []
        baseline: list[float] = []
        for round_ in range(REPEAT + 1):
            for name, value in STEPS:
                state[name] = value
                took = timed(lambda name=name, value=value: setattr(controls[name], "value", value))
                expected = pandas_filter(frame, state)
                took_pandas = timed(lambda: pandas_filter(frame, state))
                assert browser.count == len(expected), (state, browser.count, len(expected))
                if round_:  # the first round warms caches (thumbnails, pandas' own) for both
                    ours.append(took)
                    baseline.append(took_pandas)
        log.close()

    ours_ms = statistics.median(ours) * 1e3
    base_ms = statistics.median(baseline) * 1e3
    print(f"runs in the log:              {n}")
    print(f"fill (claim + update each):   {fill_s:8.2f} s")
    print(f"open LogBrowser (load+draw):  {open_s * 1e3:8.1f} ms")
    print(f"filter change + redraw:       {ours_ms:8.2f} ms  (median of {len(ours)}; 12 cards)")
    print(f"pandas filter, same frame:    {base_ms:8.2f} ms  (median of {len(baseline)})")
    print(f"ratio browser/pandas:         {ours_ms / base_ms:8.2f} x  (aim: within 3x)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
