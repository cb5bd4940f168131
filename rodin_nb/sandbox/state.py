"""Jobs, assets, accounts and simulated time: everything the sandbox remembers.

Time is simulated *lazily*: nothing runs in the background. Each job records when it was created, how
long it runs and whether (and when) it fails; on every read :meth:`SandboxState.advance` replays, in
time order, the starts and ends that happened since the last read, per account, honouring the parallel
job limit. Because every event time is derived from the job's own parameters and from earlier events
(never from when somebody happened to poll), the result is the same however often or rarely clients
read, and a cancelled or failed job frees its slot at exactly the moment it ended.

A job walks ``pending`` -> ``queued`` -> ``warming-up`` -> ``in-progress`` -> ``finalizing`` ->
``success`` (or ``failure`` partway through ``in-progress``, or ``canceled`` whenever asked). Its
running time (warming-up to the end) is ``job_seconds`` if it is a number; if it is a range
``(lo, hi)``, a time drawn in it from the request itself (its parameters, seed included: the same
request always gets the same time), divided by ``speed``; else a per-tier base divided by ``speed``.
Pending and queued time come on top of it.

What changes the timeline is an :class:`Event`: a job created, a job canceled, the parallel-job limit
set. Applying events in order, advancing to each one's time first, is the whole simulation; so with a
state file (:mod:`.persist`), where every process logs its events, each process reaches the same
timeline by applying the events the others logged. An event that lands in a past this process has
already simulated (logged by another process in the moment between its clock read and its commit)
makes it replay the whole log from scratch instead. With a state file, times are unix seconds, so a job
keeps progressing while no sandbox process runs; in memory they are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from ..rules import canonical_json, draw_seed, effective_quality, uses_hyper
from . import model
from .faults import FaultInjector

if TYPE_CHECKING:
    from .persist import Changes, StateFile

__all__ = ["STATUSES", "TERMINAL", "Asset", "Event", "Job", "SandboxError", "SandboxState", "iso_utc"]

STATUSES = ("pending", "queued", "warming-up", "in-progress", "finalizing", "success", "failure", "canceled")
TERMINAL = frozenset({"success", "failure", "canceled"})

# Shares of a job's running time spent warming up and finalizing; the rest is "in-progress".
WARMUP_SHARE = 0.15
FINALIZE_SHARE = 0.10
# Pending and the minimum queued stay are this share of the running time (capped), so both statuses
# appear in every statusHistory even when a slot is free, as on the real service.
PRE_RUN_SHARE = 0.04
PRE_RUN_CAP_S = 3.0

#: Seconds of running time at speed 1, per tier; quality=high and useHyper take a little longer.
BASE_SECONDS = {"Sketch": 20.0, "Regular": 60.0}
HIGH_QUALITY_FACTOR = 1.25
HYPER_FACTOR = 1.1

OWNER_ID = "proj_sandbox"
_ALPHABET = string.ascii_letters + string.digits

_FAILURES = (
    (
        "Generation failed: the reconstructed mesh was not watertight (sandbox injected failure)",
        "Retry with another seed, or simplify the prompt.",
    ),
    (
        "Generation failed: the input images could not be segmented (sandbox injected failure)",
        "Use images with a single object on a plain background, or add a prompt.",
    ),
    (
        "Generation failed: the upstream provider timed out (sandbox injected failure)",
        "Retry later; nothing was produced, so the job should be refunded.",
    ),
)


class SandboxError(Exception):
    """An error answer: HTTP status, a message that says what is allowed, and optionally the field."""

    def __init__(self, status: int, message: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.field is not None:
            out["field"] = self.field
        out.update(self.extra)
        return out


def random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def iso_utc(wall: float) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, as Scenario writes dates."""
    ms = int(wall * 1000)
    dt = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def parse_iso(text: str) -> float:
    """Unix time of an ISO-8601 string (``Z`` or offset; naive means UTC). Raises ValueError."""
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


@dataclass
class Asset:
    """A stored asset: an uploaded image, or a job's GLB / preview whose bytes are made on demand."""

    id: str
    kind: str  # "image" | "3d"
    mime_type: str
    source: str  # "uploaded" | "txt23d" | "img23d"
    created_t: float
    author_id: str
    metadata: dict[str, Any]
    properties: dict[str, Any]
    data: bytes | None = None  # uploaded bytes; None for generated assets
    gen_params: dict[str, Any] | None = None  # meshgen key for generated assets
    role: str = "upload"  # "upload" | "glb" | "preview"
    preview_id: str | None = None
    output_index: int | None = None


