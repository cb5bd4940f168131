"""``rn.connect()`` and the :class:`Client`: the one object a notebook talks to.

The client validates requests against the model schema, uploads local images once, submits jobs without
ever paying twice, and hands every job to its background :class:`~rodin_nb.engine.Engine`, which polls
and downloads. It does not import pandas, ipywidgets or pythreejs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from .api import ScenarioAPI, job_id_of, parse_time
from .engine import Engine
from .errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RodinError,
    ServerError,
    ValidationError,
)
from .jobs import PollPolicy, Run
from .runlog import RunLog, owner_alive
from .schema import DEFAULT_MODEL_ID, ModelSchema, RodinRequest, canonical_json, draw_seed, image_bytes
from .store import AssetStore, Downloader, StoredFile
from .transport import RetryPolicy, Transport, is_loopback_url

if TYPE_CHECKING:
    from .sandbox import SandboxServer
    from .sweep import Sweep

__all__ = ["Client", "connect"]

log = logging.getLogger("rodin_nb.client")

DEFAULT_BASE_URL = "https://api.cloud.scenario.com/v1"
SANDBOX_STATE_DIR = "sandbox"  # the embedded sandbox's folder inside the workspace
UPLOAD_LIMIT_BYTES = 6 * 1024 * 1024  # larger files need the multipart /v1/uploads flow (contract §4.3)
# How far back to look for a job we may have created: generous, because the service's clock and ours
# may disagree; the input match and the exclusion of known job ids keep it precise.
RECONCILE_WINDOW = timedelta(minutes=10)


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def connect(
    api_key: str | None = None,
    api_secret: str | None = None,
    *,
    base_url: str | None = None,
    sandbox: bool | None = None,
    workspace: str | os.PathLike[str] | None = None,
    model_id: str = DEFAULT_MODEL_ID,
    timeout: tuple[float, float] = (5.0, 60.0),
    retry: RetryPolicy | None = None,
    poll: PollPolicy | None = None,
    sandbox_options: Mapping[str, Any] | None = None,
    parallel_jobs: int | None = None,
    quiet: bool = False,
) -> Client:
    """Connect to Scenario, or to the embedded sandbox when there are no credentials.

    Parameters
    ----------
    api_key, api_secret : Scenario API key and secret; default ``SCENARIO_SDK_API_KEY`` /
        ``SCENARIO_SDK_API_SECRET``.
    base_url : default ``SCENARIO_BASE_URL`` or ``https://api.cloud.scenario.com/v1``.
    sandbox : True always starts the embedded sandbox; None (default) starts it only when no credentials
        and no base URL are found, and says so in one line.
    workspace : folder for the run log and downloaded files; default ``$RODIN_NB_HOME`` or ``./rodin_runs``.
    sandbox_options : keyword arguments for :func:`rodin_nb.sandbox.serve` (``speed``, ``faults``, ...).
        The embedded sandbox keeps its jobs and uploads in ``<workspace>/sandbox`` (so a restarted kernel
        resumes them); ``state_dir=None`` here makes a throwaway in-memory one instead.
    parallel_jobs : the account's parallel-job limit (Scenario's ``parallelCustomJobs``), used to pace
        sweeps and to predict queue times; default 4, or the embedded sandbox's own setting.
    """
    key = api_key or _env("SCENARIO_SDK_API_KEY")
    secret = api_secret or _env("SCENARIO_SDK_API_SECRET")
    url = base_url or _env("SCENARIO_BASE_URL")
    if bool(key) != bool(secret):
        missing = "api_secret (or SCENARIO_SDK_API_SECRET)" if key else "api_key (or SCENARIO_SDK_API_KEY)"
        raise ConfigError(f"Scenario needs both an API key and an API secret; {missing} is missing")
    home = Path(workspace or _env("RODIN_NB_HOME") or "rodin_runs")
    server: SandboxServer | None = None
    if sandbox or (sandbox is None and not key and not url):
        from .sandbox import serve

        options = {
            "speed": float(os.environ.get("RODIN_NB_SANDBOX_SPEED", "20")),
            # Durable per workspace, like the run log beside it: after a kernel restart (or in another
            # kernel on the same workspace) the sandbox still knows the jobs and uploads the log names.
            "state_dir": home.absolute() / SANDBOX_STATE_DIR,
            **(sandbox_options or {}),
        }
        server = serve(**options)
        url = server.url
        key = secret = None
        if not quiet:
            # One line, on stderr, so it shows in a cell and a terminal but never in a piped result.
            sys.stderr.write(
                f"rodin_nb: no Scenario credentials found (SCENARIO_SDK_API_KEY/"
                f"SCENARIO_SDK_API_SECRET); using the embedded sandbox at {url}, nothing is billed\n"
            )
    elif not url:
        url = DEFAULT_BASE_URL
    assert url is not None
    backend: Literal["scenario", "sandbox"] = (
        "sandbox" if server is not None or is_loopback_url(url) else "scenario"
    )
    transport = Transport(url, api_key=key, api_secret=secret, timeout=timeout, retry=retry)
    policy = poll or (PollPolicy.for_sandbox() if backend == "sandbox" else PollPolicy())
    if parallel_jobs is None:
        parallel_jobs = server.state.parallel_jobs if server is not None else 4
    return Client(
        transport,
        parallel_jobs=parallel_jobs,
        backend=backend,
        workspace=home,
        model_id=model_id,
        poll=policy,
        sandbox_server=server,
    )


class Client:
    """A connection to Scenario (or the sandbox) for one model, with its own background engine.

    Create it with :func:`connect`. Thread-safe; close it (or use it as a context manager) to stop the
    engine and an embedded sandbox.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        backend: Literal["scenario", "sandbox"],
        workspace: Path,
        model_id: str = DEFAULT_MODEL_ID,
        poll: PollPolicy | None = None,
        sandbox_server: SandboxServer | None = None,
        parallel_jobs: int = 4,
    ) -> None:
        self.transport = transport
        self.api = ScenarioAPI(transport)
        self.backend = backend
        self.model_id = model_id
        self.workspace = Path(workspace).absolute()
        self.store = AssetStore(self.workspace / "assets")
        self.downloader = Downloader(self.api, self.store, retry=transport.retry)
        self.engine = Engine(self.api, self.downloader, poll or PollPolicy(), parallel_jobs=parallel_jobs)
        self._sandbox_server = sandbox_server
        self._schema: ModelSchema | None = None
        self._lock = threading.RLock()
        self._runs: dict[str, Run] = {}
        self._confirmed_uploads: set[str] = set()  # remembered uploads seen on the service this session
        self.log = RunLog(self.workspace, client=self)
        # How long a job created just before a dropped connection may take to appear in the job list.
        self.reconcile_settle_s = 0.05 if backend == "sandbox" else 1.5

    def __repr__(self) -> str:
        return (
            f"Client(backend={self.backend!r}, base_url={self.transport.base_url!r}, "
            f"model_id={self.model_id!r}, workspace={str(self.workspace)!r})"
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the engine (running jobs keep running on the service) and an embedded sandbox."""
        self.engine.stop()
        self.transport.close()
        self.log.close()
        self.store.close()
        if self._sandbox_server is not None:
            self._sandbox_server.stop()

    @property
    def base_url(self) -> str:
        return self.transport.base_url

    # --- schema --------------------------------------------------------------------------------------

    @property
    def schema(self) -> ModelSchema:
        """The model's inputs: live from ``GET /v1/models/{id}``, else the bundled snapshot with a note."""
        with self._lock:
            if self._schema is None:
                self._schema = self._load_schema()
            return self._schema

    def _load_schema(self) -> ModelSchema:
        try:
            return ModelSchema.from_response(self.api.get_model(self.model_id), source="live")
        except (AuthenticationError, PermissionDeniedError):
            raise  # wrong credentials must not hide behind an offline schema
        except (APIConnectionError, APIError, ValueError, KeyError) as exc:
            note = f"live schema unavailable ({type(exc).__name__}: {exc}); using the bundled snapshot"
            log.warning("%s", note)
            return ModelSchema.snapshot(self.model_id, note=note)

    def request(self, request: RodinRequest | None = None, **params: Any) -> RodinRequest:
        """Validate parameters against this client's schema (raises ValidationError before any I/O)."""
        if request is None:
            return RodinRequest(schema=self.schema, **params)
        if params:
            return request.replace(**params)
        return request

    # --- money ---------------------------------------------------------------------------------------

    def estimate(self, request: RodinRequest | None = None, **params: Any) -> float:
        """Creative units the request would cost, via ``dryRun`` (nothing is created or billed)."""
        req = self._with_uploaded_images(self.request(request, **params))
        data = self.api.estimate(self.model_id, req.to_body())
        cost = data.get("creativeUnitsCost")
        if not isinstance(cost, (int, float)):
            raise APIError("the dry run answered without creativeUnitsCost", body=data)
        return float(cost)

    def generate(
        self,
        request: RodinRequest | None = None,
        *,
        reuse: bool = True,
        sweep_id: str | None = None,
        **params: Any,
    ) -> Run:
        """Submit one generation and return its :class:`Run` at once; the engine polls and downloads.

        Validation errors are raised before anything is sent. The run is in the run log before the job
        is created. With ``reuse`` (the default) a request identical to one that succeeded or is still
        running (same parameters, same seed; in any process sharing the workspace) returns that run
        instead of paying again; ``reuse=False`` forces a new job and the log says so.

        The job is created exactly once: after an ambiguous failure (timeout, dropped connection, 5xx)
        the client looks for it among recently created jobs and re-attaches instead of submitting again.
        """
        req = self.request(request, **params)
        run = Run(self, req, model_id=self.model_id, sweep_id=sweep_id)
        run.expected_s = self.expected_duration(req.params)
        with self._lock:
            # Claim and register as one step: a twin request in another thread of this process then
            # gets this very Run (still submitting), never a second object following the same job.
            existing = self.log.claim(self._new_row(run), reuse=reuse)
            if existing is None:
                self._runs[run.run_id] = run
        if existing is not None:
            return self._run_for_row(existing)
        self._follow(run)
        try:
            if req.local_images:
                run.request = req = self._with_uploaded_images(req)
                self.log.update(run.run_id, params=req.to_body())
            response = self._submit(req.to_body(), run)
        except BaseException as exc:
            self._submission_failed(run, exc)
            raise
        run._apply_job(response["job"])
        cost = response.get("creativeUnitsCost")
        if isinstance(cost, (int, float)):
            run.cost = float(cost)
            self.log.record(run)
        self.engine.track(run)
        return run

    @property
    def service(self) -> str:
        """Which service's jobs and prices a run belongs to: "sandbox" or the API host."""
        return "sandbox" if self.backend == "sandbox" else (urlsplit(self.base_url).hostname or self.base_url)

    def _new_row(self, run: Run) -> dict[str, Any]:
        return {
            "run_id": run.run_id,
            "sweep_id": run.sweep_id,
            "backend": self.backend,
            "service": self.service,
            "model_id": run.model_id,
            "params": run.request.identity(),
            "params_hash": run.request.params_hash,
            "seed": run.seed,
            "status": run.status,
            "submitted_at": run.submitted_at.isoformat(timespec="milliseconds"),
        }

    def _follow(self, run: Run) -> None:
        """Keep the run's log row in step with every change the engine makes."""
        run.on_change(self.log.record)

    def _submission_failed(self, run: Run, exc: BaseException) -> None:
        """Leave the row honest: refused (nothing created, nothing billed) or ambiguous (resume decides)."""
        in_flight = run.posting and (
            isinstance(exc, KeyboardInterrupt)
            or getattr(exc, "ambiguous", False)
            or (isinstance(exc, APIConnectionError) and exc.maybe_sent)
        )
        if in_flight:
            # Still "submitting" in the log: client.resume() or client.run() looks for the job (from a
            # fresh Run) before anyone pays again.
            with self._lock:
                self._runs.pop(run.run_id, None)
            return
        message = f"not submitted: {exc}" if isinstance(exc, RodinError) else f"not submitted: {exc!r}"
        hint = "nothing was created or billed; fix the cause and generate again"
        self.log.update(run.run_id, status="failure", error=message[:2000], hint=hint)
        run._refused(message[:2000], hint)  # anyone already holding this run (a twin request) is told

    def _run_for_row(self, row: Mapping[str, Any]) -> Run:
        """The live Run for a logged row: ours, re-attached, or a finished result from the log."""
        with self._lock:
            if row["run_id"] in self._runs:
                return self._runs[row["run_id"]]
            run = Run.from_row(self, row, self.schema)
            self._runs[run.run_id] = run
        self._follow(run)
        if run.status == "success":
            if not self._files_intact(row):
                self.engine.track(run, delay=0)  # a lost or damaged file: fetch it again (fresh URL)
            else:
                run.stored = self._stored_from_row(row)
                run._finish()
        elif run.status in ("failure", "canceled", "lost"):
            run._finish()  # ended: nothing to follow
        elif run.job_id:
            self.engine.track(run, delay=0)
        else:
            # Another process is submitting it, or crashed while doing so: wait for its job id, but only
            # as long as that process can still be alive.
            alive = owner_alive(row.get("owner"))
            patience = 0.0 if alive is False else 90.0
            self.engine.follow_submission(run, self._reconcile_row, patience_s=patience)
        return run

    def _files_intact(self, row: Mapping[str, Any]) -> bool:
        """Whether a successful row's files are all in the store with the content the log recorded."""
        pairs = list(zip(row.get("files") or [], row.get("sha256") or [], strict=False))
        return bool(pairs) and all(self.store.has(sha, Path(name).suffix) is not None for name, sha in pairs)

    def _stored_from_row(self, row: Mapping[str, Any]) -> list[StoredFile]:
        stored = []
        pairs = zip(row.get("files") or [], row.get("sha256") or [], strict=False)
        for index, (name, sha) in enumerate(pairs):
            path = self.workspace / name
            role = "model" if path.suffix == ".glb" else ("preview" if path.suffix == ".png" else "other")
            asset_ids = row.get("asset_ids") or []
            asset_id = asset_ids[index] if index < len(asset_ids) and role == "model" else ""
            stored.append(
                StoredFile(
                    asset_id=asset_id,
                    role=role,
                    path=path,
                    sha256=sha,
                    size=path.stat().st_size,
                    mime_type="",
                )
            )
        return stored

    def _reconcile_row(self, run: Run, search: bool) -> str | None:
        """The job id of a run whose submitter stopped before recording it, or None if no job exists.

        Reads the log first (the submitting process may simply have been slow), then lists recent jobs
        and matches their inputs against the logged body.
        """
        row = self.log.get(run.run_id)
        if row.get("job_id"):
            return str(row["job_id"])
        if not search:
            return None
        params = row["params"]
        if any(str(image).startswith("sha256:") for image in params.get("images") or []):
            return None  # it stopped before uploading its images, so it never reached the generate call
        since = (parse_time(row.get("submitted_at")) or datetime.now(timezone.utc)) - RECONCILE_WINDOW
        job, _ = self._find_submitted_job(params, since=since, settle_s=self.reconcile_settle_s)
        return job_id_of(job) if job is not None else None

    def expected_duration(self, params: Mapping[str, Any]) -> float | None:
        """Typical running time (median of recent successes) for this tier and quality, from the log."""
        durations = sorted(self.log.recent_durations(self.service, self.model_id, params))
        return durations[len(durations) // 2] if durations else None

    # --- sweeps --------------------------------------------------------------------------------------

    def sweep(
        self,
        *,
        cases: Sequence[Mapping[str, Any]] | None = None,
        concurrency: int | None = None,
        **grid: Any,
    ) -> Sweep:
        """Plan a sweep: the product of list-valued parameters (scalars fixed), times each of ``cases``.

        Every planned request is validated first (one error lists every bad row) and gets its seed now,
        so the plan is exactly what will run. Nothing is sent until ``estimate()``, ``run()`` or
        ``start()``. ``concurrency`` caps the jobs in flight (default: twice the parallel-job limit).
        """
        from .sweep import Sweep, expand_grid, plan_requests

        if grid.get("seed") is None:
            # One seed for the whole grid (cases that name their own keep it): a tier or quality
            # comparison must not be a seed change too.
            grid["seed"] = draw_seed()
        rows = expand_grid(self.schema, grid, cases)
        return Sweep(self, plan_requests(self.schema, rows), concurrency=concurrency)

    def sweep_by_id(self, sweep_id: str) -> Sweep:
        """Reopen a sweep from the log: finished and running runs are re-attached, the rest planned."""
        from .sweep import reopen

        return reopen(self, sweep_id)

    # --- resuming ------------------------------------------------------------------------------------

    def resume(self) -> list[Run]:
        """Re-attach to every unfinished run in the workspace (after a kernel restart or a crash).

        Runs with a job id are followed again; a run interrupted while submitting is matched to the job
        it created, or marked ``lost`` when none exists (it is never re-submitted silently). Successful
        runs whose files are missing are downloaded again.
        """
        runs = [
            self._run_for_row(row)
            for row in self.log.unfinished(service=self.service, model_id=self.model_id)
        ]
        for row in self.log.rows(
            "status='success' AND service=? AND model_id=?", (self.service, self.model_id)
        ):
            if not self._files_intact(row):
                runs.append(self._run_for_row(row))
        return runs

    def run(self, run_id: str) -> Run:
        """The run with this id from the log, re-attached if it is still running."""
        return self._run_for_row(self.log.get(run_id))

    def _submit(self, body: dict[str, Any], run: Run, *, attempts: int = 3) -> dict[str, Any]:
        """POST the job once; after an ambiguous failure find it instead of paying again.

        Submitted again only when the service *answered* (a 5xx or 409 response) and every look at
        the job list worked and showed no such job. After a lost connection or a timeout the job may
        exist without being listed yet: the error is raised marked ``ambiguous`` and the run stays
        ``submitting`` in the log, for ``client.resume()`` to reconcile later.
        """
        started = datetime.now(timezone.utc)
        for attempt in range(attempts):
            run.posting = True
            try:
                return self.api.generate(self.model_id, body)
            except (APIConnectionError, ServerError, ConflictError) as exc:
                if isinstance(exc, APIConnectionError) and not exc.maybe_sent:
                    raise  # the transport already retried what provably never arrived
                job, complete = self._find_submitted_job(
                    body, since=started - RECONCILE_WINDOW, settle_s=self.reconcile_settle_s
                )
                if job is not None:
                    log.info(
                        "generate was ambiguous (%s); re-attached to job %s",
                        type(exc).__name__,
                        job_id_of(job),
                    )
                    run.reattached = True
                    return {"job": job}
                answered = isinstance(exc, (ServerError, ConflictError))
                if not (answered and complete) or attempt == attempts - 1:
                    exc.ambiguous = True
                    raise
                log.info("generate failed (%s) and no job was created; submitting again", exc)
                time.sleep(self.transport.retry.delay(attempt))
        raise AssertionError("unreachable")

    def _find_submitted_job(
        self, body: Mapping[str, Any], *, since: datetime, settle_s: float = 0.5, looks: int = 3
    ) -> tuple[dict[str, Any] | None, bool]:
        """A recently created job whose ``metadata.input`` matches ``body`` and that no run owns yet.

        Returns ``(job, complete)``; ``complete`` is False when a look at the job list failed, so "not
        found" cannot be trusted. Jobs already recorded in the run log (by any process) are never taken.
        Looked for a few times, ``settle_s`` apart: a job created just before the connection dropped
        may take a moment to show up in the list.
        """
        wanted = json.loads(canonical_json(dict(body)))
        with self._lock:
            owned = {run.job_id for run in self._runs.values() if run.job_id}
        owned |= self.log.job_ids(self.service)
        complete = True
        for look in range(looks):
            try:
                for job in self.api.list_jobs(created_after=since):
                    inputs = (job.get("metadata") or {}).get("input") or {}
                    if job_id_of(job) in owned or not isinstance(inputs, dict):
                        continue
                    if all(inputs.get(key) == value for key, value in wanted.items()):
                        return job, True
            except (APIConnectionError, APIError) as exc:
                complete = False
                log.info("listing jobs to reconcile failed: %s", exc)
            if look < looks - 1:
                time.sleep(settle_s)
        return None, complete

    # --- runs ----------------------------------------------------------------------------------------

    def attach(self, job_id: str) -> Run:
        """Follow an existing job by its id (after a restart, a ``JobTimeout``, or from another tool)."""
        with self._lock:
            for run in self._runs.values():
                if run.job_id == job_id:
                    return run
        logged = self.log.rows("job_id=?", (job_id,))
        if logged:
            return self._run_for_row(logged[0])
        job = self.api.get_job(job_id)
        inputs = (job.get("metadata") or {}).get("input") or {}
        run = Run(self, RodinRequest.logged(self.schema, inputs), model_id=self.model_id)
        run.reattached = True
        run._apply_job(job)
        self.log.claim(self._new_row(run) | {"job_id": job_id}, reuse=False)
        self.log.record(run)
        self._follow(run)
        with self._lock:
            self._runs[run.run_id] = run
        if run.status in ("failure", "canceled"):
            run._finish()
        else:
            self.engine.track(run, delay=0)
        return run

    @property
    def runs(self) -> list[Run]:
        """Runs started or attached by this client, oldest first."""
        with self._lock:
            return list(self._runs.values())

    def _cancel(self, run: Run) -> bool:
        if run.job_id is None or run.done:
            return run.status == "canceled"
        try:
            run._apply_job(self.api.cancel_job(run.job_id))
        except (BadRequestError, ConflictError, PermissionDeniedError) as exc:
            log.info("job %s could not be canceled: %s", run.job_id, exc)
            run._apply_job(self.api.get_job(run.job_id))
        if run.status == "canceled":
            run._finish()
        return run.status == "canceled"

    def download(self, run: Run) -> None:
        """Download a successful run's files again (after a download error)."""
        self.engine.download(run)

    # --- images --------------------------------------------------------------------------------------

    def upload_image(self, image: Any) -> str:
        """Upload a local image (path, bytes or PIL image) once and return its asset id.

        Uploads are remembered by content hash in the workspace's run log, so the same picture is never
        sent twice to the same service, whichever process or kernel asks.
        """
        content, name = image_bytes(image)
        if len(content) >= UPLOAD_LIMIT_BYTES:
            raise ValidationError(
                [
                    (
                        "images",
                        f"{name} is {len(content) / 1e6:.1f} MB; images must be under "
                        f"{UPLOAD_LIMIT_BYTES / 1e6:.0f} MB: resize or re-encode it",
                    )
                ]
            )
        digest = hashlib.sha256(content).hexdigest()
        known = self.log.uploaded_asset(self.service, digest)
        if known is not None and self._upload_still_there(known):
            return known
        if known is not None:
            self.log.forget_upload(self.service, digest, known)
        mime = _sniff_image_type(content) or mimetypes.guess_type(name)[0] or "image/png"
        asset_id = str(self.api.upload_image(content, name, mime)["id"])
        self.log.record_upload(self.service, digest, asset_id)
        return self.log.uploaded_asset(self.service, digest) or asset_id

    def _upload_still_there(self, asset_id: str) -> bool:
        """Whether a remembered upload still exists on the service (asked once per process).

        Assets can be deleted in Scenario's web app, and a sandbox started without its state folder
        forgets them: a stale id would make every image-to-3D request with that picture fail.
        """
        if asset_id in self._confirmed_uploads:
            return True
        try:
            self.api.get_asset(asset_id)
        except NotFoundError:
            log.info("uploaded image %s is gone from the service; uploading it again", asset_id)
            return False
        except RodinError as exc:  # cannot tell now: trust the log rather than upload again
            log.info("could not check uploaded image %s (%s); using it", asset_id, exc)
            return True
        self._confirmed_uploads.add(asset_id)
        return True

    def _with_uploaded_images(self, request: RodinRequest) -> RodinRequest:
        if not request.local_images:
            return request
        ids = [
            image if isinstance(image, str) and image.startswith("asset_") else self.upload_image(image)
            for image in request.images
        ]
        return request.with_images(ids)


def _sniff_image_type(content: bytes) -> str | None:
    if content.startswith(b"\x89PNG"):
        return "image/png"
    if content.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None
