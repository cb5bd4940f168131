"""Run-log benchmark: record 10,000 runs the way the client does, load ``log.df``, refresh it.

Every figure is printed as a ratio to a baseline measured in the same process, on the same rows, so the
numbers mean something on any machine (and on a busy one: the work and its baseline alternate in
blocks, so a burst of someone else's load falls on both). Each timed load or refresh starts after a
``gc.collect()`` (as ``timeit`` turns the collector off), so one action's garbage is not billed to the
next:

  recording   ``RunLog.claim`` + ``RunLog.update`` per run (the client's two writes: the atomic
              check-and-insert, then the final state), against a bare SQLite ``INSERT`` + ``UPDATE``
              pair of the same row, each in its own ``BEGIN IMMEDIATE`` transaction, on a connection
              opened the same way (WAL, ``synchronous=NORMAL``, autocommit off) to a table with the same
              schema and indexes, its values already encoded. Aim: within 1.5x. Also shown: the same
              bare pair plus the three lookups the log's semantics need (the pay-once check before the
              insert, the newest ``updated_at`` before each write), so the ratio splits into what the
              semantics cost and what rodin_nb's own Python adds.
  log.df      a full load of the 10,000 runs, against ``pandas.read_csv`` of the same table as
              ``DataFrame.to_csv`` writes it (the raw table: JSON as text, times as text, no dtypes).
              Aim: within 3x. Also shown: the bare ``sqlite3`` ``fetchall()`` of the same table, the
              floor for any reader that goes through Python's ``sqlite3`` (no decoding at all).
  refresh     ``RunLog.changed_since(stamp)`` + ``logframe.upsert_frame`` after 100 of the 10,000 rows
              changed (as the log browser refreshes), against a full ``log.df`` load. Aim: 0.1x at most.

    python bench/bench_runlog.py [N]
"""

from __future__ import annotations

import gc
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from rodin_nb._sqlite import open_shared
from rodin_nb.columns import JSON_COLUMNS
from rodin_nb.logframe import upsert_frame
from rodin_nb.runlog import MIGRATIONS, REUSABLE, RunLog
from rodin_nb.schema import RodinRequest

BLOCK = 250  # runs recorded by one side before the other takes its turn
REPEAT = 5  # loads and refreshes timed; the median is shown
CHANGED = 100  # rows changed before each refresh


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


def bare_table(path: Path) -> sqlite3.Connection:
    """A connection opened as the run log's is, to a table with the run log's schema and indexes."""
    conn = open_shared(path)
    for script in MIGRATIONS:
        for statement in (part.strip() for part in script.split(";")):
            if statement:
                conn.execute(statement)
    return conn


def encoded(row: dict[str, Any]) -> list[Any]:
    return [
        json.dumps(v, sort_keys=True) if k in JSON_COLUMNS and v is not None else v for k, v in row.items()
    ]


def bare_statements(data: list[tuple[dict, dict]]) -> list[tuple[str, list[Any], str, list[Any]]]:
    """The INSERT and UPDATE of each run with its values encoded beforehand (not timed)."""
    now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    out = []
    for claim, final in data:
        row = {"owner": "bench", **claim, "updated_at": now, "rodin_nb_version": "bench", "reuse": 1}
        changes = {**final, "updated_at": now}
        insert = f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
        update = f"UPDATE runs SET {', '.join(f'{name}=?' for name in changes)} WHERE run_id=?"
        out.append((insert, encoded(row), update, [*encoded(changes), claim["run_id"]]))
    return out


# The lookups the log's semantics add to each write, done by hand on the third table: the pay-once check
# before the insert, and the newest stamp (strictly increasing stamps) before each write.
_REUSE_LOOKUP = (
    f"SELECT * FROM runs WHERE model_id=? AND service=? AND params_hash=? AND status IN "
    f"({','.join('?' * len(REUSABLE))}) ORDER BY status='success' DESC, submitted_at DESC LIMIT 1"
)
_STAMP_LOOKUP = "SELECT max(updated_at) FROM runs"


def record_all(
    log: RunLog, bare: sqlite3.Connection, checked: sqlite3.Connection, data: list[tuple[dict, dict]]
) -> tuple[float, float, float]:
    """Seconds spent recording every run through the log, through bare SQLite, and through bare SQLite
    plus the log's lookups, the three taking turns in blocks."""
    statements = bare_statements(data)
    ours = theirs = looked = 0.0
    for start in range(0, len(data), BLOCK):
        began = time.perf_counter()
        for claim, final in data[start : start + BLOCK]:
            log.claim(claim, reuse=True)  # one atomic check-and-insert transaction, as generate() does
            log.update(claim["run_id"], **final)  # and the update when the run finished
        ours += time.perf_counter() - began
        began = time.perf_counter()
        for insert, values, update, changes in statements[start : start + BLOCK]:
            bare.execute("BEGIN IMMEDIATE")
            bare.execute(insert, values)
            bare.execute("COMMIT")
            bare.execute("BEGIN IMMEDIATE")
            bare.execute(update, changes)
            bare.execute("COMMIT")
        theirs += time.perf_counter() - began
        began = time.perf_counter()
        for (claim, _), (insert, values, update, changes) in zip(
            data[start : start + BLOCK], statements[start : start + BLOCK], strict=True
        ):
            checked.execute("BEGIN IMMEDIATE")
            key = (claim["model_id"], claim["service"], claim["params_hash"], *REUSABLE)
            checked.execute(_REUSE_LOOKUP, key).fetchone()
            checked.execute(_STAMP_LOOKUP).fetchone()
            checked.execute(insert, values)
            checked.execute("COMMIT")
            checked.execute("BEGIN IMMEDIATE")
            checked.execute(_STAMP_LOOKUP).fetchone()
            checked.execute(update, changes)
            checked.execute("COMMIT")
        looked += time.perf_counter() - began
    return ours, theirs, looked