EventKind = Literal["create", "cancel", "limit"]


@dataclass(frozen=True)
class Event:
    """Something that changes the timeline at time ``t``; ``n`` numbers events in the order they happened.

    ``create`` and ``cancel`` name a job; ``limit`` carries the per-account parallel-job limit in ``value``.
    """

    n: int
    t: float
    kind: EventKind
    job_id: str | None = None
    value: int | None = None


@dataclass(eq=False)  # identity semantics: jobs are looked up in queues by identity
class Job:
    """One generation job. Times are on the state's clock (see the module docstring).

    The fields up to ``error`` define the job (and are what a state file stores); ``start_t``, ``end_t``
    and ``final`` are the simulation's, recomputed by every replay.
    """

    id: str
    account: str
    seq: int
    created_t: float
    body: dict[str, Any]
    cost: int
    pending_s: float
    queue_min_s: float
    duration: float
    fail_frac: float | None
    gen_params: dict[str, Any]
    glb_id: str
    preview_id: str
    error: tuple[str, str] | None = None
    start_t: float | None = None
    end_t: float | None = None
    final: str | None = None

    @property
    def ready_t(self) -> float:
        return self.created_t + self.pending_s + self.queue_min_s

    @property
    def natural_end(self) -> float:
        assert self.start_t is not None
        return self.start_t + self.duration * (self.fail_frac if self.fail_frac is not None else 1.0)


@dataclass
class _Account:
    queue: deque[Job] = field(default_factory=deque)
    running: list[Job] = field(default_factory=list)
    sim_t: float = float("-inf")


