"""The sandbox's state file: its jobs and uploads in one SQLite file that several processes share.

Why a file: the client's run log survives kernel restarts, so the service behind it must too, or every
unfinished run looks ``lost`` after a restart and every cached upload id points at nothing. Like the
real service, the sandbox then keeps working while no process runs: job times are wall-clock seconds.

What is stored is only what cannot be derived:

- an **event log** (``create``, ``cancel``, ``limit`` = the account's parallel-job limit was set), each
  event numbered in commit order, with a wall-clock time never below the previous event's. Commit order
  is therefore time order, and replaying the log in number order gives every process the same queue
  timeline (:class:`~.state.SandboxState` does the replay; this module only stores);
- each job's **definition** (body, seed and mesh key, cost, durations, failure point): what a replay
  needs to time it and what the result is made from;
- **uploaded images** with their bytes.

Not stored: generated GLBs and previews (deterministic from the job's ``gen_params``), URL signing keys
(per process: a stale URL gets a 403 and the client asks for a fresh one), request counters.

Writers take SQLite's write lock first (``BEGIN IMMEDIATE``), then catch up with the file, then write;
so two processes never hand out the same ``seq`` and never log an event into a past the other has
already simulated. :class:`StateFile` is not thread-safe: its owner serialises calls (the state lock).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .._sqlite import open_shared
from .state import Asset, Event, EventKind, Job

__all__ = ["FILE_NAME", "SCHEMA_VERSION", "Changes", "StateFile"]

FILE_NAME = "sandbox.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS events (
        n INTEGER PRIMARY KEY AUTOINCREMENT,
        t REAL NOT NULL,
        kind TEXT NOT NULL,
        job_id TEXT,
        value INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        seq INTEGER NOT NULL UNIQUE,
        created_t REAL NOT NULL,
        body TEXT NOT NULL,
        cost INTEGER NOT NULL,
        pending_s REAL NOT NULL,
        queue_min_s REAL NOT NULL,
        duration REAL NOT NULL,
        fail_frac REAL,
        error_message TEXT,
        error_hint TEXT,
        gen_params TEXT NOT NULL,
        glb_id TEXT NOT NULL,
        preview_id TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS uploads (
        n INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        account TEXT NOT NULL,
        mime_type TEXT NOT NULL,
        created_t REAL NOT NULL,
        author_id TEXT NOT NULL,
        metadata TEXT NOT NULL,
        properties TEXT NOT NULL,
        data BLOB NOT NULL
    )""",
)

# A jobs row holds the fields that define a Job (those before ``error``), each in the column of its
# name, with ``body`` and ``gen_params`` as JSON and ``error`` split into error_message and error_hint.
_JOB_FIELDS = tuple(itertools.takewhile(lambda name: name != "error", (f.name for f in fields(Job))))
_JSON_FIELDS = frozenset({"body", "gen_params"})
_JOB_COLUMNS = ", ".join((*_JOB_FIELDS, "error_message", "error_hint"))


@dataclass(frozen=True)
class Changes:
    """What other processes wrote since a :meth:`StateFile.head`, read in one snapshot."""

    head: tuple[int, int]
    events: list[Event]
    jobs: list[Job]
    uploads: list[Asset]


