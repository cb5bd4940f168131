"""Parameter sweeps: plan a grid, price it, run it within a budget, watch it, resume it.

A sweep is a list of fully specified requests (seeds drawn at planning time), stored in the run log
before anything is paid, so it can be reopened by id after a crash and continued without re-submitting
a finished or running job. Submission is paced by the client's engine: at most ``concurrency`` jobs are
in flight (by default twice the account's parallel-job limit, so the service's own queue is always fed
and slots never idle while we poll); everything else waits locally, where it can still be cancelled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import math
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import (
    AuthenticationError,
    BudgetExceeded,
    PermissionDeniedError,
    RodinError,
    SweepTimeout,
    ValidationError,
)
from .jobs import Run
from .runlog import owner_alive
from .schema import ModelSchema, RodinRequest, RodinWarning
from .status import HOLDS_SLOT, REUSABLE, TERMINAL

if TYPE_CHECKING:
    import pandas as pd

    from .client import Client

__all__ = ["Sweep", "SweepProgress", "expand_grid"]

log = logging.getLogger("rodin_nb.sweep")


def _is_sweep_axis(spec_type: str | None, value: Any) -> bool:
    """A list sweeps over its items, except for array inputs (``images``): those sweep over lists of lists."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        return False
    if spec_type is not None and spec_type.endswith("_array"):
        return len(value) > 0 and all(isinstance(item, (list, tuple)) for item in value)
    return True