class SandboxState:
    """The sandbox's memory. All public methods are thread-safe (one lock; mesh work happens outside it)."""

    def __init__(
        self,
        *,
        speed: float,
        job_seconds: float | tuple[float, float] | None,
        parallel_jobs: int,
        faults: FaultInjector,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        state_file: StateFile | None = None,
    ) -> None:
        self.speed = speed
        self.job_seconds = job_seconds
        self.parallel_jobs = parallel_jobs
        self.faults = faults
        self._file = state_file
        if state_file is not None:
            # Times shared with other processes (and with later ones) must be wall-clock times.
            clock = wall_clock
        self._clock = clock
        self._wall_offset = 0.0 if clock is wall_clock else wall_clock() - clock()
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._accounts: dict[str, _Account] = {}
        self._assets: dict[str, Asset] = {}
        self._seq = 0
        self._events: list[Event] = []
        self._last_t = float("-inf")  # time of the latest event: no new event may come before it
        self._frontier = float("-inf")  # how far the simulation has advanced
        self._head = (0, 0)  # the state file's head this process has caught up with
        self._file_limit: int | None = None  # the parallel-job limit the event log sets
        #: Jobs created and images uploaded through this instance (not through others on the same file).
        self.jobs_created = 0
        self.uploads = 0
        if state_file is not None:
            with self._lock:
                with self._writing():
                    self._catch_up()
                    # The limit belongs to the service, so it is one value for every process on the file:
                    # the latest sandbox opened on it sets it, from then on.
                    limit = None
                    if self._file_limit != parallel_jobs:
                        limit = self._log(self.now(), "limit", value=parallel_jobs)
                if limit is not None:
                    self._apply(limit)

    def close(self) -> None:
        """Release the state file (in memory: nothing to do)."""
        with self._lock:
            if self._file is not None and not self._file.closed:
                self._file.close()

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        # Never before the latest event: with a state file another process's clock read may be a hair
        # later than ours, and a job must not look created in the future.
        return max(self._clock(), self._last_t)

    def wall(self, t: float) -> float:
        """Unix time of an instant (one fixed offset, so dates are consistent with each other)."""
        return self._wall_offset + t

    def iso(self, t: float) -> str:
        return iso_utc(self.wall(t))

    def running_seconds(self, body: dict[str, Any]) -> float:
        """Running time (warming-up through finalizing) of a job for this body.

        With a ``job_seconds`` range, the time is drawn from the body (its seed included) by a hash, so
        it is the same for the same request in every process and on every run.
        """
        if isinstance(self.job_seconds, tuple):
            lo, hi = self.job_seconds
            params = {**model.input_defaults(), **body}
            digest = hashlib.sha256(canonical_json(params).encode()).digest()
            share = int.from_bytes(digest[:8], "big") / 2.0**64
            return (lo + (hi - lo) * share) / self.speed
        if self.job_seconds is not None:
            return self.job_seconds
        params = {**model.input_defaults(), **body}
        base = BASE_SECONDS.get(str(params.get("tier", "Regular")), BASE_SECONDS["Regular"])
        # What the job really runs at: Sketch ignores quality=high and useHyper.
        if effective_quality(params) == "high":
            base *= HIGH_QUALITY_FACTOR
        if uses_hyper(params):
            base *= HYPER_FACTOR
        return base / self.speed

    # ---------------------------------------------------------------- assets

    def asset_kind(self, asset_id: str) -> str | None:
        with self._lock:
            self._sync()
            asset = self._assets.get(asset_id)
            return asset.kind if asset is not None else None

    def get_asset(self, asset_id: str) -> Asset:
        with self._lock:
            self._catch_up()
            asset = self._assets.get(asset_id)
        if asset is None:
            raise SandboxError(404, f"Asset {asset_id!r} not found", "assetId")
        return asset

    def add_upload(self, account: str, name: str, data: bytes, mime: str, width: int, height: int) -> Asset:
        with self._lock:
            with self._writing():
                self._sync()
                asset = Asset(
                    id=random_id("asset_", 22),
                    kind="image",
                    mime_type=mime,
                    source="uploaded",
                    created_t=self.now(),
                    author_id=author_id(account),
                    metadata={
                        "kind": "image",
                        "type": "uploaded",
                        "name": name,
                        "width": width,
                        "height": height,
                    },
                    properties={"size": len(data), "width": width, "height": height},
                    data=data,
                )
                n = self._file.add_upload(account, asset) if self._file is not None else 0
            if n:
                # Caught up inside the write lock, so ours was the very next upload number.
                self._head = (self._head[0], n)
            self._assets[asset.id] = asset
            self.uploads += 1
        return asset

    def _image_digest(self, asset_id: str) -> str:
        asset = self._assets.get(asset_id)
        if asset is None or asset.data is None:
            return asset_id
        return hashlib.sha256(asset.data).hexdigest()

    # ------------------------------------------------------------------ jobs

    def _gen_params(self, body: dict[str, Any], seed: int) -> dict[str, Any]:
        """The meshgen key: defaults filled in, seed resolved, images replaced by content digests.

        Equivalent requests (explicit defaults vs omitted, the same picture uploaded twice) thus share
        one key, hence byte-identical results.
        """
        params: dict[str, Any] = dict(model.input_defaults())
        params.update(body)
        params["seed"] = seed
        if body.get("images"):
            params["images"] = [self._image_digest(a) for a in body["images"]]
        return params

    def create_job(self, account: str, body: dict[str, Any]) -> Job:
        """Create (and bill) a job for an already validated body."""
        with self._lock:
            with self._writing():
                now = self._catch_up()
                job = self._new_job(account, body, now)
                event = self._log(now, "create", job=job)
            self._jobs[job.id] = job
            self._seq = job.seq
            self._apply(event)
            self.jobs_created += 1
            return job

    def _new_job(self, account: str, body: dict[str, Any], now: float) -> Job:
        seed_value = body.get("seed")
        # Rodin draws a random seed when none is given; the sandbox does too, and reports it in
        # the asset metadata so the run can be reproduced.
        seed = draw_seed(self.faults.rng("job-seed")) if seed_value is None else int(seed_value)
        duration = self.running_seconds({**body, "seed": seed})
        pre = min(duration * PRE_RUN_SHARE, PRE_RUN_CAP_S / self.speed)
        fail = self.faults.job_failure_point()
        job = Job(
            id=random_id("job_", 25),
            account=account,
            seq=self._seq + 1,
            created_t=now,
            body=body,
            cost=model.price_cu(body),
            pending_s=pre,
            queue_min_s=pre,
            duration=duration,
            fail_frac=fail,
            gen_params=self._gen_params(body, seed),
            glb_id=random_id("asset_", 22),
            preview_id=random_id("asset_", 22),
        )
        if fail is not None:
            job.error = _FAILURES[self.faults.rng("fail-message").randrange(len(_FAILURES))]
        return job

    def get_job(self, account: str, job_id: str) -> tuple[Job, float]:
        with self._lock:
            now = self._catch_up()
            job = self._jobs.get(job_id)
            if job is None or job.account != account:
                raise SandboxError(404, f"Job {job_id!r} not found", "jobId")
            return job, now

    def cancel_job(self, account: str, job_id: str) -> tuple[Job, float]:
        with self._lock:
            with self._writing():
                # Checked and logged under the file's write lock: no other process can end the job or
                # log an earlier event in between, so every replay finds it still running at ``now``.
                now = self._catch_up()
                job = self._jobs.get(job_id)
                if job is None or job.account != account:
                    raise SandboxError(404, f"Job {job_id!r} not found", "jobId")
                status = self.status(job, now)
                if status in TERMINAL:
                    raise SandboxError(
                        400,
                        f"Job {job_id!r} is already {status}; only pending, queued, warming-up, in-progress "
                        "or finalizing jobs can be canceled",
                        "action",
                    )
                event = self._log(now, "cancel", job=job)
            self._apply(event)
            return job, now

    def list_jobs(
        self,
        account: str,
        *,
        status: str | None,
        created_after: float | None,
        before_seq: int | None,
        page_size: int,
        updated_after: float | None = None,
        by_update: bool = False,
        before_update: tuple[int, int] | None = None,
    ) -> tuple[list[Job], int | tuple[int, int] | None, float]:
        """One page of the account's jobs and the cursor to continue from (None: last page).

        Newest first by creation (cursor: a seq), or, with ``by_update`` (any of the list's filters is
        set), most recently updated first (cursor: ``(updatedAt ms, seq)`` of the page's last job).
        """
        with self._lock:
            now = self._catch_up()
            mine = [j for j in self._jobs.values() if j.account == account]
            if status is not None:
                mine = [j for j in mine if self.status(j, now) == status]
            if created_after is not None:
                # Compare at the millisecond precision of createdAt, so passing a job's own createdAt
                # excludes that job.
                after_ms = round(created_after * 1000)
                mine = [j for j in mine if int(self.wall(j.created_t) * 1000) > after_ms]
            if not by_update:
                mine.sort(key=lambda j: j.seq, reverse=True)
                if before_seq is not None:
                    mine = [j for j in mine if j.seq < before_seq]
                page = mine[:page_size]
                more = len(mine) > page_size
                return page, (page[-1].seq if more and page else None), now
            keyed = [((int(self.wall(self.updated_t(j, now)) * 1000), j.seq), j) for j in mine]
            if updated_after is not None:
                after_ms = round(updated_after * 1000)
                keyed = [(key, j) for key, j in keyed if key[0] > after_ms]
            if before_update is not None:
                keyed = [(key, j) for key, j in keyed if key < before_update]
            keyed.sort(key=lambda item: item[0], reverse=True)
            rows = keyed[:page_size]
            more = len(keyed) > page_size
            return [j for _, j in rows], (rows[-1][0] if more and rows else None), now

    # --------------------------------------------------------------- timeline

    def _catch_up(self) -> float:
        """Take in other processes' writes, then advance the simulation to now; returns now. Locked."""
        self._sync()
        now = self.now()
        self._advance(now)
        return now

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """With a state file, one write-locked transaction around a check-then-write; else nothing."""
        if self._file is None:
            yield
            return
        with self._file.transaction():
            yield

    def _log(self, t: float, kind: EventKind, *, job: Job | None = None, value: int | None = None) -> Event:
        """Record an event (and a new job's definition) in the state file, if any. Call inside _writing."""
        job_id = job.id if job is not None else None
        if self._file is None:
            return Event(n=self._head[0] + 1, t=t, kind=kind, job_id=job_id, value=value)
        if kind == "create":
            assert job is not None
            self._file.add_job(job)
        return self._file.add_event(t, kind, job_id, value)

    def _sync(self) -> None:
        """Take in what other processes wrote to the state file since the last look (cheap if nothing)."""
        if self._file is None:
            return
        if self._file.closed:
            raise SandboxError(503, "The sandbox is shutting down")
        changes = self._file.changes(self._head, self._seq)
        if changes is not None:
            self._take(changes)

    def _take(self, changes: Changes) -> None:
        for asset in changes.uploads:
            self._assets[asset.id] = asset
        for job in changes.jobs:
            self._jobs[job.id] = job
            self._seq = max(self._seq, job.seq)
        self._head = changes.head
        if not changes.events:
            return
        if changes.events[0].t < self._frontier:
            self._events += changes.events
            self._replay()
        else:
            for event in changes.events:
                self._apply(event)

    def _replay(self) -> None:
        """Rebuild the timeline from the event log alone, as a process that just started would."""
        self._jobs = {k: replace(j, start_t=None, end_t=None, final=None) for k, j in self._jobs.items()}
        self._accounts = {}
        self._assets = {k: a for k, a in self._assets.items() if a.role == "upload"}
        self._frontier = float("-inf")
        events, self._events = self._events, []
        for event in events:
            self._apply(event)

    def _apply(self, event: Event) -> None:
        """Advance to the event's time, then let it change the queues."""
        self._advance(event.t)
        self._events.append(event)
        self._last_t = max(self._last_t, event.t)
        self._head = (max(self._head[0], event.n), self._head[1])
        if event.kind == "limit":
            assert event.value is not None
            self.parallel_jobs = self._file_limit = event.value
            return
        assert event.job_id is not None
        job = self._jobs[event.job_id]
        acct = self._accounts.setdefault(job.account, _Account())
        if event.kind == "create":
            acct.queue.append(job)
        elif job.final is None:  # cancel (the canceller saw the job unfinished at this very time)
            if job in acct.queue:
                acct.queue.remove(job)
            if job in acct.running:
                acct.running.remove(job)
            job.final, job.end_t = "canceled", event.t
            # The freed slot is available from now on; everything up to now is already replayed.
            acct.sim_t = max(acct.sim_t, event.t)
        self._advance(event.t)  # a new or freed slot may start a job at once

    def _advance(self, now: float) -> None:
        """Replay starts and ends up to ``now``, per account, in time order (see module docstring)."""
        self._frontier = max(self._frontier, now)
        for acct in self._accounts.values():
            while True:
                t_end, ending = float("inf"), None
                for j in acct.running:
                    if j.natural_end < t_end:
                        t_end, ending = j.natural_end, j
                t_start = float("inf")
                if acct.queue and len(acct.running) < self.parallel_jobs:
                    t_start = max(acct.sim_t, acct.queue[0].ready_t)
                t = min(t_end, t_start)
                if t > now:
                    break
                if ending is not None and t_end <= t_start:
                    acct.running.remove(ending)
                    ending.end_t = t_end
                    ending.final = "failure" if ending.fail_frac is not None else "success"
                    if ending.final == "success":
                        self._register_outputs(ending)
                else:
                    job = acct.queue.popleft()
                    job.start_t = t_start
                    acct.running.append(job)
                acct.sim_t = t

    def _register_outputs(self, job: Job) -> None:
        assert job.end_t is not None
        body = job.body
        gen_type = "img23d" if body.get("images") else "txt23d"
        seed = str(job.gen_params["seed"])
        author = author_id(job.account)
        meta: dict[str, Any] = {
            "kind": "3d",
            "type": gen_type,
            "modelId": model.MODEL_ID,
            "seed": seed,
            "parentJobId": job.id,
        }
        if body.get("prompt"):
            meta["prompt"] = body["prompt"]
        if body.get("images"):
            meta["parentId"] = body["images"][0]
            meta["rootParentId"] = body["images"][0]
        # Both outputs come from the job alike; their properties are filled from the bytes when first served.
        output = functools.partial(
            Asset, source=gen_type, created_t=job.end_t, author_id=author, gen_params=job.gen_params
        )
        self._assets[job.glb_id] = output(
            id=job.glb_id,
            kind="3d",
            mime_type="model/gltf-binary",
            metadata=meta,
            properties={},
            role="glb",
            preview_id=job.preview_id,
            output_index=0,
        )
        self._assets[job.preview_id] = output(
            id=job.preview_id,
            kind="image",
            mime_type="image/png",
            metadata={"kind": "image", "type": gen_type, "parentId": job.glb_id, "parentJobId": job.id},
            properties={},
            role="preview",
        )

    # -------------------------------------------------------------- job views

    def status(self, job: Job, now: float) -> str:
        if job.final is not None:
            return job.final
        if job.start_t is None:
            return "pending" if now < job.created_t + job.pending_s else "queued"
        el = now - job.start_t
        if el < job.duration * WARMUP_SHARE:
            return "warming-up"
        if el < job.duration * (1 - FINALIZE_SHARE):
            return "in-progress"
        return "finalizing"

    def progress(self, job: Job, now: float) -> float:
        """0 until in-progress, rising linearly to 1 across it, then 1; frozen when a job ends early."""
        if job.start_t is None:
            return 0.0
        if job.final == "success":
            return 1.0
        t = job.end_t if job.end_t is not None else now
        if job.final is None and t - job.start_t >= job.duration * (1 - FINALIZE_SHARE):
            return 1.0  # finalizing
        span = job.duration * (1 - WARMUP_SHARE - FINALIZE_SHARE)
        frac = (t - job.start_t - job.duration * WARMUP_SHARE) / span
        # Truncate (not round) to 4 places and stay below 1 while in progress: 1 means "done computing".
        return min(math.floor(min(max(frac, 0.0), 1.0) * 10_000) / 10_000, 0.9999)

    def history(self, job: Job, now: float) -> list[tuple[str, float]]:
        events = [("pending", job.created_t), ("queued", job.created_t + job.pending_s)]
        if job.start_t is not None:
            s, d = job.start_t, job.duration
            events += [
                ("warming-up", s),
                ("in-progress", s + d * WARMUP_SHARE),
                ("finalizing", s + d * (1 - FINALIZE_SHARE)),
            ]
        cut = job.end_t if job.end_t is not None else now
        out = [(st, t) for st, t in events if t <= cut]
        if job.final is not None and job.end_t is not None:
            out.append((job.final, job.end_t))
        return out

    def updated_t(self, job: Job, now: float) -> float:
        """When the job last changed: now while in progress (its progress moves), else its last status."""
        if self.status(job, now) == "in-progress":
            return now
        return self.history(job, now)[-1][1]

    def job_json(self, job: Job, now: float, *, brief: bool = False) -> dict[str, Any]:
        """The wire Job object (SDK ``Job``: all required fields plus billing and owner).

        ``brief``: the abbreviated reading of a list item (see ``serve(list_items=...)``): no progress,
        statusHistory, billing, nor metadata beyond ``input``.
        """
        hist = self.history(job, now)
        status = self.status(job, now)
        updated = self.updated_t(job, now)
        if brief:
            return {
                "jobId": job.id,
                "jobType": "custom",
                "status": status,
                "createdAt": self.iso(job.created_t),
                "updatedAt": self.iso(updated),
                "metadata": {"input": job.body},
                "authorId": author_id(job.account),
                "ownerId": OWNER_ID,
            }
        metadata: dict[str, Any] = {"input": job.body, "assetIds": []}
        if job.final == "success":
            metadata["assetIds"] = [job.glb_id]
        if job.final == "failure" and job.error is not None:
            metadata["error"], metadata["hint"] = job.error
        return {
            "jobId": job.id,
            "jobType": "custom",
            "status": status,
            "progress": self.progress(job, now),
            "createdAt": self.iso(job.created_t),
            "updatedAt": self.iso(updated),
            "statusHistory": [{"status": st, "date": self.iso(t)} for st, t in hist],
            "metadata": metadata,
            "billing": {"cuCost": job.cost, "cuDiscount": 0},
            "authorId": author_id(job.account),
            "ownerId": OWNER_ID,
        }

    def dry_run_job_json(self, account: str, body: dict[str, Any]) -> dict[str, Any]:
        """A Job-shaped estimate: the SDK requires ``job`` even on a 269, but this one is never stored."""
        stamp = self.iso(self.now())
        return {
            "jobId": random_id("job_", 25),
            "jobType": "custom",
            "status": "pending",
            "progress": 0,
            "createdAt": stamp,
            "updatedAt": stamp,
            "statusHistory": [{"status": "pending", "date": stamp}],
            "metadata": {"input": body, "assetIds": []},
            "billing": {"cuCost": model.price_cu(body), "cuDiscount": 0},
            "authorId": author_id(account),
            "ownerId": OWNER_ID,
        }

    def status_counts(self) -> dict[str, int]:
        with self._lock:
            now = self._catch_up()
            counts: dict[str, int] = {}
            for j in self._jobs.values():
                s = self.status(j, now)
                counts[s] = counts.get(s, 0) + 1
            return counts


def author_id(account: str) -> str:
    """A stable user id per account (the API key never appears in responses)."""
    return hashlib.sha256(f"sandbox-author:{account}".encode()).hexdigest()[:32]


def encode_token(cursor: int | tuple[int, int]) -> str:
    """Opaque pagination cursor: the list continues with jobs created before a seq, or (sorted by update)
    with jobs updated before an ``(updatedAt ms, seq)`` pair."""
    value: Any = {"before": cursor} if isinstance(cursor, int) else {"updated": list(cursor)}
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def decode_token(token: str) -> int | tuple[int, int]:
    """Inverse of :func:`encode_token`; raises ValueError on anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
        if "updated" in value:
            ms, seq = value["updated"]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (ms, seq)):
                raise ValueError(token)
            return (ms, seq)
        seq = value["before"]
    except Exception as exc:  # any malformed token is the caller's mistake, reported as 400
        raise ValueError(token) from exc
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise ValueError(token)
    return seq
