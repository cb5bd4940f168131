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

__all__ = ["PollPolicy", "Timeline"]


@dataclass(frozen=True)
class PollPolicy:
    """When to ask for a job's status next.

    While the job waits (no progress yet) the interval grows geometrically from ``first_s``. Once
    progress rises, the expected finish is extrapolated from it and the next poll lands just after it,
    so completion is noticed quickly without hammering the API.
    """

    first_s: float = 2.0
    min_s: float = 1.0
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


@dataclass(eq=False)
class Timeline:
    """What the engine has seen of one job's progress, to predict when it ends."""

    expected_s: float | None = None  # typical running time for this tier/quality (run log, or learned)
    samples: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, progress) in progress
    phase_seen: dict[str, float] = field(default_factory=dict)  # status -> monotonic time first seen

    def observe(self, run: Run) -> None:
        """Note the run's current status and progress (after every answer from the service)."""
        now = time.monotonic()
        self.phase_seen.setdefault(run.status, now)
        if run.status in RUNNING:
            self.phase_seen.setdefault("warming-up", now)
        if run.status == "in-progress":
            self.samples.append((now, run.progress))
            del self.samples[1:-8]  # the first sample plus the recent ones are enough for a rate

    def eta_s(self, status: str, finalize_s: float = 0.0) -> float | None:
        """Seconds until the job is expected to finish, or None when there is nothing to go on.

        While in progress: the progress rate (two samples or more) extrapolated to 1, plus
        ``finalize_s``, the typical finalizing time; without a rate, ``expected_s`` scaled by the
        progress left. While finalizing: what is left of ``finalize_s``.
        """
        now = time.monotonic()
        if status == "finalizing":
            seen = self.phase_seen.get("finalizing", now)
            if not finalize_s:
                # Nothing learned yet (the first jobs of a session): guess a tenth of the time it ran so
                # far, so the end is checked at a pace that suits this job, not the last wait.
                started = self.phase_seen.get("warming-up", self.phase_seen.get("in-progress", seen))
                finalize_s = 0.1 * max(0.0, seen - started)
            return finalize_s - (now - seen) if finalize_s else None
        if status not in RUNNING:
            return None
        if len(self.samples) >= 2:
            (t0, p0), (t1, p1) = self.samples[0], self.samples[-1]
            if p1 > p0 and t1 > t0:
                rate = (p1 - p0) / (t1 - t0)
                return (1.0 - p1) / rate - (now - t1) + finalize_s
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
