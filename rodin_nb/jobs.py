"""The ``Run`` handle: one generation job, as the user sees it.

A Run is a thin handle: what the service said about the job (status, progress, cost, errors), the local
files, and ways to wait on it (``run.wait()`` or ``await run``) or cancel it. The engine's bookkeeping
(poll delays, error counts, deadlines, progress samples) lives in the engine's own record of the run
(:mod:`rodin_nb.engine`), and how the job came to exist in the submission protocol
(:mod:`rodin_nb.submit`). Blocking waits use a ``concurrent.futures.Future`` completed by the engine, so
they behave the same in a script, a notebook cell and the CLI, and ``await run`` wraps the same future
for the running event loop: no ``asyncio.run`` or ``nest_asyncio`` anywhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import uuid
from collections.abc import Callable, Generator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .api import job_id_of, parse_time
from .errors import AssetError, JobCanceled, JobFailed, JobTimeout
from .meshstats import MESH_STAT_KEYS
from .schema import ModelSchema, RodinRequest
from .status import ACTIVE, RUNNING, TERMINAL, Status, parse_status
from .store import StoredFile

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Run"]

log = logging.getLogger("rodin_nb.jobs")


def _new_run_id() -> str:
    return "run_" + uuid.uuid4().hex[:12]


class Run:
    """A generation job and its results.

    Attributes
    ----------
    run_id : local id (stable across restarts once the run log stores it).
    job_id : the service's job id, None until submitted.
    status : one of :data:`rodin_nb.status.Status`: ``submitting``, the service's ``pending``/``queued``/
        ``warming-up``/``in-progress``/``finalizing``, ``downloading`` (the job succeeded, its files are
        on their way), ``success`` (files on disk), ``failure``, ``canceled``, ``not-submitted`` (no job
        was created, nothing billed) or ``lost``.
    progress : 0..1.
    cost : creative units billed (from the generate response or ``job.billing``).
    error, hint : the service's words when the job failed (or why it was not submitted).
    files : local result files (GLB first, then the preview image), sha256-checked.
    reattached : True when this run was found on the service (after a lost answer, or by ``attach``)
        rather than created by an answered generate call.
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
        self.status: Status = "submitting"
        self.progress = 0.0
        self.cost: float | None = None
        self.error: str | None = None
        self.hint: str | None = None
        self.asset_ids: list[str] = []
        self.stored: list[StoredFile] = []
        self.download_error: str | None = None
        self.reattached = False
        self.submitted_at: datetime = datetime.now(timezone.utc)
        self.created_at: datetime | None = None
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.status_history: list[tuple[str, datetime]] = []  # the service's statusHistory
        self._lock = threading.RLock()
        self._future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._ended = False  # set before listeners hear the end, so they (the run log) see it as done
        self._listeners: list[Callable[[Run], None]] = []
        self._failure: BaseException | None = None  # what wait() raises when following ended early

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
        return self._ended

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

    # --- waiting -------------------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> Run:
        """Block until the job ended and its files are on disk; return the run.

        Raises
        ------
        JobFailed : the job failed; ``error`` and ``hint`` carry the service's words.
        JobCanceled : the job was canceled.
        JobTimeout : ``timeout`` seconds passed; the job keeps running and can be waited on again.
        AssetError : the job succeeded but its files could not be downloaded (the run stays
            ``downloading``; ``client.download(run)`` or ``client.resume()`` fetches them again).
        APIError : the run ended ``not-submitted``: the service refused the request, or failed to
            create the job (nothing was created or billed); the error is the service's answer.
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
        if self.status == "not-submitted":
            reason = self.error or "no job was created"
            raise JobFailed(
                f"run {self.run_id} was not submitted: {reason}", self, error=self.error, hint=self.hint
            )
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
                log.exception("run listener failed")

    def _apply_job(self, job: Mapping[str, Any]) -> None:
        """Take the service's view of the job (from generate, get or list)."""
        with self._lock:
            self.job_id = job_id_of(job)
            current = self.status if self.status in ACTIVE else "pending"
            status = parse_status(job.get("status"), current=current)
            progress = job.get("progress")
            if isinstance(progress, (int, float)):
                # Progress is 0..1 (contract §3.1); a percentage would be a service change worth surviving.
                self.progress = float(progress) / 100.0 if progress > 1.0 else float(progress)
            if status == "success":
                self.progress = 1.0
                # Success is claimed only with the files on disk: until then the run is downloading.
                status = "success" if self.stored and not self.download_error else "downloading"
            self.status = status
            self.created_at = parse_time(job.get("createdAt")) or self.created_at
            history = [
                (parse_status(e.get("status"), current="pending"), parse_time(e.get("date")))
                for e in job.get("statusHistory") or []
                if isinstance(e, Mapping)
            ]
            self.status_history = [(name, when) for name, when in history if when] or self.status_history
            for name, when in self.status_history:
                if name in RUNNING and self.started_at is None:
                    self.started_at = when
                if name in ("success", "failure", "canceled"):
                    self.finished_at = when
            if status in TERMINAL | {"downloading"} and self.finished_at is None:
                self.finished_at = parse_time(job.get("updatedAt")) or datetime.now(timezone.utc)
            metadata = job.get("metadata") or {}
            self.asset_ids = [str(a) for a in metadata.get("assetIds") or []] or self.asset_ids
            self.error = metadata.get("error") or self.error
            self.hint = metadata.get("hint") or self.hint
            billing = job.get("billing") or {}
            if isinstance(billing.get("cuCost"), (int, float)):
                self.cost = float(billing["cuCost"])
        self._notify()

    def _downloaded(self, stored: list[StoredFile], mesh_stats: dict[str, Any] | None) -> None:
        """Every file is on disk: the run is a success, and errors of earlier attempts are history."""
        with self._lock:
            self.stored = stored
            self.mesh_stats = mesh_stats or self.mesh_stats
            self.status = "success"
            self.progress = 1.0
            self.download_error = self.error = self.hint = None
        self._finish()

    def _download_failed(self, message: str) -> None:
        """The files could not be fetched: still ``downloading`` (resume() tries again); wait() raises."""
        with self._lock:
            self.status = "downloading"
            self.download_error = message
        self._finish()

    def _finish(self) -> None:
        """The run ended (or following it did): listeners hear it first, then waiters are released, so
        whoever returns from wait() finds the run log already saying how it ended."""
        with self._lock:
            self._ended = True
        self._notify()
        if not self._future.done():
            self._future.set_result(None)

    def _abort(self, error: BaseException) -> None:
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
            self._ended = False
            if self.status == "success":
                self.status = "downloading"
            self.download_error = None
            self._failure = None

    def _detach(self, error: Exception) -> None:
        """Release waiters without recording anything: the run is still what the log says it is."""
        with self._lock:
            self._failure = error
        self._finish()  # a sweep waiting on this run must hear that it will not hear more

    def _end(self, status: Status, message: str, hint: str | None, cause: BaseException | None) -> None:
        """End a run that has no job to follow (``not-submitted`` or ``lost``); wait() raises ``cause``."""
        with self._lock:
            self.status = status
            self.error = message
            self.hint = hint
            self._failure = cause
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
        status = row["status"]
        run.status = status if status in ACTIVE | TERMINAL else parse_status(status)
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

    def card(self) -> Any:
        """A live widget following this run (:class:`rodin_nb.runcard.RunCard`): status, progress, then
        the 3D view. This is what a run shows as a notebook cell's output."""
        from .runcard import RunCard

        return RunCard(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, Any]:
        """In a Jupyter kernel: a live card, plus a static HTML fallback (preview image and stats) and the
        repr for pages without widgets (nbconvert HTML, GitHub). Elsewhere (a terminal IPython, a
        script): only the static HTML and the repr; no widgets are made and nothing starts following."""
        from .progress import in_notebook
        from .reprs import run_html

        if in_notebook():
            bundle = self.card()._repr_mimebundle_(include=include, exclude=exclude, **kwargs)
            if isinstance(bundle, dict):
                return bundle
        return {"text/plain": repr(self), "text/html": run_html(self, thumb=160)}

    def _ipython_display_(self) -> None:
        """In a Jupyter kernel: the live card and, as a separate output, its static copy (preview and
        stats, kept up to date until the run ends: :mod:`rodin_nb.statics`). Elsewhere: the bundle."""
        from IPython.display import display

        from .progress import in_notebook

        if in_notebook():
            card = self.card()
            card._ipython_display_()
            return
        display(self._repr_mimebundle_(), raw=True)

    def _repr_html_(self) -> str:
        """The static block (kept for code that asks for HTML directly)."""
        from .reprs import run_html

        return run_html(self)

    def __repr__(self) -> str:
        parts = [f"run_id={self.run_id!r}", f"status={self.status!r}"]
        if self.status in ACTIVE:
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
