"""Opening SQLite files shared by several processes: the run log, the asset index, the sandbox state.

One connection per process, used by its threads under the owner's lock; transactions are explicit
(``isolation_level=None``: ``BEGIN IMMEDIATE`` where check-then-write must be atomic across processes);
WAL, so readers never wait for a writer.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

__all__ = ["open_shared"]


def open_shared(path: Path, *, busy_timeout_s: float = 30.0) -> sqlite3.Connection:
    """A connection to ``path`` in WAL mode that waits up to ``busy_timeout_s`` for other writers."""
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    try:
        _enable_wal(conn, patience_s=busy_timeout_s)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    except BaseException:
        conn.close()
        raise
    return conn


def _enable_wal(conn: sqlite3.Connection, *, patience_s: float) -> None:
    """Switch the file to WAL (persistent, so only its first user really switches).

    Changing the journal mode can answer "database is locked" at once, without the busy handler, when
    another process opens the new file at the same moment; so retry for a while.
    """
    deadline = time.monotonic() + patience_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
