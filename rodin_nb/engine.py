"""The client's background engine: one scheduler thread plus small thread pools.

The scheduler keeps a heap of "look at this run at time t" entries; due looks run on a pool so one slow
request never delays the others. After success the download pool fetches the results, and only then is
the run a success (until then it is ``downloading``). Nothing here prints; runs notify listeners (the run
log, widgets, sweeps) by callbacks.

Each followed run has an engine-private record (:class:`_Followed`): when to look next, errors and 404s
in a row, its :class:`~rodin_nb.timing.Timeline`, and, for a run whose job id is not known yet, how to
look for it and until when. None of this is on the :class:`~rodin_nb.jobs.Run` the user holds.

When is per job (each job's predicted finish); how is shared: while two jobs or more are on the service,
the jobs due at a moment are looked at together with one filtered job list (:mod:`rodin_nb.batchpoll`)
that also reports every other followed job that changed. A job is asked about on its own
(``GET /v1/jobs/{jobId}``) when the list cannot say enough: a job it has never reported, an abbreviated
item for a job that ended or whose progress is wanted, a job the list has not mentioned for long, or
while the list is failing (the 404 -> lost rule therefore still rests on the job's own answers).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .api import ScenarioAPI
from .batchpoll import JobLister, since, updated_at, whole
from .errors import AuthenticationError, NotFoundError, RodinError
from .jobs import Run
from .status import ON_SERVICE, RUNNING, TERMINAL, parse_status
from .store import Downloader, StoredFile
from .timing import FinalizeModel, PollPolicy, Timeline, phase_durations

__all__ = ["Engine", "JobSearch"]

log = logging.getLogger("rodin_nb.engine")

MAX_ERRORS_IN_A_ROW = 20
NOT_FOUND_TIMES = 3  # consecutive 404s before a job counts as lost
# How long stop() lets downloads already under way finish, so a script that ends right after a job
# succeeded still gets its files (the rest is picked up by client.resume()).
STOP_GRACE_S = 10.0
# A job the list has not mentioned for this many of the policy's longest waits is asked about on its own.
CONFIRM_WAITS = 5

# How to learn the job id of a run whose submission is unsettled: called with ``final`` False while
# there is time left, True at the deadline. Returns the job id, or None; with ``final`` True and no job,
# it must have ended the run itself (the submission protocol decides between not-submitted and lost).
JobSearch = Callable[[bool], "str | None"]


@dataclass(eq=False)
class _Followed:
    """The engine's bookkeeping for one run (never on the user's Run)."""

    run: Run
    timeline: Timeline = field(default_factory=Timeline)
    delay: float = 0.0  # the last wait between two looks
    errors_in_a_row: int = 0
    not_found: int = 0  # consecutive 404s for its job
    search: JobSearch | None = None  # set while the job id is being looked for
    search_until: float = 0.0  # monotonic deadline of that search
    search_every_s: float = 0.2
    entry: int = -1  # the heap entry that is this record's next look (older entries are skipped)
    overdue: int = 0  # looks in a row that found the job past its predicted finish
    # Up to when (service clock) the job's state is known: a later list reports any change after it.
    known_until: datetime | None = None
    # True while known_until is a lower bound of the job's own updatedAt (its stamps, not a list's high
    # water): a complete list look from before it must then report the job, or the list is wrong.
    own_stamp: bool = True
    confirmed: float = 0.0  # monotonic time of the last answer about this job (its own, or a list's)


def _known_until(run: Run) -> datetime | None:
    """A safe lower bound of the job's updatedAt, from what the run already holds (None: unknown)."""
    moments = [when for _, when in run.status_history]
    if run.created_at is not None:
        moments.append(run.created_at)
    return max(moments) if moments else None


