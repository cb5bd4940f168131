"""The client's background engine: one scheduler thread plus a small I/O pool.

The scheduler keeps a heap of "poll this run at time t" entries; due polls run on the I/O pool so one
slow request never delays the others. After success the same pool downloads the results, then the run's
future is completed. Nothing here prints; runs notify listeners (the run log, widgets) by callbacks.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .api import TERMINAL_STATUSES, ScenarioAPI
from .errors import AuthenticationError, NotFoundError, RodinError
from .jobs import RUNNING_STATUSES, PollPolicy, Run
from .store import Downloader, StoredFile

__all__ = ["Engine"]

log = logging.getLogger("rodin_nb.engine")

MAX_ERRORS_IN_A_ROW = 20
NOT_FOUND_TIMES = 3  # consecutive 404s before a job counts as lost


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
        self._heap: list[tuple[float, int, Run]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        # Three pools so slow work never delays urgent work: polls are quick GETs; downloads (tens of MB on
        # the real service) get their own threads; and sweep submissions (uploads + the generate call)
        # theirs, so a freed service slot is refilled at once instead of after the downloads queued
        # before it.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rodin_nb-poll")
        self._work_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rodin_nb-work")
        self._submit_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rodin_nb-submit")
        self._tracked: dict[str, Run] = {}
        self.parallel_jobs = parallel_jobs  # the account's parallel-job limit (queue simulation)
        self.finalize_s = 0.0  # typical finalizing time, learned from finished jobs' statusHistory
        self._durations: dict[tuple[Any, Any], float] = {}  # (tier, quality) -> running time seen here

    # --- public --------------------------------------------------------------------------------------

    def track(self, run: Run, *, delay: float | None = None) -> None:
        """Start following ``run`` (which must have a job id)."""
        with self._cv:
            if self._stopped:
                raise RuntimeError("the client is closed")
            self._tracked[run.run_id] = run
            run.not_found = 0
        if delay is None:
            eta = self._eta(run)
            delay = self.poll.first_s if eta is None else self.poll.next_delay(self.poll.first_s, eta)
        with self._cv:
            run.poll_delay = delay
            self._schedule(run, run.poll_delay)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="rodin_nb-engine", daemon=True)
                self._thread.start()

    def follow_submission(
        self, run: Run, resolve: Callable[[Run, bool], str | None], *, patience_s: float = 90.0
    ) -> None:
        """Follow a run whose job another process (or a crashed one) was submitting.

        ``resolve(run, final)`` returns the job id once known; with ``final`` it may search the service.
        Until ``patience_s`` have passed only the cheap path is taken; then, if no job is found, the run
        is marked lost (never re-submitted silently).
        """
        run.follow_deadline = time.monotonic() + patience_s
        run.resolve_job_id = resolve
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

        try:
            self._submit_pool.submit(guarded)
        except RuntimeError:  # the pool is shut down: the client is closing
            return False
        return True

    def active_runs(self) -> list[Run]:
        with self._cv:
            return [run for run in self._tracked.values() if not run.done]

    def download(self, run: Run) -> None:
        """(Re)download a successful run's files on the work pool; ``run.wait()`` waits for it again."""
        run._rearm()
        with contextlib.suppress(RuntimeError):  # the client is closing; resume() downloads later
            self._work_pool.submit(self._download, run)

    def stop(self) -> None:
        """Stop following runs. Their jobs keep running on the service; anyone waiting is released."""
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
            unfinished = [run for run in self._tracked.values() if not run.done]
        # Pools first: a listener told of the detach below (a sweep) must find them closed and end
        # itself, instead of queueing work that the shutdown would then silently drop.
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

    def _schedule(self, run: Run, delay: float) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), run))
        self._cv.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cv.wait(timeout)
                if self._stopped:
                    return
                _, _, run = heapq.heappop(self._heap)
            # Finding the job of a run submitted elsewhere may list jobs several times with pauses in
            # between: it goes to the work pool, so it never holds up the quick status checks.
            pool = self._pool if run.job_id is not None else self._work_pool
            try:
                pool.submit(self._poll_once, run)
            except RuntimeError:  # pool shut down while stopping
                return

    def _poll_once(self, run: Run) -> None:
        try:
            self._poll(run)
        except Exception as exc:  # never let a pool thread swallow a run: it would wait forever
            log.exception("unexpected error while following run %s", run.run_id)
            run.errors_in_a_row += 1
            if run.errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
                run._abort(RodinError(f"stopped following job {run.job_id} after repeated errors: {exc}"))
            else:
                self._reschedule_after_error(run)

    def _reschedule_after_error(self, run: Run) -> None:
        run.poll_delay = min(self.poll.max_s, max(self.poll.min_s, run.poll_delay * self.poll.growth))
        with self._cv:
            if not self._stopped:
                self._schedule(run, run.poll_delay)

    def _poll(self, run: Run) -> None:
        if run.job_id is None and not self._resolve_job_id(run):
            return
        assert run.job_id is not None
        try:
            job = self.api.get_job(run.job_id)
        except NotFoundError:
            # One 404 may be a replica lagging behind; only a job missing again and again is lost.
            run.not_found += 1
            if run.not_found >= NOT_FOUND_TIMES:
                run._mark_lost(f"the service no longer knows job {run.job_id}")
            else:
                self._reschedule_after_error(run)
            return
        except AuthenticationError as exc:
            # Credentials went bad mid-run: stop following rather than spin; the job id stays for resume.
            run._abort(exc)
            return
        except RodinError as exc:
            # The transport already retried; try again later, backing off, never dropping the run.
            log.info("poll of %s failed (%s); will retry", run.job_id, exc)
            self._reschedule_after_error(run)
            return
        run.errors_in_a_row = 0
        run.not_found = 0
        run._apply_job(job)
        if run.status == "success":
            self._learn(run)
            self.download(run)
        elif run.status in TERMINAL_STATUSES:
            run._finish()
        else:
            run.poll_delay = self.poll.next_delay(
                run.poll_delay, self._eta(run), base=self._overdue_base(run)
            )
            with self._cv:
                if not self._stopped:
                    self._schedule(run, run.poll_delay)

    @staticmethod
    def _mesh_stats(path: Path) -> dict[str, Any] | None:
        from .meshstats import mesh_stats

        try:
            return mesh_stats(path)
        except Exception:  # statistics are a bonus; a file trimesh cannot read still is the result
            log.warning("could not compute mesh statistics for %s", path, exc_info=True)
            return None

    def _overdue_base(self, run: Run) -> float:
        """Where backing off starts when a job outlives its estimate: a small share of its phase."""
        if run.status == "finalizing" and self.finalize_s:
            return 0.2 * self.finalize_s
        return 0.05 * run.expected_s if run.expected_s else 0.0

    def _learn(self, run: Run) -> None:
        """Learn phase durations from a finished job, and share them with similar jobs still running."""
        phases = run.phase_durations()
        if "finalizing" in phases:
            seen = phases["finalizing"]
            self.finalize_s = seen if not self.finalize_s else 0.7 * self.finalize_s + 0.3 * seen
        if run.duration_s is None:
            return
        key = (run.params.get("tier"), run.params.get("quality"))
        self._durations[key] = run.duration_s
        with self._cv:
            similar = [r for r in self._tracked.values() if not r.done and r.expected_s is None]
        for other in similar:
            if (other.params.get("tier"), other.params.get("quality")) == key:
                other.expected_s = run.duration_s

    def _eta(self, run: Run) -> float | None:
        """Seconds until ``run`` is expected to finish: from its progress while running, and for a queued
        job by replaying the service's queue (the account's parallel slots free up as the running jobs
        finish, then serve queued jobs in submission order)."""
        if run.status in RUNNING_STATUSES:
            return run.eta_s(self.finalize_s)
        if run.status not in ("pending", "queued") or run.expected_s is None:
            return None
        with self._cv:
            active = [r for r in self._tracked.values() if not r.done]
        running = [
            max(0.0, r.eta_s(self.finalize_s) or r.expected_s or 0.0)
            for r in active
            if r.status in RUNNING_STATUSES
        ]
        slots = sorted(running)[: self.parallel_jobs]
        slots += [0.0] * max(0, self.parallel_jobs - len(slots))
        heapq.heapify(slots)
        waiting = sorted((r for r in active if r.status in ("pending", "queued")), key=_queue_order)
        for other in waiting:
            finish = heapq.heappop(slots) + (other.expected_s or run.expected_s)
            if other is run:
                return finish
            heapq.heappush(slots, finish)
        return None

    def _resolve_job_id(self, run: Run) -> bool:
        """Find the job id of a run submitted elsewhere; reschedule or mark lost when there is none."""
        final = time.monotonic() >= run.follow_deadline
        resolve = run.resolve_job_id
        job_id = resolve(run, final) if resolve is not None else None
        if job_id:
            run.job_id = job_id
            return True
        if final:
            run._mark_lost(
                "the submission was interrupted before a job was created; nothing was billed "
                "(client.log.rerun(run_id) submits it again)"
            )
            return False
        with self._cv:
            if not self._stopped:
                self._schedule(run, 0.2)
        return False

    def _download(self, run: Run) -> None:
        """Download every result asset and the preview the service attached to it."""
        try:
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
            run.stored = stored
            model = next((item for item in stored if item.role == "model"), None)
            if model is not None and run.mesh_stats is None:
                run.mesh_stats = self._mesh_stats(model.path)
            run.download_error = None
        except RodinError as exc:  # AssetError, or the API refusing the asset lookups
            run.download_error = str(exc)
        except Exception as exc:
            log.exception("unexpected error while downloading run %s", run.run_id)
            run.download_error = f"{type(exc).__name__}: {exc}"
        run._finish()


def _queue_order(run: Run) -> tuple[float, str]:
    created = run.created_at or run.submitted_at
    return (created.timestamp(), run.job_id or "")
