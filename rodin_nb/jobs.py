"""The ``Run`` handle: one generation job, as the user sees it.

A Run is updated by the client's background engine (polling, downloads); user code only reads it,
waits on it (``run.wait()`` or ``await run``), or cancels it. Blocking waits use a
``concurrent.futures.Future`` completed by the engine, so they behave the same in a script, a notebook
cell and the CLI, and ``await run`` wraps the same future for the running event loop: no
``asyncio.run`` or ``nest_asyncio`` anywhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .api import TERMINAL_STATUSES, job_id_of, parse_time
from .errors import AssetError, JobCanceled, JobFailed, JobTimeout
from .meshstats import MESH_STAT_KEYS
from .schema import ModelSchema, RodinRequest
from .store import StoredFile

if TYPE_CHECKING:
    from .client import Client

__all__ = ["ACTIVE_STATUSES", "TERMINAL_STATUSES", "PollPolicy", "Run"]

# Local statuses wrap the service's eight: "submitting" before the job exists, "lost" when the service
# no longer knows a job we started (never silently re-submitted).
ACTIVE_STATUSES = frozenset({"submitting", "pending", "queued", "warming-up", "in-progress", "finalizing"})
RUNNING_STATUSES = frozenset({"warming-up", "in-progress", "finalizing"})


@dataclass(frozen=True)
class PollPolicy:
    """When to ask for a job's status next.

    While the job waits (no progress yet) the interval grows geometrically from ``first_s``. Once
    progress rises, the expected finish is extrapolated from it and the next poll lands halfway there,
    so polls get denser near the end and completion is noticed quickly without hammering the API.
    """

    first_s: float = 2.0
    min_s: float = 1.0
    max_s: float = 20.0
    growth: float = 1.6
    # Aim just past the expected finish: one poll sees the result when the estimate is right; an overdue
    # job is then followed by backing off from a share of its phase (see next_delay's ``base``).
    eta_fraction: float = 1.0

    @classmethod
    def for_sandbox(cls) -> PollPolicy:
        """The sandbox runs jobs in seconds, so its polls start and stay short."""
        return cls(first_s=0.05, min_s=0.02, max_s=2.0, growth=1.6)

    def next_delay(self, previous: float, eta_s: float | None, *, base: float = 0.0) -> float:
        """The wait before the next poll, given the last wait and the expected time to finish.

        ``base`` is where backing off restarts when a job outlives its estimate (a share of the phase
        it is in), so an overdue job is not polled at the minimum interval over and over.
        """
        if eta_s is not None and eta_s > 0:
            return min(self.max_s, max(self.min_s, eta_s * self.eta_fraction + self.min_s))
        if eta_s is not None:  # overdue: back off from a meaningful base, not from a tiny last delay
            previous = max(previous, base)
        return min(self.max_s, max(self.min_s, previous * self.growth))


def _new_run_id() -> str:
    return "run_" + uuid.uuid4().hex[:12]


class Run:
    """A generation job and its results.

    Attributes
    ----------
    run_id : local id (stable across restarts once the run log stores it).
    job_id : the service's job id, None until submitted.
    status : ``submitting``, the service's ``pending``/``queued``/``warming-up``/``in-progress``/
        ``finalizing``/``success``/``failure``/``canceled``, or ``lost``.
    progress : 0..1.
    cost : creative units billed (from the generate response or ``job.billing``).
    error, hint : the service's words when the job failed.
    files : local result files (GLB first, then the preview image), sha256-checked.
    """

    def __init__(
        self,
        client: Client | None,
        request: RodinRequest,
        *,
        run_id: str | None = None,
        model_id: str | None = None,
        sweep_id: str | None = None,
    ) -> None:
        self._client = client
        self.request = request
        self.run_id = run_id or _new_run_id()
        self.model_id = model_id or request.schema.model_id
        self.sweep_id = sweep_id
        self.job_id: str | None = None
        self.mesh_stats: dict[str, Any] | None = None
        self.status = "submitting"
        self.progress = 0.0
        self.cost: float | None = None
        self.error: str | None = None
        self.hint: str | None = None
        self.asset_ids: list[str] = []
        self.stored: list[StoredFile] = []
        self.download_error: str | None = None
        self.reattached = False
        self.not_found = 0  # consecutive 404s while following the job
        self.posting = False  # True once the generate call was made (an interruption is then ambiguous)
        self.submitted_at: datetime = datetime.now(timezone.utc)
        self.created_at: datetime | None = None
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self._lock = threading.RLock()
        self._future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._samples: list[tuple[float, float]] = []  # (monotonic time, progress) while running
        self._listeners: list[Callable[[Run], None]] = []
        self.poll_delay = 0.0
        self.errors_in_a_row = 0
        self.expected_s: float | None = None  # typical running time for this tier/quality (run log)
        self._phase_seen: dict[str, float] = {}  # status -> monotonic time we first saw it
        self._history: list[tuple[str, datetime]] = []  # the service's statusHistory
        # Set when another process was submitting this run: how to learn its job id, and until when.
        self.resolve_job_id: Callable[[Run, bool], str | None] | None = None
        self.follow_deadline = 0.0
        self._failure: Exception | None = None  # why the engine stopped following this run early

    # --- reading -------------------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Any]:
        return self.request.params

    @property
    def seed(self) -> int | None:
        return self.request.seed

    @property
    def done(self) -> bool:
        """True once the job ended and its files are downloaded (or failed to)."""
        return self._future.done()

    @property
    def files(self) -> list[Path]:
        return [item.path for item in self.stored]

    @property
    def glb(self) -> Path | None:
        return next((item.path for item in self.stored if item.path.suffix == ".glb"), None)

    @property
    def preview(self) -> Path | None:
        return next((item.path for item in self.stored if item.role == "preview"), None)

    @property
    def queue_s(self) -> float | None:
        if self.created_at and self.started_at:
            return (self.started_at - self.created_at).total_seconds()
        return None

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    def eta_s(self, finalize_s: float = 0.0) -> float | None:
        """Seconds until the job is expected to finish, or None when there is nothing to go on.

        While in progress: the progress rate (two samples or more) extrapolated to 1, plus
        ``finalize_s``, the typical finalizing time; without a rate, ``expected_s`` (the typical running
        time for this tier and quality, from the run log) scaled by the progress left. While
        finalizing: what is left of ``finalize_s``.
        """
        with self._lock:
            now = time.monotonic()
            if self.status == "finalizing":
                seen = self._phase_seen.get("finalizing", now)
                if not finalize_s:
                    # Nothing learned yet (the first jobs of a session): guess a tenth of the time it ran
                    # so far, so the end is checked at a pace that suits this job, not the last wait.
                    started = self._phase_seen.get("warming-up", self._phase_seen.get("in-progress", seen))
                    finalize_s = 0.1 * max(0.0, seen - started)
                return finalize_s - (now - seen) if finalize_s else None
            if self.status not in RUNNING_STATUSES:
                return None
            if len(self._samples) >= 2:
                (t0, p0), (t1, p1) = self._samples[0], self._samples[-1]
                if p1 > p0 and t1 > t0:
                    rate = (p1 - p0) / (t1 - t0)
                    return (1.0 - p1) / rate - (now - t1) + finalize_s
            if self.expected_s is None:
                return None
            if self._samples:
                t1, p1 = self._samples[-1]
                return (1.0 - p1) * self.expected_s - (now - t1)
            return self.expected_s - (now - self._phase_seen.get("warming-up", now))

    def phase_durations(self) -> dict[str, float]:
        """Seconds spent in each status, from the service's own ``statusHistory`` dates (no clock skew)."""
        with self._lock:
            history = list(self._history)
        out: dict[str, float] = {}
        for (status, start), (_, end) in itertools.pairwise(history):
            out[status] = out.get(status, 0.0) + max(0.0, (end - start).total_seconds())
        return out

    # --- waiting -------------------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> Run:
        """Block until the job ended and its files are on disk; return the run.

        Raises
        ------
        JobFailed : the job failed; ``error`` and ``hint`` carry the service's words.
        JobCanceled : the job was canceled.
        JobTimeout : ``timeout`` seconds passed; the job keeps running and can be waited on again.
        AssetError : the job succeeded but its files could not be downloaded.
        """
        try:
            self._future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise JobTimeout(
                f"run {self.run_id} (job {self.job_id}) still {self.status} after {timeout} s; it keeps "
                "running: call wait() again or re-attach later by its job id",
                self,
            ) from None
        self._raise_for_outcome()
        return self

    def __await__(self) -> Generator[Any, None, Run]:
        yield from asyncio.wrap_future(self._future).__await__()
        self._raise_for_outcome()
        return self

    def _raise_for_outcome(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self.status == "failure":
            raise JobFailed(
                f"job {self.job_id} failed: {self.error or 'no error message'}"
                + (f" (hint: {self.hint})" if self.hint else ""),
                self,
                error=self.error,
                hint=self.hint,
            )
        if self.status == "canceled":
            raise JobCanceled(f"job {self.job_id} was canceled", self)
        if self.status == "lost":
            reason = self.error or f"job {self.job_id} is no longer known to the service"
            raise JobFailed(f"run {self.run_id} is lost: {reason}", self, error=self.error, hint=self.hint)
        if self.download_error:
            raise AssetError(
                f"job {self.job_id} succeeded but its files could not be downloaded: "
                f"{self.download_error}; call run.wait() again after client.download(run)"
            )

    # --- acting --------------------------------------------------------------------------------------

    def cancel(self) -> bool:
        """Ask the service to cancel; return True if the job ends canceled.

        Whether Rodin jobs can be canceled is undocumented (contract §3.3): a refusal is not an error,
        the job is re-read and keeps running.
        """
        if self._client is None:
            raise RuntimeError("this run is not attached to a client")
        return self._client._cancel(self)

    def on_change(self, callback: Callable[[Run], None]) -> None:
        """Call ``callback(run)`` (from the engine thread) after every change."""
        with self._lock:
            self._listeners.append(callback)

    # --- updates from the engine ---------------------------------------------------------------------

    def _notify(self) -> None:
        for callback in list(self._listeners):
            try:
                callback(self)
            except Exception:  # a broken listener must not stop the engine
                import logging

                logging.getLogger("rodin_nb.jobs").exception("run listener failed")

    def _apply_job(self, job: Mapping[str, Any]) -> None:
        """Take the service's view of the job (from generate, get or list)."""
        with self._lock:
            self.job_id = job_id_of(job)
            status = str(job.get("status") or self.status)
            progress = job.get("progress")
            if isinstance(progress, (int, float)):
                # Progress is 0..1 (contract §3.1); a percentage would be a service change worth surviving.
                self.progress = float(progress) / 100.0 if progress > 1.0 else float(progress)
            if status == "success":
                self.progress = 1.0
            self.status = status
            self.created_at = parse_time(job.get("createdAt")) or self.created_at
            for entry in job.get("statusHistory") or []:
                when = parse_time(entry.get("date"))
                if entry.get("status") in RUNNING_STATUSES and when and self.started_at is None:
                    self.started_at = when
                if entry.get("status") in TERMINAL_STATUSES and when:
                    self.finished_at = when
            if status in TERMINAL_STATUSES and self.finished_at is None:
                self.finished_at = parse_time(job.get("updatedAt")) or datetime.now(timezone.utc)
            metadata = job.get("metadata") or {}
            self.asset_ids = [str(a) for a in metadata.get("assetIds") or []] or self.asset_ids
            self.error = metadata.get("error") or self.error
            self.hint = metadata.get("hint") or self.hint
            billing = job.get("billing") or {}
            if isinstance(billing.get("cuCost"), (int, float)):
                self.cost = float(billing["cuCost"])
            self._phase_seen.setdefault(status, time.monotonic())
            if status in RUNNING_STATUSES:
                self._phase_seen.setdefault("warming-up", time.monotonic())
            history = [
                (str(e.get("status")), parse_time(e.get("date"))) for e in job.get("statusHistory") or []
            ]
            self._history = [(name, when) for name, when in history if when is not None] or self._history
            if status == "in-progress":
                self._samples.append((time.monotonic(), self.progress))
                del self._samples[1:-8]  # first sample plus the recent ones are enough for a rate
        self._notify()

    def _finish(self) -> None:
        if not self._future.done():
            self._future.set_result(None)
        self._notify()

    def _abort(self, error: Exception) -> None:
        """Stop following the run (the job may still run on the service); wait() raises ``error``."""
        with self._lock:
            self._failure = error
            self.error = str(error)
        self._finish()

    def _rearm(self) -> None:
        """Make ``wait()`` wait again (a re-download of a finished run is under way)."""
        with self._lock:
            if self._future.done():
                self._future = concurrent.futures.Future()
            self.download_error = None
            self._failure = None

    def _detach(self, error: Exception) -> None:
        """Release waiters without recording anything: the run is still what the log says it is."""
        with self._lock:
            self._failure = error
        if not self._future.done():
            self._future.set_result(None)
        self._notify()  # a sweep waiting on this run must hear that it will not hear more

    def _refused(self, message: str, hint: str) -> None:
        """The submission failed before any job existed: the run ended as a failure, nothing billed."""
        with self._lock:
            self.status = "failure"
            self.error = message
            self.hint = hint
        self._finish()

    def _mark_lost(self, message: str) -> None:
        with self._lock:
            self.status = "lost"
            self.error = message
        self._finish()

    @classmethod
    def from_row(cls, client: Client | None, row: Mapping[str, Any], schema: ModelSchema) -> Run:
        """Rebuild a run from its run-log row (after a restart, or in another process)."""
        run = cls(
            client,
            RodinRequest.logged(schema, row["params"]),
            run_id=row["run_id"],
            model_id=row["model_id"],
            sweep_id=row.get("sweep_id"),
        )
        run.job_id = row.get("job_id")
        run.status = row["status"]
        run.progress = float(row.get("progress") or 0.0)
        run.cost = row.get("cost")
        run.error, run.hint = row.get("error"), row.get("hint")
        run.asset_ids = list(row.get("asset_ids") or [])
        run.submitted_at = parse_time(row.get("submitted_at")) or run.submitted_at
        run.created_at = parse_time(row.get("created_at"))
        run.started_at = parse_time(row.get("started_at"))
        run.finished_at = parse_time(row.get("finished_at"))
        if row.get("faces") is not None:
            run.mesh_stats = {key: row.get(key) for key in MESH_STAT_KEYS}
        return run

    # --- display ----

    def show(self, **options: Any) -> Any:
        """An inline 3D view of the result (pythreejs); see :func:`rodin_nb.show` for the options."""
        from .viewer import show

        return show(self, **options)

    def _repr_html_(self) -> str:
        from .reprs import run_html

        return run_html(self)

    def __repr__(self) -> str:
        parts = [f"run_id={self.run_id!r}", f"status={self.status!r}"]
        if self.status in ACTIVE_STATUSES:
            parts.append(f"progress={self.progress:.0%}")
        if self.job_id:
            parts.append(f"job_id={self.job_id!r}")
        parts.append(f"seed={self.seed}")
        parts.append(f"tier={self.params.get('tier')!r}")
        if self.cost is not None:
            parts.append(f"cost={self.cost:g}")
        if self.glb:
            parts.append(f"glb={str(self.glb)!r}")
        if self.error:
            parts.append(f"error={self.error!r}")
        return f"Run({', '.join(parts)})"