class Engine:
    """Polls every tracked run and downloads its results; owned by one client."""

    def __init__(
        self,
        api: ScenarioAPI,
        downloader: Downloader,
        poll: PollPolicy,
        *,
        workers: int = 4,
        parallel_jobs: int = 4,
    ) -> None:
        self.api = api
        self.downloader = downloader
        self.poll = poll
        self._heap: list[tuple[float, int, _Followed]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        # Separate pools so slow work never delays urgent work: polls are quick GETs; downloads (tens of MB
        # on the real service) get their own threads; and sweep submissions (uploads + the generate call)
        # theirs, so a freed service slot is refilled at once instead of after the downloads queued
        # before it.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rodin_nb-poll")
        self._work_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rodin_nb-work")
        self._submit_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rodin_nb-submit")
        self._followed: dict[str, _Followed] = {}
        self._downloading: set[str] = set()  # run ids with a download under way
        self.parallel_jobs = parallel_jobs  # the account's parallel-job limit (queue simulation)
        self.finalize = FinalizeModel()  # finalizing times, learned from finished jobs' statusHistory
        self.lister = JobLister(api, rest_s=poll.max_s)
        self._due: set[_Followed] = set()  # records waiting for the next list look
        self._listing = False  # a list look is under way (one at a time)
        self._durations: dict[tuple[Any, Any], float] = {}  # (tier, quality) -> running time seen here

    # --- public --------------------------------------------------------------------------------------

    def track(self, run: Run, *, delay: float | None = None, expected_s: float | None = None) -> None:
        """Start following ``run`` (which must have a job id, unless :meth:`find_job` set a search)."""
        with self._cv:
            if self._stopped:
                raise RuntimeError("the client is closed")
            record = self._followed.get(run.run_id)
            if record is None or record.run is not run:
                record = self._followed[run.run_id] = _Followed(run)
            record.not_found = 0
            if record.known_until is None:
                record.known_until = _known_until(run)
            if expected_s is not None:
                record.timeline.expected_s = expected_s
            elif record.timeline.expected_s is None:
                record.timeline.expected_s = self._durations.get(_duration_key(run))
            record.timeline.observe(run)
        if delay is None:
            eta = self._eta(record)
            delay = self.poll.first_s if eta is None else self.poll.next_delay(self.poll.first_s, eta)
        with self._cv:
            record.delay = delay
            self._schedule(record, delay)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="rodin_nb-engine", daemon=True)
                self._thread.start()

    def find_job(self, run: Run, search: JobSearch, *, patience_s: float, every_s: float = 0.2) -> None:
        """Follow a run whose job id is not known yet: look for it now and then for ``patience_s``.

        Used for a submission whose outcome is unsettled (no answer after the request was sent, or
        another process that was submitting it). The looks run on the download pool, off the quick
        status checks; ``search(final)`` decides what was found (see :data:`JobSearch`).
        """
        with self._cv:
            record = self._followed.get(run.run_id)
            if record is None or record.run is not run:
                record = self._followed[run.run_id] = _Followed(run)
            record.search = search
            record.search_until = time.monotonic() + patience_s
            record.search_every_s = every_s
        self.track(run, delay=0)

    def run_task(self, task: Callable[[], None]) -> bool:
        """Run ``task`` on the submission pool (a sweep's next runs, off the polling and download paths).

        Returns False when the engine is stopped (the client closed) and the task will never run.
        """

        def guarded() -> None:
            try:
                task()
            except Exception:
                log.exception("background task failed")

        return self._offer(self._submit_pool, guarded)

    def active_runs(self) -> list[Run]:
        with self._cv:
            return [record.run for record in self._followed.values() if not record.run.done]

    def download(self, run: Run) -> None:
        """(Re)download a successful run's files; ``run.wait()`` waits for them."""
        run._rearm()
        with self._cv:
            if run.run_id in self._downloading:
                return  # already under way: wait() waits for that one
            self._downloading.add(run.run_id)
        if not self._offer(self._work_pool, lambda: self._download(run)):
            # Closing: the run stays "downloading" in the log, and client.resume() fetches its files.
            with self._cv:
                self._downloading.discard(run.run_id)
            run._download_failed("the client closed before the files were downloaded; resume() fetches them")

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop following runs. Their jobs keep running on the service; anyone waiting is released.

        Downloads already under way get ``grace_s`` to finish (so files a script was about to receive
        are kept); polls and searches stop at once. Nothing left unfinished is recorded as ended: the
        run log keeps each run's last state for ``client.resume()``.
        """
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
            deadline = time.monotonic() + grace_s
            while self._downloading and time.monotonic() < deadline:
                self._cv.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            unfinished = [record.run for record in self._followed.values() if not record.run.done]
        # Pools before the runs are released: a listener told of the detach below (a sweep) must find
        # them closed and end itself, instead of queueing work that the shutdown would silently drop.
        for pool in (self._pool, self._work_pool, self._submit_pool):
            pool.shutdown(wait=False, cancel_futures=True)
        for run in unfinished:
            run._detach(
                RodinError(
                    f"the client was closed while run {run.run_id} was {run.status}; its job "
                    "keeps running: client.resume() or client.run(run_id) picks it up"
                )
            )

    # --- scheduler -----------------------------------------------------------------------------------

    def _offer(self, pool: ThreadPoolExecutor, task: Callable[[], None]) -> bool:
        """Hand ``task`` to ``pool``; False once the pool (or the interpreter) is shutting down."""
        try:
            pool.submit(task)
        except RuntimeError:  # "cannot schedule new futures after (interpreter) shutdown"
            return False
        return True

    def _schedule(self, record: _Followed, delay: float) -> None:
        """Make ``record``'s next look ``delay`` seconds from now (replacing any look already planned)."""
        if self._stopped:
            return
        record.entry = next(self._seq)
        heapq.heappush(self._heap, (time.monotonic() + delay, record.entry, record))
        self._cv.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cv.wait(timeout)
                if self._stopped:
                    return
                _, entry, record = heapq.heappop(self._heap)
                if entry != record.entry:
                    continue  # superseded: a later answer already planned this record's next look
                if record.run.job_id is not None and record.run.status in ON_SERVICE and self._batching():
                    self._due.add(record)
                    if self._listing:
                        continue  # the look under way takes it next
                    self._listing = True
                    task: Callable[[], None] = self._list_looks
                else:
                    task = lambda record=record: self._look(record)  # type: ignore[misc]  # noqa: E731
            # Looking for the job of an unsettled submission may list jobs several times with pauses in
            # between: it goes to the work pool, so it never holds up the quick status checks.
            pool = self._pool if record.run.job_id is not None else self._work_pool
            if not self._offer(pool, task):
                return

    def _batching(self) -> bool:
        """Whether due jobs are looked at with the list: two jobs or more on the service, a usable list."""
        on_service = 0
        for other in self._followed.values():
            if other.run.job_id is not None and other.run.status in ON_SERVICE and not other.run.done:
                on_service += 1
                if on_service >= 2:
                    return self.lister.usable()
        return False

    def _look(self, record: _Followed) -> None:
        try:
            if record.run.job_id is None:
                self._search(record)
            else:
                self._poll(record)
        except Exception as exc:  # never let a pool thread swallow a run: it would wait forever
            log.exception("unexpected error while following run %s", record.run.run_id)
            record.errors_in_a_row += 1
            if record.errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
                run = record.run
                run._abort(RodinError(f"stopped following job {run.job_id} after repeated errors: {exc}"))
            else:
                self._back_off(record)

    def _back_off(self, record: _Followed) -> None:
        record.delay = min(self.poll.max_s, max(self.poll.min_s, record.delay * self.poll.growth))
        with self._cv:
            self._schedule(record, record.delay)

    def _search(self, record: _Followed) -> None:
        """One look for the job id of an unsettled submission (see :meth:`find_job`)."""
        final = time.monotonic() >= record.search_until
        job_id = record.search(final) if record.search is not None else None
        if job_id:
            record.run.job_id = job_id
            record.search = None
            with self._cv:
                self._schedule(record, 0)
        elif not final and not record.run.done:
            with self._cv:
                self._schedule(record, record.search_every_s)

    def _poll(self, record: _Followed) -> None:
        """One look at one job: ``GET /v1/jobs/{jobId}``."""
        run = record.run
        assert run.job_id is not None
        try:
            job = self.api.get_job(run.job_id)
            received = time.monotonic()
        except NotFoundError:
            # One 404 may be a replica lagging behind; only a job missing again and again is lost.
            record.not_found += 1
            if record.not_found >= NOT_FOUND_TIMES:
                run._end("lost", f"the service no longer knows job {run.job_id}", None, None)
            else:
                # "lost" is final for a paid job: give a lagging replica time (at least first_s a look).
                record.delay = max(record.delay, self.poll.first_s)
                self._back_off(record)
            return
        except AuthenticationError as exc:
            # Credentials went bad mid-run: stop following rather than spin; the job id stays for resume.
            run._abort(exc)
            return
        except RodinError as exc:
            # The transport already retried; try again later, backing off, never dropping the run.
            log.info("poll of %s failed (%s); will retry", run.job_id, exc)
            self._back_off(record)
            return
        stamp = updated_at(job)
        known = record.known_until
        if (
            known is not None
            and stamp is not None
            and stamp <= known
            and parse_status(job.get("status"), current=run.status) != run.status
            and run.status in ON_SERVICE
        ):
            # The job changed before the moment a list said it was unchanged: the list lags.
            self.lister.rest(f"the job list missed a change of job {run.job_id}")
        self._take(record, job, received)

    def _take(self, record: _Followed, job: dict[str, Any], received: float) -> None:
        """Take an answer about the job (its own, or a whole list item, ``received`` at that monotonic
        time): apply it, then act on it."""
        run = record.run
        record.errors_in_a_row = 0
        record.not_found = 0
        record.confirmed = received
        stamp = updated_at(job)
        if stamp is not None and (record.known_until is None or stamp > record.known_until):
            record.known_until = stamp
            record.own_stamp = True
        run._apply_job(job)
        record.timeline.observe(run, received)
        if run.status == "downloading":
            self._learn(record)
            self.download(run)
        elif run.status in TERMINAL:
            run._finish()
        else:
            self._plan(record)

    def _plan(self, record: _Followed) -> None:
        """Plan the next look from the job's predicted finish (backing off once it is overdue)."""
        eta = self._eta(record)
        if eta is not None and eta <= 0:
            # Overdue: back off from a small share of the phase, not from the last (long) wait.
            previous = record.delay if record.overdue else 0.0
            record.overdue += 1
        else:
            previous = record.delay
            record.overdue = 0
        record.delay = self.poll.next_delay(previous, eta, base=self._overdue_base(record))
        with self._cv:
            self._schedule(record, record.delay)

    # --- batch looks ---------------------------------------------------------------------------------

    def _list_looks(self) -> None:
        """List looks, one after the other, until no record is due (the pool thread of the list)."""
        while True:
            with self._cv:
                due, self._due = self._due, set()
                if not due or self._stopped:
                    self._listing = False
                    return
            try:
                self._list_look(due)
            except Exception:
                log.exception("unexpected error in a list look; looking at each job on its own")
                for record in due:
                    self._offer(self._pool, lambda record=record: self._look(record))  # type: ignore[misc]

    def _list_look(self, due: set[_Followed]) -> None:
        """One ``GET /v1/jobs`` for every job due now; a job's own GET where the list cannot tell."""
        with self._cv:
            followed = {
                record.run.job_id: record
                for record in self._followed.values()
                if record.run.job_id is not None and record.run.status in ON_SERVICE and not record.run.done
            }
        known = [record.known_until for record in followed.values() if record.known_until is not None]
        asked = time.monotonic()
        try:
            look = self.lister.look(since(known))
            received = time.monotonic()
        except RodinError as exc:
            log.info("job list failed (%s); looking at each due job on its own", exc)
            for record in due:
                self._offer(self._pool, lambda record=record: self._look(record))  # type: ignore[misc]
            return
        alone: set[_Followed] = set()  # looked at on its own, now
        mentioned: set[_Followed] = set()

        # Endings first (their downloads start, a sweep refills its slot), then other changes, then
        # progress: applying a job writes the run log, which takes a moment on a busy machine.
        def urgency(item: tuple[str, dict[str, Any]]) -> int:
            job_id, job = item
            status = parse_status(job.get("status"))
            if status in TERMINAL:
                return 0
            return 1 if job_id in followed and followed[job_id].run.status != status else 2

        for job_id, job in sorted(look.jobs.items(), key=urgency):
            if job_id not in followed:
                continue  # a job of another run, session or user
            record = followed[job_id]
            if record.run.done or record.run.status not in ON_SERVICE:
                continue
            stamp = updated_at(job)
            if stamp is not None and record.known_until is not None and stamp < record.known_until:
                continue  # older than what is known already (a lagging replica, or a look that crossed)
            mentioned.add(record)
            if whole(job):
                self._take(record, job, received)
                continue
            # An abbreviated item only says the job changed: its own answer has the rest.
            record.confirmed = asked
            status = parse_status(job.get("status"), current=record.run.status)
            if status != record.run.status or status in TERMINAL or (record in due and status in RUNNING):
                alone.add(record)
                continue
            if stamp is not None and record.known_until is not None and stamp > record.known_until:
                record.known_until = stamp  # the same status, as of then (the job's own stamp)
                record.own_stamp = True
            if record in due:
                self._plan(record)
        if not look.complete:
            # Cut short (a busy account: other jobs fill the pages): each due job on its own for a while.
            self.lister.rest("the job list ran past its page limit")
        # Every followed job known up to its own stamp changed at or after it, so it is newer than the
        # look's start and a complete list must report it. One left out means the filter misses our
        # jobs (another job type) or the list lags: follow each job on its own for a while.
        left_out = [
            record
            for job_id, record in followed.items()
            if job_id not in look.jobs and record.own_stamp and record.known_until is not None
        ]
        if look.complete and left_out:
            self.lister.rest(f"the job list left out {len(left_out)} followed job(s) it should have reported")
            alone.update(record for record in left_out if record in due)
        for record in due - mentioned:
            if record.run.done or record.run.status not in ON_SERVICE or record in alone:
                continue
            never = record.confirmed == 0.0 or record.known_until is None
            stale = asked - record.confirmed > CONFIRM_WAITS * self.poll.max_s
            if never or not look.complete or stale:
                alone.add(record)  # no answer yet since it was tracked, cut short, or silent for long
                continue
            self._plan(record)  # unchanged since it was last known
        if look.complete and look.high_water is not None:
            # Every change up to the high-water mark was visible: the silent jobs are known up to it.
            for record in followed.values():
                until = record.known_until
                if record not in mentioned and until is not None and look.high_water > until:
                    record.known_until = look.high_water
                    record.own_stamp = False
        for record in alone:
            self._offer(self._pool, lambda record=record: self._look(record))  # type: ignore[misc]

    # --- prediction ----------------------------------------------------------------------------------

    def _overdue_base(self, record: _Followed) -> float:
        """Where backing off starts when a job outlives its estimate: a small share of its phase."""
        timeline = record.timeline
        if record.run.status == "finalizing" and self.finalize.learned:
            return 0.05 * self.finalize.predict(timeline.in_progress_s)
        expected = timeline.in_progress_s or timeline.expected_s
        return 0.01 * expected if expected else 0.0

    def _learn(self, record: _Followed) -> None:
        """Learn phase durations from a finished job, and share them with similar jobs still running."""
        run = record.run
        phases = phase_durations(run)
        if "finalizing" in phases:
            self.finalize.learn(phases["finalizing"], phases.get("in-progress"))
        if run.duration_s is None:
            return
        key = _duration_key(run)
        self._durations[key] = run.duration_s
        with self._cv:
            similar = [
                other
                for other in self._followed.values()
                if not other.run.done
                and other.timeline.expected_s is None
                and _duration_key(other.run) == key
            ]
        for other in similar:
            other.timeline.expected_s = run.duration_s

    def _eta(self, record: _Followed) -> float | None:
        """Seconds until the run is expected to finish: from its progress while running, and for a queued
        job by replaying the service's queue (the account's parallel slots free up as the running jobs
        finish, then serve queued jobs in submission order)."""
        run = record.run
        if run.status in RUNNING:
            return record.timeline.eta_s(run.status, self.finalize)
        expected = record.timeline.expected_s
        if run.status not in ("pending", "queued") or expected is None:
            return None
        with self._cv:
            active = [other for other in self._followed.values() if other.run.status in ON_SERVICE]
        running = [
            max(
                0.0,
                other.timeline.eta_s(other.run.status, self.finalize) or other.timeline.expected_s or 0.0,
            )
            for other in active
            if other.run.status in RUNNING
        ]
        slots = sorted(running)[: self.parallel_jobs]
        slots += [0.0] * max(0, self.parallel_jobs - len(slots))
        heapq.heapify(slots)
        waiting = sorted((o for o in active if o.run.status in ("pending", "queued")), key=_queue_order)
        for other in waiting:
            finish = heapq.heappop(slots) + (other.timeline.expected_s or expected)
            if other is record:
                return finish
            heapq.heappush(slots, finish)
        return None

    # --- downloads -----------------------------------------------------------------------------------

    def _download(self, run: Run) -> None:
        """Download every result asset and the preview the service attached to it; then it is a success."""
        try:
            if not run.asset_ids:
                raise RodinError(f"job {run.job_id} succeeded but lists no result assets")
            stored: list[StoredFile] = []
            for asset_id in run.asset_ids:
                asset = self.api.get_asset(asset_id)
                kind = str(asset.get("kind") or "")
                role = "model" if kind == "3d" else ("preview" if kind == "image" else "other")
                stored.append(self.downloader.fetch(asset_id, role=role, asset=asset))
                preview = asset.get("preview") or asset.get("thumbnail") or {}
                preview_id = preview.get("assetId") if isinstance(preview, dict) else None
                if preview_id and preview_id not in run.asset_ids:
                    stored.append(self.downloader.fetch(str(preview_id), role="preview"))
            stored.sort(key=lambda item: {"model": 0, "preview": 1}.get(item.role, 2))
            model = next((item for item in stored if item.role == "model"), None)
            stats = self._mesh_stats(model.path) if model is not None and run.mesh_stats is None else None
            run._downloaded(stored, stats)
        except RodinError as exc:  # AssetError, or the API refusing the asset lookups
            run._download_failed(str(exc))
        except Exception as exc:
            log.exception("unexpected error while downloading run %s", run.run_id)
            run._download_failed(f"{type(exc).__name__}: {exc}")
        finally:
            with self._cv:
                self._downloading.discard(run.run_id)
                self._cv.notify_all()

    @staticmethod
    def _mesh_stats(path: Path) -> dict[str, Any] | None:
        from .meshstats import mesh_stats

        try:
            return mesh_stats(path)
        except Exception:  # statistics are a bonus; a file trimesh cannot read still is the result
            log.warning("could not compute mesh statistics for %s", path, exc_info=True)
            return None


def _duration_key(run: Run) -> tuple[Any, Any]:
    return (run.params.get("tier"), run.params.get("quality"))


def _queue_order(record: _Followed) -> tuple[float, str]:
    run = record.run
    created = run.created_at or run.submitted_at
    return (created.timestamp(), run.job_id or "")