class StateFile:
    """``<folder>/sandbox.sqlite``, created on first use. Raises ValueError for a newer file format."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / FILE_NAME
        self.closed = False
        # Transactions are explicit (BEGIN IMMEDIATE); the server's threads share it under the state lock.
        self._conn = open_shared(self.path)
        try:
            with self.transaction():
                version = self._conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise ValueError(
                        f"{self.path} was written by a newer rodin_nb sandbox (format {version}, this one "
                        f"reads up to {SCHEMA_VERSION}); upgrade rodin_nb or use another state_dir"
                    )
                for statement in _SCHEMA:
                    self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        self.closed = True
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write-locked transaction: what is read inside it stays true until it commits."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # ------------------------------------------------------------------ reads

    def head(self) -> tuple[int, int]:
        """(last event number, last upload number): equal to the previous answer iff nothing changed."""
        row = self._conn.execute(
            "SELECT (SELECT COALESCE(MAX(n), 0) FROM events), (SELECT COALESCE(MAX(n), 0) FROM uploads)"
        ).fetchone()
        return int(row[0]), int(row[1])

    def changes(self, head: tuple[int, int], seq: int) -> Changes | None:
        """What was written after ``head`` (see :meth:`head`) and job ``seq``; None if nothing was.

        Read in one snapshot, so a job and its ``create`` event always arrive together. The cheap
        :meth:`head` query comes first: it is all a request pays when no other process wrote.
        """
        if self.head() == head:
            return None
        own = not self._conn.in_transaction  # inside a write transaction everything is consistent anyway
        if own:
            self._conn.execute("BEGIN")
        try:
            new_head = self.head()
            return Changes(
                head=new_head,
                events=self.events_after(head[0]),
                jobs=self.jobs_after(seq),
                uploads=self.uploads_after(head[1]),
            )
        finally:
            if own:
                self._conn.execute("COMMIT")

    def events_after(self, n: int) -> list[Event]:
        rows = self._conn.execute(
            "SELECT n, t, kind, job_id, value FROM events WHERE n > ? ORDER BY n", (n,)
        ).fetchall()
        return [Event(n=r[0], t=r[1], kind=r[2], job_id=r[3], value=r[4]) for r in rows]

    def jobs_after(self, seq: int) -> list[Job]:
        rows = self._conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE seq > ? ORDER BY seq", (seq,)
        ).fetchall()
        return [_job(row) for row in rows]

    def uploads_after(self, n: int) -> list[Asset]:
        rows = self._conn.execute(
            "SELECT id, mime_type, created_t, author_id, metadata, properties, data "
            "FROM uploads WHERE n > ? ORDER BY n",
            (n,),
        ).fetchall()
        return [
            Asset(
                id=r[0],
                kind="image",
                mime_type=r[1],
                source="uploaded",
                created_t=r[2],
                author_id=r[3],
                metadata=json.loads(r[4]),
                properties=json.loads(r[5]),
                data=bytes(r[6]),
            )
            for r in rows
        ]

    # ----------------------------------------------------------------- writes

    def add_event(
        self, t: float, kind: EventKind, job_id: str | None = None, value: int | None = None
    ) -> Event:
        cur = self._conn.execute(
            "INSERT INTO events (t, kind, job_id, value) VALUES (?, ?, ?, ?)", (t, kind, job_id, value)
        )
        assert cur.lastrowid is not None
        return Event(n=cur.lastrowid, t=t, kind=kind, job_id=job_id, value=value)

    def add_job(self, job: Job) -> None:
        self._conn.execute(
            f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES ({', '.join('?' * (len(_JOB_FIELDS) + 2))})",
            _job_row(job),
        )

    def add_upload(self, account: str, asset: Asset) -> int:
        assert asset.data is not None
        cur = self._conn.execute(
            "INSERT INTO uploads (id, account, mime_type, created_t, author_id, metadata, properties, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                asset.id,
                account,
                asset.mime_type,
                asset.created_t,
                asset.author_id,
                _dumps(asset.metadata),
                _dumps(asset.properties),
                asset.data,
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid


def _dumps(value: Any) -> str:
    # Python's float repr round-trips exactly and key order is kept (a job echoes its body as sent), so a
    # job read back from the file is equal to the one its creator holds, mesh key (hence GLB) included.
    return json.dumps(value, separators=(",", ":"))


def _job_row(job: Job) -> tuple[Any, ...]:
    row = [_dumps(getattr(job, n)) if n in _JSON_FIELDS else getattr(job, n) for n in _JOB_FIELDS]
    return (*row, *(job.error or (None, None)))


def _job(row: tuple[Any, ...]) -> Job:
    *values, message, hint = row
    pairs = zip(_JOB_FIELDS, values, strict=True)
    defining = {name: json.loads(v) if name in _JSON_FIELDS else v for name, v in pairs}
    return Job(**defining, error=(message, hint) if message is not None else None)
