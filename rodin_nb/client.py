"""``rn.connect()`` and the :class:`Client`: the one object a notebook talks to.

The client validates requests against the model schema, uploads local images once, submits jobs without
ever paying twice, and hands every job to its background :class:`~rodin_nb.engine.Engine`, which polls
and downloads. It does not import pandas, ipywidgets or pythreejs.
"""

from __future__ import annotations

import atexit
import html
import logging
import os
import sys
import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from .api import ScenarioAPI
from .engine import Engine
from .errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConflictError,
    PermissionDeniedError,
)
from .jobs import Run
from .prices import PriceBook
from .runlog import RunLog
from .schema import DEFAULT_MODEL_ID, ModelSchema, RodinRequest, draw_seed
from .store import AssetStore, Downloader
from .submit import Submitter
from .timing import PollPolicy
from .transport import RetryPolicy, Transport, is_loopback_url
from .uploads import Uploads

if TYPE_CHECKING:
    from .sandbox import SandboxServer
    from .sweep import Sweep

__all__ = ["Client", "connect", "uses_embedded_sandbox"]

log = logging.getLogger("rodin_nb.client")

DEFAULT_BASE_URL = "https://api.cloud.scenario.com/v1"
SANDBOX_STATE_DIR = "sandbox"  # the embedded sandbox's folder inside the workspace


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def _say_sandbox(url: str) -> None:
    """Say once that the embedded sandbox stands in for Scenario.

    In a terminal or script: one line on stderr (shown, but never part of a piped result). In a notebook
    stderr renders as a pink warning band, which this is not: there it is one quiet grey line of HTML,
    displayed from the cell that called ``connect()`` (the caller's thread, never the engine's).
    """
    text = (
        f"rodin_nb: no Scenario credentials found (SCENARIO_SDK_API_KEY/SCENARIO_SDK_API_SECRET); "
        f"using the embedded sandbox at {url}, nothing is billed"
    )
    from .progress import in_notebook

    if in_notebook():
        from IPython.display import HTML, display

        display(HTML(f'<div style="color:#6e7781;font-size:12px">{html.escape(text)}</div>'))
    else:
        sys.stderr.write(text + "\n")


def uses_embedded_sandbox(
    api_key: str | None = None, *, base_url: str | None = None, sandbox: bool | None = None
) -> bool:
    """Whether :func:`connect` with these arguments (and the environment) starts the embedded sandbox.

    True when asked for (``sandbox=True``), or by default when neither credentials nor a base URL are
    given or set; lets a caller (the CLI) check requests against the sandbox's schema before starting it.
    """
    if sandbox is not None:
        return sandbox
    return not (api_key or _env("SCENARIO_SDK_API_KEY")) and not (base_url or _env("SCENARIO_BASE_URL"))


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
    if uses_embedded_sandbox(key, base_url=url, sandbox=sandbox):
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
            _say_sandbox(url)
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
        self.log = RunLog(self.workspace, client=self)
        self.uploads = Uploads(self.api, self.log, self.service)
        self.prices = PriceBook(lambda: self.schema, self.estimate)  # dry-run prices per price class
        # How long a job created just before a lost answer may take to appear in the job list: a few looks
        # settle_s apart after an answered error; search_s of looking when no answer came at all.
        sandbox = backend == "sandbox"
        self.submitter = Submitter(
            self, settle_s=0.05 if sandbox else 1.5, search_s=2.0 if sandbox else 120.0
        )
        _close_at_exit(self)

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
        """Stop the engine (running jobs keep running on the service) and an embedded sandbox.

        Downloads under way get a few seconds to finish first, and the sandbox stops last, so a script
        that ends right after a job succeeded keeps its files (called at interpreter exit too).
        """
        _OPEN_CLIENTS.discard(self)
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
        req = self.uploads.resolve(self.request(request, **params))
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

        The job is created exactly once (the protocol: :mod:`rodin_nb.submit`). When the service refuses
        the request, or fails to create it and no such job appears, the run ends ``not-submitted``
        (nothing billed) and the service's error is raised; asking again submits afresh. When no answer
        came after the request was sent, the run is returned while its job is looked for.
        """
        run = self.submitter.start(self.request(request, **params), reuse=reuse, sweep_id=sweep_id)
        if run.status == "not-submitted":
            run.wait()  # raises the cause: the service's refusal, or its failure to create the job
        return run

    @property
    def service(self) -> str:
        """Which service's jobs and prices a run belongs to: "sandbox" or the API host."""
        return "sandbox" if self.backend == "sandbox" else (urlsplit(self.base_url).hostname or self.base_url)

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
        from .sweep import Sweep

        return Sweep.reopen(self, sweep_id)

    # --- runs ----------------------------------------------------------------------------------------

    def resume(self) -> list[Run]:
        """Re-attach to every unfinished run in the workspace (after a kernel restart or a crash).

        Runs with a job id are followed again; a run interrupted while submitting is matched to the job
        it created, or ends ``not-submitted`` when none exists (it is never re-submitted silently).
        Successful runs whose files are missing, and runs whose download did not finish, are downloaded.
        """
        return self.submitter.resume()

    def run(self, run_id: str) -> Run:
        """The run with this id from the log, re-attached if it is still running."""
        return self.submitter.run_for_row(self.log.get(run_id))

    def attach(self, job_id: str) -> Run:
        """Follow an existing job by its id (after a restart, a ``JobTimeout``, or from another tool)."""
        return self.submitter.attach(job_id)

    @property
    def runs(self) -> list[Run]:
        """Runs started or attached by this client, oldest first."""
        with self.submitter.lock:
            return list(self.submitter.runs.values())

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

    def upload_image(self, image: Any) -> str:
        """Upload a local image (path, bytes or PIL image) once and return its asset id."""
        return self.uploads.upload(image)


_OPEN_CLIENTS: weakref.WeakSet[Client] = weakref.WeakSet()


def _close_at_exit(client: Client) -> None:
    """Close every client still open when the interpreter exits, in the order close() documents."""
    if not _OPEN_CLIENTS:
        atexit.register(_close_all)
    _OPEN_CLIENTS.add(client)


def _close_all() -> None:
    for client in list(_OPEN_CLIENTS):
        try:
            client.close()
        except Exception:  # at exit, a failing close must not hide the others (or print a traceback)
            log.debug("closing %r at exit failed", client, exc_info=True)
