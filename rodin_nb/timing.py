"""When to look at a job next: the poll policy and each followed job's timeline.

Both belong to the engine, not to the :class:`~rodin_nb.jobs.Run` the user holds: a run says what the
service said; the timeline keeps what the engine needs to predict the job's end (progress samples, when
each phase was first seen, the typical running time for its tier and quality).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .status import RUNNING

if TYPE_CHECKING:
    from .jobs import Run

__all__ = ["FinalizeModel", "PollPolicy", "Timeline"]


@dataclass(frozen=True)
class PollPolicy:
    """When to ask for a job's status next.

    While the job waits (no progress yet) the interval grows geometrically from ``first_s``. Once
    progress rises, the expected finish is extrapolated from it and the next poll lands just after it,
    so completion is noticed quickly without hammering the API.
    """

    first_s: float = 2.0
    # Also how far past a predicted finish the look lands: half a second keeps the detection delay of a
    # one-minute job under 1 % (a look is cheap when the job list reports every job at once).
    min_s: float = 0.5
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


@dataclass
class FinalizeModel:
    """How long a job's finalizing phase lasts, learned from finished jobs' ``statusHistory``.

    Two readings are learned side by side: a fixed time (a service that packs and uploads the files),
    and a share of the job's in-progress phase (one that post-processes the mesh it made). Each finished
    job scores both by how far off they were, and predictions follow the one that has been closer, so
    a service of either kind is predicted well after a few jobs.
    """

    seconds: float = 0.0  # typical finalizing time
    share: float = 0.0  # typical finalizing time / in-progress time
    miss_seconds: float = 0.0  # recent relative errors of each reading
    miss_share: float = 0.0
    learned: int = 0

    def predict(self, in_progress_s: float | None) -> float:
        """Expected finalizing seconds for a job in progress for ``in_progress_s`` (0: nothing learned)."""
        if not self.learned:
            return 0.0
        if in_progress_s and self.share and self.miss_share <= self.miss_seconds:
            return self.share * in_progress_s
        return self.seconds

    def learn(self, finalize_s: float, in_progress_s: float | None) -> None:
        scale = max(finalize_s, 1e-3)
        if self.learned:
            self.miss_seconds = 0.7 * self.miss_seconds + 0.3 * abs(self.seconds - finalize_s) / scale
            if in_progress_s and self.share:
                miss = abs(self.share * in_progress_s - finalize_s) / scale
                self.miss_share = 0.7 * self.miss_share + 0.3 * miss
        self.seconds = finalize_s if not self.learned else 0.7 * self.seconds + 0.3 * finalize_s
        if in_progress_s:
            ratio = finalize_s / in_progress_s
            self.share = ratio if not self.share else 0.7 * self.share + 0.3 * ratio
        self.learned += 1


@dataclass(eq=False)
class Timeline:
    """What the engine has seen of one job's progress, to predict when it ends."""

    expected_s: float | None = None  # typical running time for this tier/quality (run log, or learned)
    samples: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, progress) in progress
    phase_seen: dict[str, float] = field(default_factory=dict)  # status -> monotonic time first seen
    # From the progress rate: when in-progress should end (monotonic) and how long it lasts.
    progress_end: float | None = None
    in_progress_s: float | None = None

    def observe(self, run: Run, at: float | None = None) -> None:
        """Note the run's current status and progress (after every answer from the service).

        ``at`` is when the answer arrived (monotonic): a run applied after others from the same list
        answer, or after its listeners wrote the run log, must not look as if it progressed later.
        """
        now = time.monotonic() if at is None else at
        self.phase_seen.setdefault(run.status, now)
        if run.status in RUNNING:
            self.phase_seen.setdefault("warming-up", now)
        if run.status == "in-progress":
            self.samples.append((now, run.progress))
            del self.samples[1:-8]  # the first sample plus the recent ones are enough for a rate
            if len(self.samples) >= 2:
                (t0, p0), (t1, p1) = self.samples[0], self.samples[-1]
                if p1 > p0 and t1 > t0:
                    rate = (p1 - p0) / (t1 - t0)
                    self.progress_end = t1 + (1.0 - p1) / rate
                    self.in_progress_s = 1.0 / rate

    def eta_s(self, status: str, finalize: FinalizeModel | None = None) -> float | None:
        """Seconds until the job is expected to finish, or None when there is nothing to go on.

        While in progress: the progress rate (two samples or more) extrapolated to 1, plus the
        finalizing time ``finalize`` predicts for it; without a rate, ``expected_s`` scaled by the
        progress left. While finalizing: what is left of that finalizing time, counted from when the
        rate said in-progress would end (or, without one, from when finalizing was first seen).
        """
        now = time.monotonic()
        finalize = finalize or FinalizeModel()
        if status == "finalizing":
            seen = self.phase_seen.get("finalizing", now)
            start = min(seen, self.progress_end) if self.progress_end is not None else seen
            if not finalize.learned:
                # Nothing learned yet (the first jobs of a session): guess a tenth of the time it ran so
                # far, so the end is checked at a pace that suits this job, not the last wait.
                started = self.phase_seen.get("warming-up", self.phase_seen.get("in-progress", seen))
                guess = 0.1 * max(0.0, start - started)
                return start + guess - now if guess else None
            return start + finalize.predict(self.in_progress_s) - now
        if status not in RUNNING:
            return None
        if self.progress_end is not None and status == "in-progress":
            return self.progress_end - now + finalize.predict(self.in_progress_s)
        if self.expected_s is None:
            return None
        if self.samples:
            t1, p1 = self.samples[-1]
            return (1.0 - p1) * self.expected_s - (now - t1)
        return self.expected_s - (now - self.phase_seen.get("warming-up", now))


def phase_durations(run: Run) -> dict[str, float]:
    """Seconds spent in each status, from the service's own ``statusHistory`` dates (no clock skew)."""
    out: dict[str, float] = {}
    for (status, start), (_, end) in itertools.pairwise(run.status_history):
        out[status] = out.get(status, 0.0) + max(0.0, (end - start).total_seconds())
    return out
