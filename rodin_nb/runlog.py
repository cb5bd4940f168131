"""The run log: one SQLite row per run, in the workspace, shared safely by kernels and the CLI.

Why SQLite (stdlib ``sqlite3``) in WAL mode: rows are written when a job is submitted and at every
change, from the engine thread of several processes at once; WAL lets readers (``log.df`` in another
kernel) run while a writer commits, and ``BEGIN IMMEDIATE`` makes "is this request already paid for?
if not, claim it" one atomic step across processes, which is what prevents paying twice.

The request parameters are stored as their wire JSON (the source of truth, robust to new model inputs)
and expanded into one column per parameter by :attr:`RunLog.df`. Never stored: URLs (they expire) and
credentials. The schema is versioned with ``PRAGMA user_version`` and upgraded by :data:`MIGRATIONS`.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._sqlite import open_shared
from ._version import __version__
from .columns import JSON_COLUMNS
from .errors import ConfigError, NotInLogError
from .meshstats import MESH_STAT_KEYS
from .status import ACTIVE as ACTIVE_STATUSES
from .status import REUSABLE as REUSABLE_STATUSES

if TYPE_CHECKING:
    import pandas as pd

    from .client import Client
    from .jobs import Run

__all__ = ["ACTIVE", "LOG_FILE", "MIGRATIONS", "SCHEMA_VERSION", "LogStamp", "RunLog", "default_workspace"]

LOG_FILE = "runs.sqlite"
ACTIVE = tuple(sorted(ACTIVE_STATUSES))  # the one list lives in status.py
REUSABLE = tuple(sorted(REUSABLE_STATUSES))

# The runs table; which columns hold JSON or times, and log.df's column order: rodin_nb/columns.py.
_V1 = """
CREATE TABLE runs (
    run_id           TEXT PRIMARY KEY,
    sweep_id         TEXT,
    backend          TEXT NOT NULL,
    service          TEXT NOT NULL,
    model_id         TEXT NOT NULL,
    params           TEXT NOT NULL,
    params_hash      TEXT NOT NULL,
    seed             INTEGER,
    status           TEXT NOT NULL,
    progress         REAL NOT NULL DEFAULT 0,
    job_id           TEXT,
    cost             REAL,
    submitted_at     TEXT NOT NULL,
    created_at       TEXT,
    started_at       TEXT,
    finished_at      TEXT,
    updated_at       TEXT NOT NULL,
    queue_s          REAL,
    duration_s       REAL,
    asset_ids        TEXT NOT NULL DEFAULT '[]',
    files            TEXT NOT NULL DEFAULT '[]',
    sha256           TEXT NOT NULL DEFAULT '[]',
    faces            INTEGER,
    vertices         INTEGER,
    bbox             TEXT,
    textures         TEXT,
    error            TEXT,
    hint             TEXT,
    reuse            INTEGER NOT NULL DEFAULT 1,
    owner            TEXT,
    rodin_nb_version TEXT NOT NULL
);
CREATE INDEX runs_request ON runs (model_id, service, params_hash);
CREATE INDEX runs_status ON runs (status);
CREATE UNIQUE INDEX runs_job ON runs (job_id) WHERE job_id IS NOT NULL;
"""

# Version 2: sweeps, so an interrupted sweep can be reopened by id with the very requests (and seeds)
# it planned; and uploads, so a picture is uploaded once per service whichever process asks first.
_V2 = """
CREATE TABLE sweeps (
    sweep_id    TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    model_id    TEXT NOT NULL,
    service     TEXT NOT NULL,
    plan        TEXT NOT NULL,
    budget      REAL,
    concurrency INTEGER,
    estimate    REAL
);
CREATE INDEX runs_sweep ON runs (sweep_id);
CREATE TABLE uploads (
    service     TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    asset_id    TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    PRIMARY KEY (service, sha256)
);
"""

# Version 3: an index on updated_at, so RunLog.changed_since() (the log browser's incremental refresh)
# reads only the rows changed since its last look instead of scanning the table.
_V3 = """
CREATE INDEX runs_updated ON runs (updated_at);
"""

# MIGRATIONS[i] upgrades a log at version i to version i + 1. Version 0 is an empty file.
MIGRATIONS: list[str] = [_V1, _V2, _V3]
SCHEMA_VERSION = len(MIGRATIONS)


# Which process (and which RunLog in it) wrote a row, as "host:pid:token": lets a resuming client tell a
# crashed or closed submitter from one that is merely slow.
_LIVE_TOKENS: set[str] = set()


# Write listeners by log file, shared by every RunLog on that file in this process: a browser opened on
# rn.RunLog(path) hears the runs a client's own client.log writes.
_WRITE_LISTENERS: dict[str, list[Callable[[str], None]]] = {}
_WRITE_LISTENERS_LOCK = threading.Lock()


def owner_alive(owner: str | None) -> bool | None:
    """True/False for a submitter on this host; None when it ran on another host (cannot tell)."""
    parts = (owner or "").rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    host, pid, token = parts[0], int(parts[1]), parts[2]
    if host != socket.gethostname():
        return None
    if pid == os.getpid():
        return token in _LIVE_TOKENS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def default_workspace() -> Path:
    return Path(os.environ.get("RODIN_NB_HOME") or "rodin_runs")


def _reusable(
    conn: sqlite3.Connection, service: str, model_id: str, params_hash: str
) -> dict[str, Any] | None:
    """A paid-for run of this request: a success first, else the newest still running."""
    row = conn.execute(
        f"SELECT * FROM runs WHERE model_id=? AND service=? AND params_hash=? "
        f"AND status IN ({','.join('?' * len(REUSABLE))}) ORDER BY status='success' DESC, "
        "submitted_at DESC LIMIT 1",
        (model_id, service, params_hash, *REUSABLE),
    ).fetchone()
    return _decode(row) if row is not None else None


@dataclass(frozen=True)
class LogStamp:
    """How far a reader of :meth:`RunLog.changed_since` has read; pass it back to read what changed next.

    ``updated_at`` is the newest ``updated_at`` read so far (None: nothing read yet). ``version`` is
    ``(PRAGMA data_version, total_changes)`` of the log's connection when it was read: the first counts
    commits by other connections (other processes), the second this connection's own writes (a client's
    engine writes through the very connection a browser in the same kernel reads), so an equal version
    means nothing changed and no query is needed.
    """

    updated_at: str | None
    version: tuple[int, int]


def _write_stamp(conn: sqlite3.Connection) -> str:
    """``updated_at`` for a write, called inside its write transaction: strictly after every stamp in
    the table (the clock's time, else the newest stamp plus one microsecond).

    Writers are serialised by ``BEGIN IMMEDIATE``, so stamps then grow in commit order across threads
    and processes, whatever the clocks do (equal milliseconds, a clock set back, another host). That is
    what lets :meth:`RunLog.changed_since` ask for ``updated_at > last stamp`` and read each change once:
    no equal stamps to read twice or to miss. Microseconds, so a burst of writes barely runs ahead of the
    clock; older rows' millisecond stamps sort consistently with them (``.123+00:00`` < ``.123001+00:00``).
    """
    now = datetime.now(timezone.utc)
    newest = conn.execute("SELECT max(updated_at) FROM runs").fetchone()[0]  # the index: one lookup
    if newest is not None:
        floor = datetime.fromisoformat(newest) + timedelta(microseconds=1)
        now = max(now, floor)
    return now.isoformat(timespec="microseconds")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds") if moment else None


class RunLog:
    """Every run of a workspace, as SQLite rows and as a pandas DataFrame.

    ``rn.RunLog("rodin_runs")`` opens a workspace for analysis without a client or credentials;
    ``client.log`` is the same object bound to a client, which adds :meth:`rerun`.
    """

    def __init__(
        self,
        workspace: str | os.PathLike[str] | None = None,
        *,
        client: Client | None = None,
        create: bool | None = None,
    ) -> None:
        """Open the run log of ``workspace``.

        A client's log is created on first use; opened for analysis (no client) a log must already exist,
        so a mistyped folder is an error rather than a new, empty log. ``create`` overrides either way.
        """
        self.workspace = Path(workspace) if workspace is not None else default_workspace()
        self.path = self.workspace / LOG_FILE
        if not (client is not None if create is None else create) and not self.path.is_file():
            raise ConfigError(
                f"no run log in {self.workspace} (no {LOG_FILE} there): nothing has run in that folder; "
                "check the path, or create a log with rn.connect(workspace=...)"
            )
        self._client = client
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._empty_frame: pd.DataFrame | None = None  # changed_since()'s answer when nothing changed
        self._listeners_key = str(self.path.resolve())
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        _LIVE_TOKENS.add(self.owner.rsplit(":", 1)[1])
        # The connection this log opens, in a holder the finalizer can reach without the log: a RunLog
        # opened for a one-line analysis (``rn.RunLog(path).df``) and dropped still closes its file.
        self._opened: list[sqlite3.Connection] = []
        self._finalizer = weakref.finalize(self, _release, self._opened, self.owner.rsplit(":", 1)[1])

    def __repr__(self) -> str:
        if self._closed:
            return f"RunLog({str(self.workspace)!r}, closed)"
        return f"RunLog({str(self.workspace)!r}, runs={self.count()})"

    @property
    def client(self) -> Client | None:
        """The client this log belongs to (``client.log``), or None for a log opened for analysis."""
        return self._client

    # --- connection and schema -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise ConfigError(
                    f"the run log of {self.workspace} is closed (close() was called, or its client was "
                    f"closed); open it again with rn.RunLog({str(self.workspace)!r}) or rn.connect()"
                )
            if self._conn is None:
                self.workspace.mkdir(parents=True, exist_ok=True)
                # One connection shared by this process's threads under a lock; other processes have their
                # own and SQLite's file locks (with a generous busy timeout) serialise the writers.
                conn = open_shared(self.path)
                try:
                    conn.row_factory = sqlite3.Row
                    self._migrate(conn)
                except BaseException:
                    conn.close()  # a log this version cannot read: nothing stays open
                    raise
                self._conn = conn
                self._opened.append(conn)
            return self._conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path} was written by a newer rodin_nb (log version {version}, this one reads up "
                    f"to {SCHEMA_VERSION}); upgrade rodin_nb to open it"
                )
            for step in range(version, SCHEMA_VERSION):
                # Statement by statement: executescript() would commit the open transaction first.
                for statement in _statements(MIGRATIONS[step]):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One immediate (write-locked) transaction, so check-then-insert is atomic across processes."""
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close the log's SQLite connection; reading or writing afterwards raises ConfigError.

        A client closes its log; a log opened for analysis is closed by this, by a ``with`` block, or
        when it is garbage-collected.
        """
        with self._lock:
            self._closed = True
            self._conn = None
            self._finalizer()  # closes the connection and retires the owner token, once

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------------------

    def claim(self, row: Mapping[str, Any], *, reuse: bool) -> dict[str, Any] | None:
        """Insert a new run row, unless (with ``reuse``) an identical request is already paid for.

        Returns the existing row that answers the request, or None when ``row`` was inserted. Atomic
        across processes: two kernels asking for the same request create one row, hence one job.
        """
        with self._write() as conn:
            if reuse:
                existing = _reusable(conn, row["service"], row["model_id"], row["params_hash"])
                if existing is not None:
                    return existing
            values = {
                "owner": self.owner,
                **row,
                "updated_at": _write_stamp(conn),
                "rodin_nb_version": __version__,
                "reuse": int(reuse),
            }
            columns = ", ".join(values)
            conn.execute(
                f"INSERT INTO runs ({columns}) VALUES ({', '.join('?' * len(values))})",
                [_encode(name, value) for name, value in values.items()],
            )
        self._wrote(str(row["run_id"]))
        return None

    def find_reusable(self, service: str, model_id: str, params_hash: str) -> dict[str, Any] | None:
        """The row that already answers this request (succeeded, or still running), if any."""
        with self._lock:
            return _reusable(self._connect(), service, model_id, params_hash)

    def update(self, run_id: str, *, unless_job: bool = False, **fields: Any) -> bool:
        """Write ``fields`` to a run's row; returns whether a row was written.

        With ``unless_job`` only a row that holds no job id is written, in the same transaction as the
        check: a process settling a submission as never created cannot overwrite the job another
        process (or another thread) has recorded for it meanwhile.
        """
        if not fields:
            return False
        with self._write() as conn:
            fields["updated_at"] = _write_stamp(conn)  # inside the lock: see _write_stamp
            assignments = ", ".join(f"{name}=?" for name in fields)
            where = "run_id=? AND job_id IS NULL" if unless_job else "run_id=?"
            cursor = conn.execute(
                f"UPDATE runs SET {assignments} WHERE {where}",
                [*(_encode(name, value) for name, value in fields.items()), run_id],
            )
            written = cursor.rowcount > 0
        if written:
            self._wrote(run_id)
        return written

    def on_write(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(run_id)`` after each run row written to this log file in this process is
        committed (by this RunLog or another one on the same file, e.g. a client's ``client.log``).

        Called on the writing thread (the engine's, for run updates), after the log's lock is released;
        a callback must be quick, must not raise, and must not print or display (set widget traits, or
        hand the work to another thread). Writes by other processes are not heard: read them with
        :meth:`changed_since`.
        """
        with _WRITE_LISTENERS_LOCK:
            _WRITE_LISTENERS.setdefault(self._listeners_key, []).append(callback)

    def off_write(self, callback: Callable[[str], None]) -> None:
        """Stop calling a callback given to :meth:`on_write` (no error if it was not there)."""
        with _WRITE_LISTENERS_LOCK:
            listeners = _WRITE_LISTENERS.get(self._listeners_key, [])
            if callback in listeners:
                listeners.remove(callback)

    def _wrote(self, run_id: str) -> None:
        with _WRITE_LISTENERS_LOCK:
            listeners = list(_WRITE_LISTENERS.get(self._listeners_key, []))
        for callback in listeners:
            # A broken listener must not fail a write that already committed (nor stop the engine).
            with suppress(Exception):
                callback(run_id)

    def record(self, run: Run) -> None:
        """Write a run's current state (called on every change, from the engine thread).

        A run that knows no job never overwrites a row that holds one: a job id, once recorded by any
        process, stays (else a search ending "not submitted" just after another process found the job
        would orphan a paid job).
        """
        self.update(run.run_id, unless_job=run.job_id is None, **run_fields(run))

    # --- uploads -------------------------------------------------------------------------------------

    def uploaded_asset(self, service: str, sha256: str) -> str | None:
        """The asset id a picture with this content hash was uploaded as, on this service."""
        with self._lock:
            row = (
                self._connect()
                .execute("SELECT asset_id FROM uploads WHERE service=? AND sha256=?", (service, sha256))
                .fetchone()
            )
        return str(row[0]) if row else None

    def record_upload(self, service: str, sha256: str, asset_id: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO uploads (service, sha256, asset_id, uploaded_at) VALUES (?, ?, ?, ?)",
                (service, sha256, asset_id, _now()),
            )

    def forget_upload(self, service: str, sha256: str, asset_id: str) -> None:
        """Drop a remembered upload the service no longer has (only that id: another process may
        already have recorded a fresh one)."""
        with self._write() as conn:
            conn.execute(
                "DELETE FROM uploads WHERE service=? AND sha256=? AND asset_id=?", (service, sha256, asset_id)
            )

    # --- sweeps --------------------------------------------------------------------------------------

    def save_sweep(
        self,
        sweep_id: str,
        *,
        model_id: str,
        service: str,
        plan: list[dict[str, Any]],
        budget: float | None = None,
        concurrency: int | None = None,
        estimate: float | None = None,
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO sweeps (sweep_id, created_at, model_id, service, plan, budget, concurrency, "
                "estimate) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sweep_id) DO UPDATE SET "
                "budget=excluded.budget, concurrency=excluded.concurrency, "
                "estimate=coalesce(excluded.estimate, sweeps.estimate)",
                (
                    sweep_id,
                    _now(),
                    model_id,
                    service,
                    json.dumps(plan, sort_keys=True),
                    budget,
                    concurrency,
                    estimate,
                ),
            )

    def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        with self._lock:
            row = self._connect().execute("SELECT * FROM sweeps WHERE sweep_id=?", (sweep_id,)).fetchone()
        if row is None:
            raise NotInLogError(
                f"no sweep {sweep_id!r} in {self.path}; the sweeps there are listed by RunLog.sweeps() "
                "(or `rodin-nb log --sweeps`)"
            )
        out = dict(row)
        out["plan"] = json.loads(out["plan"])
        return out

    def sweeps(self) -> list[dict[str, Any]]:
        """One entry per sweep: id, creation time, budget, expected cost of the whole sweep (``estimate``),
        creative units its own runs were billed (``spent``) and its number of planned runs."""
        with self._lock:
            rows = (
                self._connect()
                .execute(
                    "SELECT sweep_id, created_at, budget, estimate, plan, (SELECT coalesce(sum(cost), 0) "
                    "FROM runs WHERE runs.sweep_id = sweeps.sweep_id) AS spent FROM sweeps "
                    "ORDER BY created_at"
                )
                .fetchall()
            )
        out = []
        for row in rows:
            entry = dict(row)
            entry["runs"] = len(json.loads(entry.pop("plan")))  # the plan itself: get_sweep(sweep_id)
            out.append(entry)
        return out

    # --- reading -------------------------------------------------------------------------------------

    def get(self, run_id: str) -> dict[str, Any]:
        with self._lock:
            row = self._connect().execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            raise NotInLogError(f"no run {run_id!r} in {self.path} (run ids are the log's index: log.df)")
        return _decode(row)

    def rows(self, where: str = "1=1", params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._connect().execute(
                f"SELECT * FROM runs WHERE {where} ORDER BY submitted_at", params
            )
            return [_decode(row) for row in cursor.fetchall()]

    def recent_durations(
        self, service: str, model_id: str, params: Mapping[str, Any], limit: int = 25
    ) -> list[float]:
        """Running times of the latest successful runs with the same tier and quality."""
        with self._lock:
            cursor = self._connect().execute(
                "SELECT duration_s FROM runs WHERE status='success' AND service=? AND model_id=? "
                "AND duration_s IS NOT NULL AND json_extract(params, '$.tier') IS ? "
                "AND json_extract(params, '$.quality') IS ? ORDER BY finished_at DESC LIMIT ?",
                (service, model_id, params.get("tier"), params.get("quality"), limit),
            )
            return [float(row[0]) for row in cursor.fetchall()]

    def job_ids(self, service: str) -> set[str]:
        """Every job id recorded for this service (reconciliation never takes one of them)."""
        with self._lock:
            cursor = self._connect().execute(
                "SELECT job_id FROM runs WHERE service=? AND job_id IS NOT NULL", (service,)
            )
            return {str(row[0]) for row in cursor.fetchall()}

    def unfinished(self, *, service: str | None = None, model_id: str | None = None) -> list[dict[str, Any]]:
        where = f"status IN ({','.join('?' * len(ACTIVE))})"
        params: list[Any] = list(ACTIVE)
        if service is not None:
            where += " AND service=?"
            params.append(service)
        if model_id is not None:
            where += " AND model_id=?"
            params.append(model_id)
        return self.rows(where, params)

    def count(self) -> int:
        if not self.path.exists():
            return 0
        with self._lock:
            return int(self._connect().execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    @property
    def df(self) -> pd.DataFrame:
        """One row per run: parameters under their wire names, proper dtypes (UTC timestamps, categories)."""
        from .logframe import load_frame

        with self._lock:
            return load_frame(self._connect())

    def changed_since(self, stamp: LogStamp | None = None) -> tuple[pd.DataFrame, LogStamp]:
        """The rows written since ``stamp`` (every row when None), as ``log.df`` rows, and the next stamp.

        Rows come through the same decoding as :attr:`df` (same columns and dtypes), so a reader keeps a
        frame and upserts them by ``run_id``. When nothing was committed since ``stamp`` (its version is
        unchanged) no query runs and the frame is empty.

        Why a time and not a counter column: every write stamps ``updated_at`` inside its write lock,
        strictly after every stamp already there (:func:`_write_stamp`), so ``updated_at > stamp`` reads
        each change exactly once (no equal stamps: nothing read twice, nothing missed), needs no new
        column, and the index of schema version 3 makes it touch only the changed rows.
        """
        from .logframe import load_changed

        with self._lock:
            conn = self._connect()
            # Read the version before the rows: a commit in between changes it, so the next call looks
            # again rather than missing that commit.
            version = (int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes)
            if stamp is not None and stamp.version == version and self._empty_frame is not None:
                return self._empty_frame.copy(), stamp
            frame, newest = load_changed(conn, stamp.updated_at if stamp is not None else None)
            self._empty_frame = frame.iloc[:0]
        if newest is None and stamp is not None:
            newest = stamp.updated_at  # nothing matched: keep the old mark
        return frame, LogStamp(newest, version)

    # --- analysis ------------------------------------------------------------------------------------

    def diff(self, a: Any, b: Any) -> pd.DataFrame:
        """Only the fields that differ between two runs (parameters and mesh statistics), side by side."""
        from .logframe import diff_rows

        return diff_rows(self.get(_run_id_of(a)), self.get(_run_id_of(b)))

    def rerun(self, run_id: Any, **changes: Any) -> Run:
        """Submit the logged request again with some parameters changed (needs ``client.log``)."""
        if self._client is None:
            raise ConfigError("rerun needs a client: use client.log.rerun(...) (rn.RunLog is read-only)")
        row = self.get(_run_id_of(run_id))
        params = {**row["params"], **changes}
        return self._client.generate(**params)

    def export(self, path: str | os.PathLike[str]) -> Path:
        """Write the log to ``.parquet``, ``.csv`` or ``.json`` (chosen by the suffix); returns the path."""
        from .logframe import export_frame

        return export_frame(self.df, Path(path))

    def _repr_html_(self) -> str:
        if self._closed:
            import html

            return f"<code>{html.escape(repr(self))}</code>"
        from .reprs import log_html

        return log_html(self)


def _release(opened: list[sqlite3.Connection], token: str) -> None:
    """Close a RunLog's connection and mark its owner token dead (at close() or garbage collection)."""
    _LIVE_TOKENS.discard(token)
    while opened:
        opened.pop().close()


def run_fields(run: Run) -> dict[str, Any]:
    """The columns a Run's state maps to (everything that changes after submission)."""
    return {
        "status": run.status,
        "progress": run.progress,
        "job_id": run.job_id,
        "cost": run.cost,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "queue_s": run.queue_s,
        "duration_s": run.duration_s,
        "asset_ids": run.asset_ids,
        "files": [_relative(item.path, run) for item in run.stored],
        "sha256": [item.sha256 for item in run.stored],
        "error": run.download_error or run.error,
        "hint": run.hint,
        **({key: run.mesh_stats.get(key) for key in MESH_STAT_KEYS} if run.mesh_stats else {}),
    }


def _relative(path: Path, run: Run) -> str:
    """Files are stored relative to the workspace so a moved or shared workspace stays valid."""
    workspace = run._client.workspace if run._client is not None else None
    if workspace is not None:
        try:
            return str(path.relative_to(workspace))
        except ValueError:
            pass
    return str(path)


def _run_id_of(value: Any) -> str:
    return str(getattr(value, "run_id", value))


# json.dumps(value, sort_keys=True) builds a new JSONEncoder at every call (only the default options
# share a cached one): on the recording path that was a visible part of a write. One encoder, the same text.
_json_text = json.JSONEncoder(sort_keys=True).encode
_JSON_COLUMN_SET = frozenset(JSON_COLUMNS)


def _encode(name: str, value: Any) -> Any:
    if name in _JSON_COLUMN_SET and value is not None:
        return _json_text(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for name in JSON_COLUMNS:
        if out.get(name) is not None:
            out[name] = json.loads(out[name])
    return out


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]
