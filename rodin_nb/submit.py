"""Paying once: the submission protocol, from the claim in the run log to a job the engine follows.

Every job-creating call goes through :class:`Submitter`, and each attempt is a :class:`Submission`
walking this table (enforced by :meth:`Submission.advance`; any other step raises
:class:`IllegalTransition`)::

    claim (row "submitting")
      │
      ▼
    submitting ──answered 2xx──────────────────────────────────────────────▶ created     (engine follows)
      │  │
      │  └──refused: a 4xx answer, the request provably never sent, or a local
      │     failure before the POST (an image upload) ──────────────────────▶ refused     run: not-submitted
      │
      └──5xx/409 answered, or no answer after the body was sent ───────────▶ ambiguous
                                                                               │
    ambiguous ──a matching job is listed ──────────────────────────────────────┼─▶ reattached (engine follows)
    ambiguous ──answered, every look worked, no job, attempts left ────────────┼─▶ submitting (POST again)
    ambiguous ──settled: every look worked and no job after the search window ─┼─▶ not-submitted
    ambiguous ──cannot tell: the job list could not be read to the end ────────┴─▶ lost

Run statuses on the right are what the user and the run log see (:mod:`rodin_nb.status`). "Settled"
means the service answered an error and listing recent jobs (a few looks, ``settle_s`` apart) shows no
job with these inputs, or, when no answer came at all (timeout, dropped connection after sending), no
such job appeared within ``search_s`` (2 minutes on Scenario, 2 s on the sandbox). Only that truly
ambiguous case keeps searching, in the background on the engine, while the caller gets its run at once.

A run found ``submitting`` in the log after a restart (its process died mid-submission) enters the
table at ``ambiguous``: its job is looked for, never created again silently.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .api import job_id_of, parse_time
from .errors import APIConnectionError, APIError, ConflictError, RodinError, ServerError
from .jobs import Run
from .runlog import owner_alive
from .schema import RodinRequest, canonical_json
from .status import TERMINAL
from .store import StoredFile

if TYPE_CHECKING:
    from .client import Client

__all__ = ["TRANSITIONS", "IllegalTransition", "Submission", "SubmissionState", "Submitter"]

log = logging.getLogger("rodin_nb.submit")

SubmissionState = Literal[
    "submitting", "created", "refused", "ambiguous", "reattached", "not-submitted", "lost"
]

TRANSITIONS: dict[SubmissionState, frozenset[SubmissionState]] = {
    "submitting": frozenset({"created", "refused", "ambiguous"}),
    "ambiguous": frozenset({"reattached", "submitting", "not-submitted", "lost"}),
    "created": frozenset(),
    "refused": frozenset(),
    "reattached": frozenset(),
    "not-submitted": frozenset(),
    "lost": frozenset(),
}

# How far back to look for a job we may have created: generous, because the service's clock and ours
# may disagree; the input match and the exclusion of job ids already in the log keep it precise.
RECONCILE_WINDOW = timedelta(minutes=10)
POST_ATTEMPTS = 3  # generate calls per submission, when the service answered an error and made no job
FOREIGN_PATIENCE_S = 90.0  # how long to wait for another live process to finish submitting a run
NOTHING_BILLED = "no job was created and nothing was billed"


class _Interrupted(RodinError):
    """Why a logged submission is unsettled: its process stopped before recording a job."""


class IllegalTransition(RuntimeError):
    """A submission tried a step its state table does not allow (a bug in rodin_nb, never user error)."""


@dataclass(eq=False)
class Submission:
    """One run's way to its job: the state, the body sent, and what went wrong last."""

    run: Run
    body: dict[str, Any] = field(default_factory=dict)
    state: SubmissionState = "submitting"
    attempts: int = 0  # generate calls made
    last_error: BaseException | None = None
    clean_looks: int = 0  # looks at the job list read to the end that showed no such job
    since: datetime = field(default_factory=lambda: datetime.now(timezone.utc) - RECONCILE_WINDOW)
    history: list[SubmissionState] = field(default_factory=lambda: ["submitting"])

    def advance(self, new: SubmissionState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise IllegalTransition(
                f"run {self.run.run_id}: a submission cannot go from {self.state!r} to {new!r} "
                f"(allowed: {sorted(TRANSITIONS[self.state]) or 'none, it has ended'})"
            )
        self.state = new
        self.history.append(new)

    @property
    def settled(self) -> bool:
        return not TRANSITIONS[self.state]


class Submitter:
    """Creates each job exactly once, and re-attaches runs to jobs after a crash or a restart.

    Owned by a :class:`~rodin_nb.client.Client`; uses its API, run log, engine and uploads. The live runs
    of this process are kept here too (``runs``): a twin request gets the very Run being submitted.
    """

    def __init__(self, client: Client, *, settle_s: float, search_s: float) -> None:
        self.client = client
        self.settle_s = settle_s  # pause between looks at the job list after an answered error
        self.search_s = search_s  # how long an unanswered generate call is searched for
        self.lock = threading.RLock()
        self.runs: dict[str, Run] = {}

    # --- creating a job ------------------------------------------------------------------------------

    def start(self, request: RodinRequest, *, reuse: bool, sweep_id: str | None = None) -> Run:
        """Claim the request in the log and create its job; the run is handed to the engine.

        Never raises for what the service answers: a refused or settled submission ends the run
        ``not-submitted`` (``run.wait()`` raises the cause). Only a keyboard interrupt (or another
        ``BaseException``) escapes, after the run was handed to a background search if the request may
        have reached the service.
        """
        client = self.client
        run = Run(client, request, model_id=client.model_id, sweep_id=sweep_id)
        with self.lock:
            # Claim and register as one step: a twin request in another thread of this process then
            # gets this very Run (still submitting), never a second object following the same job.
            existing = client.log.claim(self._new_row(run), reuse=reuse)
            if existing is None:
                self.runs[run.run_id] = run
        if existing is not None:
            return self.run_for_row(existing)
        run.on_change(client.log.record)
        submission = Submission(run)
        try:
            if request.local_images:
                run.request = request = client.uploads.resolve(request)
                client.log.update(run.run_id, params=request.to_body())
            submission.body = request.to_body()
            self._post(submission)
        except Exception as exc:
            if submission.state not in ("submitting", "ambiguous"):
                raise  # after the job was created or settled (e.g. the client closed): not ours to settle
            if not submission.attempts:  # a local failure before the POST: nothing can have been created
                self._end_not_submitted(submission, exc, refused=True)
            else:  # an unexpected failure around the POST: the job may exist, look for it
                submission.last_error = exc
                if submission.state == "submitting":
                    submission.advance("ambiguous")
                self._search_later(submission)
        except BaseException as exc:  # an interrupt: the job may exist if the POST was under way
            if submission.attempts and not submission.settled:
                submission.last_error = exc
                if submission.state == "submitting":
                    submission.advance("ambiguous")
                self._search_later(submission)
            elif not submission.settled:
                self._end_not_submitted(submission, exc, refused=True)
            raise
        return run

    def _post(self, submission: Submission) -> None:
        """The generate call and its outcome, per the state table."""
        client = self.client
        run = submission.run
        while True:
            submission.attempts += 1
            try:
                response = client.api.generate(client.model_id, submission.body)
            except (ServerError, ConflictError) as exc:  # answered, but maybe created anyway
                submission.last_error = exc
                submission.advance("ambiguous")
                job, complete = self.find_job(
                    submission.body, since=submission.since, looks=3, submission=submission
                )
                if job is not None:
                    return self._reattach(submission, job)
                if not complete:
                    return self._search_later(submission)
                if submission.attempts >= POST_ATTEMPTS:
                    return self._end_not_submitted(submission, exc, refused=False)
                log.info("generate failed (%s) and no job was created; submitting again", exc)
                submission.advance("submitting")
                time.sleep(client.transport.retry.delay(submission.attempts - 1))
                continue
            except APIConnectionError as exc:
                submission.last_error = exc
                if not exc.maybe_sent:  # the transport already retried what provably never arrived
                    return self._end_not_submitted(submission, exc, refused=True)
                submission.advance("ambiguous")
                job, _ = self.find_job(
                    submission.body, since=submission.since, looks=2, submission=submission
                )
                if job is not None:
                    return self._reattach(submission, job)
                return self._search_later(submission)
            except APIError as exc:  # 4xx (and a 429 waited out for too long): nothing was created
                return self._end_not_submitted(submission, exc, refused=True)
            submission.advance("created")
            run._apply_job(response["job"])
            cost = response.get("creativeUnitsCost")
            if isinstance(cost, (int, float)):
                run.cost = float(cost)
                client.log.record(run)
            client.engine.track(run, expected_s=client.expected_duration(run.params))
            return

    def _reattach(self, submission: Submission, job: Mapping[str, Any]) -> None:
        submission.advance("reattached")
        run = submission.run
        log.info("generate was ambiguous (%s); re-attached to job %s", submission.last_error, job_id_of(job))
        run.reattached = True
        run._apply_job(job)
        self.client.engine.track(run, expected_s=self.client.expected_duration(run.params))

    def _search_later(self, submission: Submission) -> None:
        """No answer, or the job list unreadable: keep looking in the background for ``search_s``."""
        self.client.engine.find_job(
            submission.run, lambda final: self._search(submission, final), patience_s=self.search_s
        )

    def _search(self, submission: Submission, final: bool) -> str | None:
        run = submission.run
        if submission.settled:
            return None
        recorded = self.client.log.get(run.run_id).get("job_id")
        if recorded:  # a twin in another thread, or an earlier look, already found it
            return str(recorded)
        job, complete = self.find_job(submission.body, since=submission.since, looks=1, submission=submission)
        if job is not None:
            self._reattach_found(submission, job)
            return job_id_of(job)
        if final:
            # Settled when the last look read the whole list, or, after an error the service answered
            # (it was there and said it failed), when any look did: no job with these inputs exists.
            answered = isinstance(submission.last_error, APIError)
            if complete or (answered and submission.clean_looks):
                self._end_not_submitted(submission, submission.last_error, refused=False)
            else:
                self._end_lost(submission)
        return None

    def _reattach_found(self, submission: Submission, job: Mapping[str, Any]) -> None:
        """A job found by the background search: the engine's next look follows it."""
        submission.advance("reattached")
        submission.run.reattached = True
        submission.run._apply_job(job)

    def _end_not_submitted(self, submission: Submission, exc: BaseException | None, *, refused: bool) -> None:
        submission.advance("refused" if refused else "not-submitted")
        reason = f"{exc}" if isinstance(exc, RodinError) else f"{exc!r}"
        if refused:
            message = f"not submitted: {reason}"
            hint = f"{NOTHING_BILLED}; fix the cause and generate again"
        else:
            n = submission.attempts
            tries = f" after {n} attempt{'s' * (n != 1)}" if n else ""
            message = f"not submitted{tries}: {reason}; the job list shows no such job"
            hint = f"{NOTHING_BILLED}; generate again (a new attempt) when the service is back"
        # wait() raises the service's own answer; an interrupted submission has none (JobFailed then).
        cause = None if isinstance(exc, _Interrupted) else _with_note(exc)
        submission.run._end("not-submitted", message[:2000], hint, cause)

    def _end_lost(self, submission: Submission) -> None:
        submission.advance("lost")
        submission.run._end(
            "lost",
            f"the generate call got no answer ({submission.last_error}) and the job list could not be "
            f"read for {self.search_s:g} s: whether a job was created is unknown",
            "look for it in Scenario's web app and client.attach(job_id) it; generating again may pay twice",
            None,
        )

    def find_job(
        self,
        body: Mapping[str, Any],
        *,
        since: datetime,
        looks: int = 3,
        submission: Submission | None = None,
    ) -> tuple[dict[str, Any] | None, bool]:
        """A recently created job whose ``metadata.input`` matches ``body`` and that no run owns yet.

        Returns ``(job, complete)``; ``complete`` is False when the last look at the job list failed,
        so "not found" cannot be trusted. Jobs already recorded in the run log (by any process) are
        never taken. Looked for ``looks`` times, ``settle_s`` apart: a job created just before the
        connection dropped may take a moment to show up in the list.
        """
        client = self.client
        wanted = json.loads(canonical_json(dict(body)))
        with self.lock:
            owned = {run.job_id for run in self.runs.values() if run.job_id}
        owned |= client.log.job_ids(client.service)
        complete = True
        for look in range(looks):
            complete = True
            try:
                for job in client.api.list_jobs(created_after=since):
                    inputs = (job.get("metadata") or {}).get("input") or {}
                    if job_id_of(job) in owned or not isinstance(inputs, dict):
                        continue
                    if all(inputs.get(key) == value for key, value in wanted.items()):
                        return job, True
            except (APIConnectionError, APIError) as exc:
                complete = False
                log.info("listing jobs to reconcile failed: %s", exc)
            if complete and submission is not None:
                submission.clean_looks += 1
            if look < looks - 1:
                time.sleep(self.settle_s)
        return None, complete

    def _new_row(self, run: Run) -> dict[str, Any]:
        client = self.client
        return {
            "run_id": run.run_id,
            "sweep_id": run.sweep_id,
            "backend": client.backend,
            "service": client.service,
            "model_id": run.model_id,
            "params": run.request.identity(),
            "params_hash": run.request.params_hash,
            "seed": run.seed,
            "status": run.status,
            "submitted_at": run.submitted_at.isoformat(timespec="milliseconds"),
        }

    # --- re-attaching --------------------------------------------------------------------------------

    def run_for_row(self, row: Mapping[str, Any]) -> Run:
        """The live Run for a logged row: ours, re-attached, or a finished result from the log."""
        client = self.client
        with self.lock:
            if row["run_id"] in self.runs:
                return self.runs[row["run_id"]]
            run = Run.from_row(client, row, client.schema)
            self.runs[run.run_id] = run
        run.on_change(client.log.record)
        if run.status == "success":
            stored = _stored_from_row(client, row)
            if stored is None:
                client.engine.track(run, delay=0)  # a lost or damaged file: fetch it again (fresh URL)
            else:
                run.stored = stored
                run._finish()
        elif run.status in TERMINAL:
            run._finish()  # ended: nothing to follow
        elif run.job_id:
            client.engine.track(run, delay=0, expected_s=client.expected_duration(run.params))
        else:
            self._follow_foreign_submission(run, row)
        return run

    def _follow_foreign_submission(self, run: Run, row: Mapping[str, Any]) -> None:
        """A row still ``submitting`` that no live Run of ours owns: its submitter died, or is elsewhere.

        It enters the state table at ``ambiguous``. While its process may still be alive only the log
        is read (that process records the job id); at the end, or at once when it is known to be dead,
        the job list is searched.
        """
        alive = owner_alive(row.get("owner"))
        submission = self._interrupted(run, row)
        patience = 0.0 if alive is False else FOREIGN_PATIENCE_S

        def search(final: bool) -> str | None:
            recorded = self.client.log.get(run.run_id)
            if recorded.get("job_id"):
                return str(recorded["job_id"])
            if recorded["status"] != "submitting":  # the other process settled it
                run._end(recorded["status"], recorded.get("error") or "", recorded.get("hint"), None)
                return None
            if not final:
                return None
            if alive and owner_alive(row.get("owner")):
                run._detach(RodinError(f"run {run.run_id} is still being submitted by another process"))
                return None
            return self._search(submission, True)

        self.client.engine.find_job(run, search, patience_s=patience)

    def _interrupted(self, run: Run, row: Mapping[str, Any]) -> Submission:
        submitted = parse_time(row.get("submitted_at")) or datetime.now(timezone.utc)
        submission = Submission(run, body=dict(row["params"]), since=submitted - RECONCILE_WINDOW)
        submission.last_error = _Interrupted("interrupted: its process stopped before recording a job")
        submission.advance("ambiguous")
        if any(str(image).startswith("sha256:") for image in row["params"].get("images") or []):
            # It stopped before uploading its images, so it never reached the generate call.
            submission.attempts = 0
        return submission

    def settle_interrupted(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """Settle a logged submission whose process is gone, now: its row with the job id it found, or
        None when no job exists (the row then says ``not-submitted``). Used when a sweep is reopened."""
        client = self.client
        run = Run.from_row(client, row, client.schema)
        submission = self._interrupted(run, row)
        job, complete = self.find_job(submission.body, since=submission.since, looks=2, submission=submission)
        if job is not None:
            client.log.update(row["run_id"], job_id=job_id_of(job))
            return client.log.get(row["run_id"])
        if not complete:
            return dict(row)  # cannot tell: follow it like any unsettled submission
        settled = client.log.update(
            row["run_id"],
            unless_job=True,
            status="not-submitted",
            error="interrupted before a job was created; the reopened sweep submits the request again",
            hint=NOTHING_BILLED,
        )
        if not settled:
            # No job was free to find because one was recorded for this very row since it was read (by
            # resume()'s search, or another process): follow that job, never submit the request again.
            return client.log.get(row["run_id"])
        return None

    def attach(self, job_id: str) -> Run:
        """Follow an existing job by its id (after a restart, a ``JobTimeout``, or from another tool)."""
        client = self.client
        with self.lock:
            for run in self.runs.values():
                if run.job_id == job_id:
                    return run
        logged = client.log.rows("job_id=?", (job_id,))
        if logged:
            return self.run_for_row(logged[0])
        job = client.api.get_job(job_id)
        inputs = (job.get("metadata") or {}).get("input") or {}
        run = Run(client, RodinRequest.logged(client.schema, inputs), model_id=client.model_id)
        run.reattached = True
        run._apply_job(job)
        client.log.claim(self._new_row(run) | {"job_id": job_id}, reuse=False)
        client.log.record(run)
        run.on_change(client.log.record)
        with self.lock:
            self.runs[run.run_id] = run
        if run.status in TERMINAL:
            run._finish()
        else:
            client.engine.track(run, delay=0)
        return run

    def resume(self) -> list[Run]:
        """Re-attach every unfinished run of this service and model, and refetch damaged results."""
        client = self.client
        runs = [
            self.run_for_row(row)
            for row in client.log.unfinished(service=client.service, model_id=client.model_id)
        ]
        for row in client.log.rows(
            "status='success' AND service=? AND model_id=?", (client.service, client.model_id)
        ):
            if _stored_from_row(client, row) is None:
                runs.append(self.run_for_row(row))
        return runs


def _stored_from_row(client: Client, row: Mapping[str, Any]) -> list[StoredFile] | None:
    """A successful row's files, if every one is in the store with the content the log recorded."""
    pairs = list(zip(row.get("files") or [], row.get("sha256") or [], strict=False))
    if not pairs or any(client.store.has(sha, Path(name).suffix) is None for name, sha in pairs):
        return None
    asset_ids = row.get("asset_ids") or []
    stored = []
    for index, (name, sha) in enumerate(pairs):
        path = client.workspace / name
        role = "model" if path.suffix == ".glb" else ("preview" if path.suffix == ".png" else "other")
        asset_id = asset_ids[index] if index < len(asset_ids) and role == "model" else ""
        stored.append(
            StoredFile(
                asset_id=asset_id, role=role, path=path, sha256=sha, size=path.stat().st_size, mime_type=""
            )
        )
    return stored


def _with_note(exc: BaseException | None) -> BaseException | None:
    """The service's error again, its message saying what became of the run (nothing billed)."""
    if isinstance(exc, APIError) and NOTHING_BILLED not in str(exc):
        again = type(exc)(
            f"{exc.message}; {NOTHING_BILLED}",
            status_code=exc.status_code,
            body=exc.body,
            method=exc.method,
            url=exc.url,
            retry_after=exc.retry_after,
        )
        again.__cause__ = exc
        return again
    return exc