def medians_s(*actions: Callable[[], Any], repeat: int = REPEAT) -> list[float]:
    """Median time of each action, the actions taking turns (so a burst of other load falls on all)."""
    times: list[list[float]] = [[] for _ in actions]
    for _ in range(repeat):
        for action, spent in zip(actions, times, strict=True):
            gc.collect()
            began = time.perf_counter()
            action()
            spent.append(time.perf_counter() - began)
    return [statistics.median(spent) for spent in times]


def refresh_s(log: RunLog, n: int) -> tuple[float, float]:
    """Median times of a refresh (changed_since + upsert_frame after CHANGED rows changed, different rows
    each round) and of a full log.df load taken in the same rounds."""
    frame, stamp = log.changed_since()
    refreshes, loads = [], []
    for round_ in range(REPEAT):
        for i in range(round_, n, max(1, n // CHANGED)):
            log.update(f"run_{i:012d}", hint=f"looked at in round {round_}")
        gc.collect()
        began = time.perf_counter()
        changed, stamp = log.changed_since(stamp)
        frame = upsert_frame(frame, changed)
        refreshes.append(time.perf_counter() - began)
        gc.collect()
        began = time.perf_counter()
        full = log.df
        loads.append(time.perf_counter() - began)
        assert len(changed) == min(CHANGED, n) and len(frame) == n
    pd.testing.assert_frame_equal(frame, full)  # the refreshed frame is the one a full load gives
    return statistics.median(refreshes), statistics.median(loads)


def main(n: int = 10_000) -> None:
    data = rows(n)
    with tempfile.TemporaryDirectory() as tmp:
        log = RunLog(Path(tmp) / "ws", create=True)
        bare = bare_table(Path(tmp) / "bare.sqlite")
        checked = bare_table(Path(tmp) / "checked.sqlite")
        record_s, bare_record_s, checked_record_s = record_all(log, bare, checked, data)
        bare.close()
        checked.close()

        assert len(log.df) == n
        conn = sqlite3.connect(log.path)
        csv_path = Path(tmp) / "runs.csv"
        pd.read_sql_query("SELECT * FROM runs", conn).to_csv(csv_path, index=False)  # the raw table
        assert len(pd.read_csv(csv_path)) == n
        load_s, csv_read_s, fetch_s = medians_s(
            lambda: log.df,
            lambda: pd.read_csv(csv_path),
            lambda: conn.execute("SELECT * FROM runs").fetchall(),
        )
        conn.close()

        refresh, reload_s = refresh_s(log, n)
        log.close()

    print(f"runs recorded:                 {n}  (the machine may be shared: compare ratios, not times)")
    print(f"record per run (claim+update): {record_s / n * 1e6:8.1f} us")
    print(f"bare SQLite insert+update:     {bare_record_s / n * 1e6:8.1f} us  (same pragmas and schema)")
    print(f"bare + the log's 3 lookups:    {checked_record_s / n * 1e6:8.1f} us  (pay-once check, 2 stamps)")
    print(f"ratio record/bare:             {record_s / bare_record_s:8.2f} x  (aim: within 1.5x)")
    print(
        f"ratio bare+lookups/bare:       {checked_record_s / bare_record_s:8.2f} x  (what the semantics cost)"
    )
    print(
        f"ratio record/bare+lookups:     {record_s / checked_record_s:8.2f} x  (rodin_nb's Python around it)"
    )
    print(f"log.df load (median of {REPEAT}):     {load_s * 1e3:8.1f} ms")
    print(f"pandas read_csv, raw table:    {csv_read_s * 1e3:8.1f} ms")
    print(f"bare sqlite3 fetchall:         {fetch_s * 1e3:8.1f} ms  (no decoding: the floor via sqlite3)")
    print(f"ratio log.df/read_csv:         {load_s / csv_read_s:8.2f} x  (aim: within 3x)")
    print(f"ratio fetchall/read_csv:       {fetch_s / csv_read_s:8.2f} x")
    print(f"ratio log.df/fetchall:         {load_s / fetch_s:8.2f} x")
    print(f"refresh, {CHANGED} rows changed:      {refresh * 1e3:8.1f} ms  (changed_since + upsert_frame)")
    print(f"log.df load, same rounds:      {reload_s * 1e3:8.1f} ms")
    print(f"ratio refresh/log.df:          {refresh / reload_s:8.3f} x  (aim: 0.1x at most)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
