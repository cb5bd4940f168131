"""``rn.connect()`` and the :class:`Client`: the one object a notebook talks to.

The client validates requests against the model schema, uploads local images once, submits jobs without
ever paying twice, and hands every job to its background :class:`~rodin_nb.engine.Engine`, which polls
and downloads. It does not import pandas, ipywidgets or pythreejs.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import sys
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .api import ScenarioAPI, job_id_of
from .engine import Engine
from .errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConflictError,
    PermissionDeniedError,
    ServerError,
    ValidationError,
)
from .jobs import PollPolicy, Run
from .schema import DEFAULT_MODEL_ID, ModelSchema, RodinRequest, canonical_json, image_bytes
from .store import AssetStore, Downloader
from .transport import RetryPolicy, Transport, is_loopback_url

if TYPE_CHECKING:
    from .sandbox import SandboxServer

__all__ = ["Client", "connect"]

log = logging.getLogger("rodin_nb.client")

DEFAULT_BASE_URL = "https://api.cloud.scenario.com/v1"
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
    """
    key = api_key or _env("SCENARIO_SDK_API_KEY")
    secret = api_secret or _env("SCENARIO_SDK_API_SECRET")
    url = base_url or _env("SCENARIO_BASE_URL")
    if bool(key) != bool(secret):
        missing = "api_secret (or SCENARIO_SDK_API_SECRET)" if key else "api_key (or SCENARIO_SDK_API_KEY)"
        raise ConfigError(f"Scenario needs both an API key and an API secret; {missing} is missing")
    server: SandboxServer | None = None
    if sandbox or (sandbox is None and not key and not url):
        from .sandbox import serve

        options = {"speed": float(os.environ.get("RODIN_NB_SANDBOX_SPEED", "20")), **(sandbox_options or {})}
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
    home = workspace or _env("RODIN_NB_HOME") or "rodin_runs"
    policy = poll or (PollPolicy.for_sandbox() if backend == "sandbox" else PollPolicy())
    return Client(
        transport,
        backend=backend,
        workspace=Path(home),
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
    ) -> None:
        self.transport = transport
        self.api = ScenarioAPI(transport)
        self.backend = backend
        self.model_id = model_id
        self.workspace = Path(workspace).absolute()
        self.store = AssetStore(self.workspace / "assets")
        self.downloader = Downloader(self.api, self.store, retry=transport.retry)
        self.engine = Engine(self.api, self.downloader, poll or PollPolicy())
        self._sandbox_server = sandbox_server
        self._schema: ModelSchema | None = None
        self._lock = threading.RLock()
        self._runs: dict[str, Run] = {}
        self._upload_cache: dict[str, str] | None = None
        # How long a job created just before a dropped connection may take to appear in the job list.
        self.reconcile_settle_s = 0.05 if backend == "sandbox" else 0.5

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

    def generate(self, request: RodinRequest | None = None, **params: Any) -> Run:
        """Submit one generation and return its :class:`Run` at once; the engine polls and downloads.

        Validation errors are raised before anything is sent. The job is created exactly once: after an
        ambiguous failure (timeout, dropped connection, 5xx) the client looks for the job among the
        recently created ones and re-attaches to it instead of submitting again.
        """
        req = self._with_uploaded_images(self.request(request, **params))
        run = Run(self, req, model_id=self.model_id)
        response = self._submit(req.to_body(), run)
        run._apply_job(response["job"])
        cost = response.get("creativeUnitsCost")
        if isinstance(cost, (int, float)):
            run.cost = float(cost)
        with self._lock:
            self._runs[run.run_id] = run
        self.engine.track(run)
        return run

    def _submit(self, body: dict[str, Any], run: Run, *, attempts: int = 3) -> dict[str, Any]:
        started = datetime.now(timezone.utc)
        for attempt in range(attempts):
            try:
                return self.api.generate(self.model_id, body)
            except (APIConnectionError, ServerError, ConflictError) as exc:
                if isinstance(exc, APIConnectionError) and not exc.maybe_sent:
                    raise  # the transport already retried what provably never arrived
                job = self._find_submitted_job(
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
                if attempt == attempts - 1:
                    raise
                log.info("generate failed (%s) and no job was created; submitting again", exc)
                time.sleep(self.transport.retry.delay(attempt))
        raise AssertionError("unreachable")

    def _find_submitted_job(
        self, body: Mapping[str, Any], *, since: datetime, settle_s: float = 0.5, looks: int = 3
    ) -> dict[str, Any] | None:
        """A recently created job whose ``metadata.input`` matches ``body`` and that no run owns yet.

        Looked for a few times, ``settle_s`` apart, because a job created just before the connection
        dropped may take a moment to show up in the list.
        """
        wanted = json.loads(canonical_json(dict(body)))
        with self._lock:
            owned = {run.job_id for run in self._runs.values() if run.job_id}
        for look in range(looks):
            try:
                for job in self.api.list_jobs(created_after=since):
                    inputs = (job.get("metadata") or {}).get("input") or {}
                    if job_id_of(job) in owned or not isinstance(inputs, dict):
                        continue
                    if all(inputs.get(key) == value for key, value in wanted.items()):
                        return job
            except (APIConnectionError, APIError) as exc:
                log.info("listing jobs to reconcile failed: %s", exc)
            if look < looks - 1:
                time.sleep(settle_s)
        return None

    # --- runs ----------------------------------------------------------------------------------------

    def attach(self, job_id: str, request: RodinRequest | None = None) -> Run:
        """Follow an existing job by id (after a restart, or a ``JobTimeout``)."""
        with self._lock:
            for run in self._runs.values():
                if run.job_id == job_id:
                    return run
        job = self.api.get_job(job_id)
        inputs = (job.get("metadata") or {}).get("input") or {}
        if request is None:
            try:
                request = RodinRequest(schema=self.schema, **inputs)
            except ValidationError:
                # A job made by another tool may carry inputs our schema does not know: keep them anyway.
                request = RodinRequest(schema=self.schema, prompt=str(inputs.get("prompt") or "unknown"))
        run = Run(self, request, model_id=self.model_id)
        run.reattached = True
        run._apply_job(job)
        with self._lock:
            self._runs[run.run_id] = run
        if run.status == "success":
            self.engine.track(run, delay=0)
        elif run.status in ("failure", "canceled"):
            run._finish()
        else:
            self.engine.track(run)
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

        Uploads are cached by content hash in the workspace, so the same picture is never sent twice.
        """
        import hashlib

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
        cache = self._uploads()
        cache_key = f"{self.base_url}|{digest}"
        with self._lock:
            if cache_key in cache:
                return cache[cache_key]
        mime = _sniff_image_type(content) or mimetypes.guess_type(name)[0] or "image/png"
        asset = self.api.upload_image(content, name, mime)
        asset_id = str(asset["id"])
        with self._lock:
            cache[cache_key] = asset_id
            self._save_uploads(cache)
        return asset_id

    def _with_uploaded_images(self, request: RodinRequest) -> RodinRequest:
        if not request.local_images:
            return request
        ids = [
            image if isinstance(image, str) and image.startswith("asset_") else self.upload_image(image)
            for image in request.images
        ]
        return request.with_images(ids)

    def _uploads(self) -> dict[str, str]:
        with self._lock:
            if self._upload_cache is None:
                path = self.workspace / "uploads.json"
                try:
                    self._upload_cache = dict(json.loads(path.read_text("utf-8")))
                except (FileNotFoundError, ValueError):
                    self._upload_cache = {}
            return self._upload_cache

    def _save_uploads(self, cache: dict[str, str]) -> None:
        path = self.workspace / "uploads.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=0, sort_keys=True), "utf-8")
        os.replace(tmp, path)


def _sniff_image_type(content: bytes) -> str | None:
    if content.startswith(b"\x89PNG"):
        return "image/png"
    if content.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None