def expand_grid(
    schema: ModelSchema, grid: Mapping[str, Any], cases: Sequence[Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Parameter dicts: the product of list-valued parameters (scalars fixed), plus one per case.

    ``cases`` adds explicit combinations (e.g. ``[{"seed": 1, "tier": "Regular", "quality": "low"}]``)
    to the grid's product. A case takes the grid's fixed values for the names it leaves out, and runs
    once for each value of a swept name it leaves out. With no list-valued parameter the grid is only
    those fixed values, so ``sweep(prompt="a chair", cases=[...])`` is exactly the cases.
    """
    _check_cases(cases)
    axes: dict[str, list[Any]] = {}
    fixed: dict[str, Any] = {}
    for name, value in grid.items():
        spec_type = schema[name].type if name in schema else None
        if _is_sweep_axis(spec_type, value):
            if len(value) == 0:
                raise ValidationError(
                    [(name, "an empty list sweeps over nothing; give at least one value")], context="sweep"
                )
            axes[name] = list(value)
        else:
            fixed[name] = value
    _check_size(axes, cases)
    out = [{**fixed, **combo} for combo in _product(axes)] if axes or not cases else []
    for case in cases or []:
        left_out = {name: values for name, values in axes.items() if name not in case}
        out.extend({**fixed, **combo, **dict(case)} for combo in _product(left_out))
    return out


#: The most runs one plan may hold. Planning is checked request by request, so a plan of 160,000 runs
#: (400 prompts x 400 seeds, one typo away) held the kernel for minutes before any price was shown; ten
#: thousand Rodin jobs is already days of a 4-slot account. Larger studies are several sweeps.
MAX_SWEEP_RUNS = 10_000


def _check_size(axes: Mapping[str, list[Any]], cases: Sequence[Mapping[str, Any]] | None) -> None:
    """Refuse a plan larger than MAX_SWEEP_RUNS from its shape, before building any row."""
    total = math.prod(len(values) for values in axes.values()) if axes or not cases else 0
    for case in cases or []:
        total += math.prod(len(values) for name, values in axes.items() if name not in case)
    if total > MAX_SWEEP_RUNS:
        shape = " x ".join(f"{len(values)} {name}" for name, values in axes.items())
        raise ValidationError(
            [
                (
                    "sweep",
                    f"the plan has {total:,} runs ({shape}{' plus cases' if cases else ''}); at most "
                    f"{MAX_SWEEP_RUNS:,} in one sweep: sweep fewer values, or split it into several sweeps",
                )
            ],
            context="sweep",
        )


def _check_cases(cases: Any) -> None:
    """``cases`` is None or a list of dicts keyed by parameter names; anything else is a ValidationError."""
    if cases is None:
        return
    if isinstance(cases, (str, bytes, Mapping)) or not isinstance(cases, (list, tuple)):
        raise ValidationError(
            [
                (
                    "cases",
                    f"must be a list of dicts such as [{{'seed': 1, 'tier': 'Sketch'}}], got {_kind(cases)}",
                )
            ],
            context="sweep",
        )
    problems = [
        (f"cases[{i}]", f"must be a dict of parameter names to values, got {_kind(case)}")
        for i, case in enumerate(cases)
        if not isinstance(case, Mapping) or not all(isinstance(name, str) for name in case)
    ]
    if problems:
        raise ValidationError(problems, context="sweep")


def check_concurrency(concurrency: Any) -> int | None:
    """None (the default: twice the parallel-job limit) or a whole number of jobs in flight, at least 1."""
    if concurrency is None:
        return None
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValidationError(
            [
                (
                    "concurrency",
                    f"must be a whole number of jobs >= 1, or None for the default; got {_kind(concurrency)}",
                )
            ],
            context="sweep",
        )
    return concurrency


def check_budget(budget: Any) -> float | None:
    """None (no budget) or a number of creative units >= 0 (``math.inf`` allowed); never NaN or a bool."""
    if budget is None:
        return None
    problem = None
    if isinstance(budget, bool) or not isinstance(budget, (int, float)):
        problem = f"must be a number of creative units, or None for no budget; got {_kind(budget)}"
    else:
        try:
            value = float(budget)
        except OverflowError:
            value = math.inf  # an integer beyond any float: no limit in practice
        if math.isnan(value) or value < 0:
            problem = f"must be a number of creative units >= 0, or None for no budget; got {budget!r}"
    if problem is not None:
        raise ValidationError([("budget", problem)], context="sweep")
    return value


def _kind(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _product(axes: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, the first axis slowest (``[{}]`` for no axes)."""
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def sweep_id_for(model_id: str, service: str, requests: Sequence[RodinRequest]) -> str:
    """The id of a plan: the same requests (seeds included) on the same service make the same sweep,
    so planning a grid again continues its one record instead of starting a duplicate."""
    digest = hashlib.sha256("\n".join([model_id, service, *(r.params_hash for r in requests)]).encode())
    return "sweep_" + digest.hexdigest()[:10]


def plan_requests(schema: ModelSchema, rows: Iterable[Mapping[str, Any]]) -> list[RodinRequest]:
    """Validate every planned request; one error lists every bad row's problems.

    A warning several rows share (Sketch forcing the quality of each Sketch row) is given once, and
    rows asking for the same request are planned once (first one kept, in order).
    """
    requests: list[RodinRequest] = []
    problems: list[tuple[str, str]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RodinWarning)
        for index, params in enumerate(rows):
            try:
                requests.append(RodinRequest(schema=schema, **params))
            except ValidationError as exc:
                problems.extend((f"row {index} {field}", message) for field, message in exc.problems)
    if problems:
        raise ValidationError(problems, context="sweep")
    for message in dict.fromkeys(str(w.message) for w in caught):
        warnings.warn(message, RodinWarning, stacklevel=3)
    # One row per distinct request: Sketch at two qualities, or a case repeating a grid point, is one
    # run, planned, priced and counted once.
    return _distinct(requests)


def _distinct(requests: Sequence[RodinRequest]) -> list[RodinRequest]:
    """Each request once, the first occurrence kept, in order."""
    seen: set[str] = set()
    out = []
    for req in requests:
        if req.params_hash not in seen:
            seen.add(req.params_hash)
            out.append(req)
    return out


@dataclasses.dataclass(frozen=True)
class SweepProgress:
    """Where a sweep stands, as returned by ``sweep.progress()`` (a snapshot: ask again for news).

    ``counts`` runs per status (``"planned"`` for those not submitted yet); ``ended`` of ``total`` runs
    have ended; ``fraction`` is done in [0, 1], running jobs counted by their own progress; ``spent``
    creative units billed so far and ``estimate`` the whole sweep's expected cost (None when unknown);
    ``elapsed_s`` since start and ``remaining_s`` a guess at what is left (None before any progress).
    """

    counts: Mapping[str, int] = dataclasses.field(hash=False)  # read-only
    total: int
    ended: int
    fraction: float
    spent: float
    estimate: float | None
    elapsed_s: float
    remaining_s: float | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", types.MappingProxyType(dict(self.counts)))


class Sweep:
    """A planned grid of runs. Create it with ``client.sweep(...)``; reopen with ``client.sweep_by_id``."""

    def __init__(
        self,
        client: Client,
        requests: Sequence[RodinRequest],
        *,
        sweep_id: str | None = None,
        concurrency: int | None = None,
        estimate: float | None = None,
    ) -> None:
        self.client = client
        self.requests = list(requests)
        self.sweep_id = sweep_id or sweep_id_for(client.model_id, client.service, self.requests)
        self.concurrency = check_concurrency(concurrency) or 2 * client.engine.parallel_jobs
        self.budget: float | None = None
        self._estimate = estimate
        self._runs: dict[int, Run] = {}
        self._next = 0
        self._lock = threading.RLock()
        # Nothing is submitted before start(): runs attached from the log may end before that, and
        # their listeners must not submit the rest of the plan.
        self._stopped = True
        self._started = False
        self._canceled = False
        self._done = threading.Event()
        self._started_at: float | None = None
        self._ended_at: float | None = None  # elapsed time stops when the sweep is done
        self.error: BaseException | None = None
        self._listeners: list[Callable[[Sweep], None]] = []
        self._submitting = 0  # submissions in progress (slots reserved before the generate call)
        self._reserved_cost = 0.0  # expected cost of those submissions, held against the budget
        self._attach_logged()

    def __repr__(self) -> str:
        counts = self.counts()
        summary = ", ".join(f"{status} {n}" for status, n in counts.items()) or "not started"
        return f"Sweep({self.sweep_id!r}, runs={len(self.requests)}, {summary})"

    # --- planning ------------------------------------------------------------------------------------

    def _logged(self) -> dict[str, dict[str, Any]]:
        """Reusable log rows (success or still running) by params hash: those runs are free."""
        rows = self.client.log.rows(
            f"model_id=? AND service=? AND status IN ({','.join('?' * len(REUSABLE))})",
            (self.client.model_id, self.client.service, *REUSABLE),
        )
        return {row["params_hash"]: row for row in rows}

    @property
    def plan(self) -> pd.DataFrame:
        """One row per planned run, with the ones the log already has (free: no new job, no cost)."""
        import pandas as pd

        logged = self._logged()
        records = []
        for index, req in enumerate(self.requests):
            row = logged.get(req.params_hash)
            records.append(
                {
                    "index": index,
                    **req.identity(),
                    "params_hash": req.params_hash,
                    "in_log": row is not None,
                    "run_id": row["run_id"] if row else None,
                    "logged_status": row["status"] if row else None,
                }
            )
        return pd.DataFrame.from_records(records).set_index("index")

    def estimate(self) -> float:
        """Creative units for the runs that would be paid (not already in the log).

        Prices come from the service's dry run, asked once per distinct combination of the inputs marked
        ``costImpact`` (not once per run, and once per client: ``client.prices``).
        """
        total = sum(self.client.prices.price(req) for req in self._to_pay())
        # The sweep's record keeps what the whole sweep costs: billed by it so far plus what is left
        # to pay (a re-planned sweep whose runs are all in the log has spent, not cost, nothing).
        self._estimate = self.spent() + total
        return total

    # --- running -------------------------------------------------------------------------------------

    def start(self, budget: float | None = None) -> Sweep:
        """Start in the background (the notebook stays usable); see :meth:`run` for ``budget``."""
        # Checked before anything is asked of the service (the estimate is a request).
        budget = check_budget(budget)
        if budget is None:
            budget = self.budget  # a reopened sweep keeps the budget it was started with
        if budget is None:
            # No budget to check, but the sweep's record keeps its expected cost all the same (dry runs
            # are free and asked once per price class and client); a sweep need not wait for a price.
            try:
                self.estimate()
            except RodinError as exc:
                log.info("sweep %s starts without an estimate: %s", self.sweep_id, exc)
        else:
            estimate = self.estimate()
            if estimate > budget:
                raise BudgetExceeded(
                    f"sweep {self.sweep_id} would cost {estimate:g} creative units for "
                    f"{self.paid_count()} new runs, over the budget of {budget:g}; nothing was submitted "
                    "(raise the budget, or shrink the grid)"
                )
        self.budget = budget
        self.client.log.save_sweep(
            self.sweep_id,
            model_id=self.client.model_id,
            service=self.client.service,
            plan=[req.identity() for req in self.requests],
            budget=budget,
            concurrency=self.concurrency,
            estimate=self._estimate,
        )
        with self._lock:
            # Starting again (after pause(), an interrupt or an error) continues the plan from here.
            self._stopped = self._canceled = False
            self._started = True
            self.error = None
            self._done.clear()
            self._started_at = self._started_at or time.monotonic()
            self._ended_at = None
        # Submissions (uploads and generate calls) happen on the engine's threads, never the caller's:
        # start() returns at once and an interrupt in the caller cannot land inside a submission.
        if not self.client.engine.run_task(self._pump):
            self._fail(RodinError(f"sweep {self.sweep_id} cannot start: its client is closed"))
        return self

    def run(self, budget: float | None = None, *, progress: bool = True) -> pd.DataFrame:
        """Run the whole sweep and return its results (same columns as the run log).

        Refuses with :class:`BudgetExceeded` before submitting anything when the estimate is over
        ``budget``. A keyboard interrupt stops submitting new runs and leaves submitted jobs running:
        reopen with ``client.sweep_by_id(sweep_id)`` (or ``client.resume()``) later.
        """
        view = None
        try:
            self.start(budget)
            if progress:
                from .progress import watch

                view = watch(self)
            self.wait()
        except KeyboardInterrupt:
            self.pause()
            raise
        finally:
            if view is not None:
                from .progress import finish

                finish(view)
        return self.df

    def wait(self, timeout: float | None = None) -> Sweep:
        """Block until every run has ended (failures do not raise: see ``sweep.df``).

        Raises :class:`~rodin_nb.SweepTimeout` after ``timeout`` seconds; the sweep keeps running.
        """
        if not self._done.wait(timeout):
            raise SweepTimeout(
                f"sweep {self.sweep_id} not finished after {timeout:g} s; it keeps running: wait again with "
                f"sweep.wait(), or reopen it later with client.sweep_by_id({self.sweep_id!r})",
                sweep_id=self.sweep_id,
            )
        if self.error is not None:
            raise self.error
        return self

    def pause(self) -> None:
        """Stop submitting new runs; jobs already submitted keep running (resume with start())."""
        with self._lock:
            self._stopped = True

    def cancel(self) -> int:
        """Stop submitting and cancel the jobs still running; returns how many were canceled.

        A submission already under way is canceled as soon as its job exists (see ``_submit``), so
        ``wait()`` returns only once nothing of this sweep is left running.
        """
        with self._lock:
            self._stopped = self._canceled = True
        canceled = 0
        for run in self._distinct_runs():
            # Runs answered from the log belong to someone else (a generate() call, another sweep).
            if run.sweep_id == self.sweep_id and not run.done and run.job_id and run.cancel():
                canceled += 1
        self._check_done()
        return canceled

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            self._stopped = True
            self.error = exc
        self._check_done()

    def _pump(self) -> None:
        """Submit planned runs while there is room; called at start and whenever a run ends."""
        try:
            self._fill()
        except Exception as exc:  # e.g. the log could not be read: end the sweep with it, never hang
            log.exception("sweep %s stopped", self.sweep_id)
            with self._lock:
                self._stopped = True
                self.error = self.error or exc
        finally:
            self._check_done()

    def _fill(self) -> None:
        while True:
            with self._lock:
                while self._next in self._runs:  # attached from the log at planning: nothing to submit
                    self._next += 1
                if self._stopped or self._next >= len(self.requests):
                    break
                # Submissions under way count too: pumps run concurrently on the engine's pool. A run
                # planned twice (two rows asking for one request) is one job.
                in_flight = self._submitting + sum(
                    1 for run in self._distinct_runs() if run.status in HOLDS_SLOT and not run.done
                )
                if in_flight >= self.concurrency:
                    break
                cost = self._expected_cost(self._next)
                committed = self.spent() + self._reserved_cost
                if self.budget is not None and committed + cost > self.budget + 1e-9:
                    self._stopped = True
                    self.error = BudgetExceeded(
                        f"sweep {self.sweep_id} stopped before run {self._next}: its cost would pass the "
                        f"budget of {self.budget:g} (spent or committed {committed:g}); runs already "
                        "submitted finish"
                    )
                    break
                index = self._next
                self._next += 1
                self._submitting += 1
                self._reserved_cost += cost
            self._submit(index, cost)

    def _expected_cost(self, index: int) -> float:
        """What submitting this planned run will cost: nothing when the log already answers it."""
        req = self.requests[index]
        if self.client.log.find_reusable(self.client.service, self.client.model_id, req.params_hash):
            return 0.0
        return self.client.prices.known(req) or 0.0

    def _submit(self, index: int, reserved: float) -> None:
        """Submit one planned run; its slot and reserved cost are released as it joins ``_runs``.

        A run the service refused or failed to create ends ``not-submitted`` and the sweep goes on (the
        end table shows it); only an error that would refuse every run (credentials, permissions) or
        one of rodin_nb's own stops the sweep, and ``wait()`` raises it.
        """
        run: Run | None = None
        error: BaseException | None = None
        try:
            run = self.client.submitter.start(self.requests[index], reuse=True, sweep_id=self.sweep_id)
        except Exception as exc:  # never a hang: the sweep ends with the error
            error = exc
        else:
            cause = run._failure if run.status == "not-submitted" else None
            if isinstance(cause, (AuthenticationError, PermissionDeniedError)):
                error = cause
        with self._lock:
            # One step, so no check ever counts this job both as reserved and as spent.
            if run is not None:
                self._runs[index] = run
            self._submitting -= 1
            self._reserved_cost -= reserved
            if error is not None:
                self._stopped = True
                self.error = self.error or error
            canceled = self._canceled
        if run is None:
            self._check_done()
            return
        run.on_change(self._on_change)  # first: whatever happens next, the sweep hears of the end
        if canceled and not run.done and run.job_id and run.sweep_id == self.sweep_id:
            try:
                run.cancel()  # cancel() came while this job was being created: it must not run on
            except Exception:
                log.exception("could not cancel %s after the sweep was canceled", run.job_id)
        if run.done:
            self._on_change(run)

    def on_change(self, callback: Callable[[Sweep], None]) -> None:
        """Call ``callback(sweep)`` after any of its runs changes (from the engine thread)."""
        self._listeners.append(callback)

    def _notify(self) -> None:
        for callback in list(self._listeners):
            try:
                callback(self)
            except Exception:  # a broken display must not stop the sweep
                log.exception("sweep listener failed")

    def _on_change(self, run: Run) -> None:
        self._notify()
        # When the job has left the service (its files may still be downloading) its slot is free, so the
        # next submission goes now. Called from the engine's threads: the submission itself runs on the
        # engine's submission pool, so polling is never blocked by an upload or a generate call.
        ended = run.done or run.status not in HOLDS_SLOT
        if ended and not self.client.engine.run_task(self._pump):
            self._fail(RodinError(f"sweep {self.sweep_id} stopped: its client was closed"))

    def _check_done(self) -> None:
        """Done once nothing more will be submitted, no submission is under way and every run ended."""
        with self._lock:
            all_planned = all(i in self._runs for i in range(self._next, len(self.requests)))
            nothing_to_submit = all_planned or (self._stopped and self._started)
            finished = self._submitting == 0 and all(run.done for run in self._runs.values())
            newly_done = nothing_to_submit and finished and not self._done.is_set()
            if newly_done:
                self._ended_at = time.monotonic()
                self._done.set()
        if newly_done:
            self._notify()  # displays draw the final state (their last update may predate the end)

    @classmethod
    def reopen(cls, client: Client, sweep_id: str) -> Sweep:
        """A sweep rebuilt from the log: its planned requests (same seeds) and its runs so far.

        Runs already submitted are re-attached (never re-submitted); the rest are planned again. Nothing
        is sent until ``start()`` or ``run()``.
        """
        saved = client.log.get_sweep(sweep_id)
        requests = [RodinRequest.logged(client.schema, params) for params in saved["plan"]]
        sweep = cls(
            client,
            requests,
            sweep_id=sweep_id,
            concurrency=saved.get("concurrency"),
            estimate=saved.get("estimate"),
        )
        sweep.budget = saved.get("budget")
        return sweep

    def _attach_logged(self) -> None:
        """Attach the runs the log already has for this plan, sending nothing: the sweep's own (it was
        planned before, or is being reopened) and runs answered from the log (free). ``sweep.runs`` and
        ``sweep.df`` show them before ``run()``; ``start()`` submits only the rest."""
        client = self.client
        own: dict[str, dict[str, Any]] = {}
        for logged in client.log.rows("sweep_id=?", (self.sweep_id,)):
            known = own.get(logged["params_hash"])
            # One request may have several rows (a not-submitted attempt, then a job): the live one wins.
            if known is None or (logged["status"] in REUSABLE) >= (known["status"] in REUSABLE):
                own[logged["params_hash"]] = logged
        attached: dict[int, Run] = {}
        for index, req in enumerate(self.requests):
            row: dict[str, Any] | None = own.get(req.params_hash)
            if row is not None and row["status"] == "submitting" and not row.get("job_id"):
                if owner_alive(row.get("owner")) is False:
                    # Its process died mid-submission: find its job now, or plan the request again.
                    row = client.submitter.settle_interrupted(row)
            elif row is not None and not row.get("job_id") and row["status"] not in REUSABLE:
                row = None  # ended before a job existed (not submitted): planned again
            if row is None:
                # Answered from the log by a run outside this sweep (an earlier generate() or sweep): it
                # belongs to the results all the same, and costs nothing.
                row = client.log.find_reusable(client.service, client.model_id, req.params_hash)
            if row is not None:
                attached[index] = client.run(row["run_id"])
        with self._lock:
            self._runs = attached
        for run in self._distinct_runs():
            run.on_change(self._on_change)

    # --- reading -------------------------------------------------------------------------------------

    @property
    def runs(self) -> list[Run]:
        with self._lock:
            return [self._runs[index] for index in sorted(self._runs)]

    def spent(self) -> float:
        """Creative units billed so far (runs answered from the log cost nothing)."""
        return sum(run.cost or 0.0 for run in self._distinct_runs() if run.sweep_id == self.sweep_id)

    def paid_count(self) -> int:
        """How many new jobs the sweep would pay for (each distinct request not in the log, once)."""
        return len(self._to_pay())

    def _to_pay(self, start: int = 0) -> list[RodinRequest]:
        """The distinct requests from plan row ``start`` on that the log does not answer yet."""
        logged = self._logged()
        distinct = {req.params_hash: req for req in self.requests[start:] if req.params_hash not in logged}
        return list(distinct.values())

    def _distinct_runs(self) -> list[Run]:
        """Each run once, in plan order (two plan rows asking for one request share a run)."""
        return list({run.run_id: run for run in self.runs}.values())

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self.runs:
            counts[run.status] = counts.get(run.status, 0) + 1
        waiting = len(self.requests) - len(self._runs)
        if waiting:
            counts["planned"] = waiting
        return counts

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def progress(self) -> SweepProgress:
        """Numbers for progress displays: counts, fraction done, spent vs estimate, times."""
        runs = self.runs
        total = len(self.requests)
        ended = sum(1 for run in runs if run.status in TERMINAL)
        fraction = sum(1.0 if run.done else run.progress for run in runs) / total if total else 1.0
        now = self._ended_at or time.monotonic()
        elapsed = now - self._started_at if self._started_at else 0.0
        remaining = (
            elapsed * (1 - fraction) / fraction if 0 < fraction < 1 else (0.0 if fraction >= 1 else None)
        )
        spent = self.spent()
        estimate = None
        if self._estimate is not None:
            # What the whole sweep is expected to cost: billed so far plus the runs not yet submitted
            # (a reopened sweep's saved estimate covered only what was left to pay when it was made).
            left = self._to_pay(self._next)
            prices = [self.client.prices.known(req) for req in left]
            if all(price is not None for price in prices):
                estimate = spent + sum(price or 0.0 for price in prices)
            else:  # reopened: prices not asked in this process; the saved estimate is the best known
                estimate = max(self._estimate, spent)
        return SweepProgress(
            counts=self.counts(),
            total=total,
            ended=ended,
            fraction=fraction,
            spent=spent,
            estimate=estimate,
            elapsed_s=elapsed,
            remaining_s=remaining,
        )

    @property
    def df(self) -> pd.DataFrame:
        """Results so far, the run log's columns, one row per run in plan order (two plan rows asking
        for one request, e.g. Sketch at two qualities, are one run and one row)."""
        frame = self.client.log.df
        ids = [run.run_id for run in self._distinct_runs()]
        return frame.loc[[run_id for run_id in ids if run_id in frame.index]]

    def compare(
        self,
        rows: str | None = "seed",
        cols: str | None = "tier",
        facet: str | Sequence[str] | None = None,
        **options: Any,
    ) -> Any:
        """A grid of viewers with linked cameras, runs arranged by two parameters.

        When the sweep varies more than ``rows`` and ``cols`` (two prompts, say), the other swept
        parameters are folded into the rows (``prompt=… · seed=…``; the grid pages through them), so
        every run has its own cell. ``facet=`` names them yourself (``facet=()`` for none); other
        options as for :func:`rodin_nb.compare`.
        """
        from .viewer import compare_runs

        # Every run goes in: a failed or unfinished one shows its reason in its cell, never a blank. Two
        # plan rows asking for one request share a run, which is shown once.
        runs = self._distinct_runs()
        if facet is None:
            facet = self._facets_for(runs, rows, cols)
        return compare_runs(runs, rows=rows, cols=cols, facet=facet, **options)

    def _facets_for(self, runs: Sequence[Run], rows: str | None, cols: str | None) -> list[str]:
        """The fewest swept parameters that give every run its own cell, in the schema's order.

        Only parameters that separate runs sharing a cell count: Sketch's forced quality varies with the
        tier, so it is no facet of a tier comparison.
        """
        facets: list[str] = []
        candidates = [name for name in self.swept() if name not in (rows, cols)]
        while True:
            cells: dict[str, list[Run]] = {}
            for run in runs:
                key = repr([run.params.get(name) for name in (*facets, rows, cols) if name])
                cells.setdefault(key, []).append(run)
            shared = [group for group in cells.values() if len(group) > 1]
            if not shared:
                return facets
            separating = [
                name
                for name in candidates
                if name not in facets
                and any(len({repr(run.params.get(name)) for run in group}) > 1 for group in shared)
            ]
            if not separating:
                return facets  # compare_runs names what is left
            facets.append(separating[0])

    def swept(self) -> list[str]:
        """The parameters that vary across the plan, in the schema's order (``seed`` included)."""
        return [
            name
            for name in self.client.schema.names
            if len({repr(req.params.get(name)) for req in self.requests}) > 1
        ]

    def table(self) -> str:
        """A plain-text comparison table (for terminals and logs): seed, every swept parameter, results."""
        swept = [name for name in self.swept() if name != "seed"]
        header = ["seed", *swept, "status", "cost", "faces", "time_s"]
        rows = []
        for run in self.runs:
            stats = run.mesh_stats or {}
            rows.append(
                [
                    str(run.seed),
                    *(_cell(run.params.get(name)) for name in swept),
                    run.status,
                    f"{run.cost:g}" if run.cost is not None else "-",
                    str(stats.get("faces", "-")),
                    f"{run.duration_s:.1f}" if run.duration_s is not None else "-",
                ]
            )
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        numeric = {0, len(header) - 3, len(header) - 2, len(header) - 1}  # right-aligned columns
        return "\n".join(
            "  ".join(
                cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(row)
            ).rstrip()
            for row in [header, *rows]
        )


def _cell(value: Any, width: int = 28) -> str:
    """A parameter value shortened for a table cell (long prompts end in an ellipsis)."""
    text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"
