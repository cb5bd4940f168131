"""Sweep benchmark: rodin_nb's engine against the docs' pattern, on the same sandbox, in the same run.

The docs' pattern (Scenario's guide): submit every job, then poll each job every 3 s, jobs gathered
concurrently, then download. rodin_nb: ``client.sweep(...).run()`` with 4 parallel jobs.

Modes
  real    64 runs whose running times are drawn from 60-180 s (``serve(job_seconds=(60, 180))``),
          played ``--speed`` times faster (default 32: about a minute per side). Both clients live at
          the same scaled clock: the engine gets Scenario's default ``PollPolicy()`` and the docs'
          pattern its 3-s interval, both divided by the speed, so every figure is what a user would
          see at speed 1. Queueing is included (4 parallel slots, 64 jobs).
  single  32 runs of a fixed 3 s (the sandbox's own poll policy, as a sandbox client uses).
  mixed   32 runs across tiers and qualities at speed 20 (Sketch 1 s, Regular 3 s, high 3.75 s).

Printed per side: makespan / ideal (ideal: the same jobs, in the order the side submitted them, all
given to the service at once and read the instant they end, replayed by the sandbox's own timeline);
seen / ideal (the same up to the last success seen, i.e. without the last files' download);
status requests per run (GET /v1/jobs/{jobId} + GET /v1/jobs); detection delay (when the client saw
the job's success minus when it ended on the service, from its statusHistory) as a share of the job's
running time, median and p95; and the peak request rate over any 10 s (scaled), status requests and
all /v1 requests. The last lines give rodin_nb's figures as ratios to the docs' pattern's.

    python bench/bench_sweep.py [real|single|mixed|all] [--speed S] [--list-items full|brief]
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import math
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

import rodin_nb as rn
from rodin_nb.api import parse_time
from rodin_nb.sandbox import SandboxServer, serve
from rodin_nb.sandbox.faults import FaultConfig, FaultInjector
from rodin_nb.sandbox.state import SandboxState

PARALLEL = 4
STATUS_ROUTES = ("GET /v1/jobs/{jobId}", "GET /v1/jobs")
PEAK_WINDOW_S = 10.0  # scaled seconds
DOCS_POLL_S = 3.0
PROMPT = "a carved wooden chair"


@dataclass(frozen=True)
class Mode:
    name: str
    runs: int
    speed: float
    job_seconds: float | tuple[float, float] | None
    cases: list[dict[str, Any]]  # one per run, without the seed
    scaled_policy: bool  # the client at Scenario's PollPolicy() / speed (else the sandbox's own)

    @property
    def scale(self) -> float:
        """Wall seconds -> the seconds a user would see: the speed when the clients live at it."""
        return self.speed if self.scaled_policy else 1.0


def modes(speed: float) -> dict[str, Mode]:
    regular = {"tier": "Regular", "quality": "extra-low"}
    mixed = [
        {"tier": "Sketch", "quality": "medium"},
        {"tier": "Regular", "quality": "low"},
        {"tier": "Regular", "quality": "high"},
        {"tier": "Regular", "quality": "medium"},
    ]
    return {
        "real": Mode("real", 64, speed, (60.0, 180.0), [regular] * 64, True),
        "single": Mode("single", 32, 1.0, 3.0, [regular] * 32, False),
        "mixed": Mode("mixed", 32, 20.0, None, [mixed[i % 4] for i in range(32)], False),
    }


@dataclass
class Side:
    """What one side did: wall-clock start/end, when it saw each job succeed, request times."""

    started: float = 0.0
    ended: float = 0.0
    seen: dict[str, float] = field(default_factory=dict)  # job id -> monotonic time success was seen
    requests: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, route template)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, job_id: str) -> None:
        with self.lock:
            self.seen.setdefault(job_id, time.monotonic())


def record_requests(sb: SandboxServer, side: Side) -> None:
    """Note the time of every /v1 request the sandbox counts."""
    count = sb.count_request

    def counted(template: str) -> None:
        side.requests.append((time.monotonic(), template))
        count(template)

    sb.count_request = counted  # type: ignore[method-assign]


def bodies(mode: Mode) -> list[dict[str, Any]]:
    return [{"prompt": PROMPT, "seed": i, **case} for i, case in enumerate(mode.cases)]


def docs_pattern(url: str, mode: Mode, side: Side) -> None:
    """Submit all, then poll each job every 3 s (scaled) concurrently, then download its files."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=mode.runs)
    session.mount("http://", adapter)
    interval = DOCS_POLL_S / mode.scale

    def one(body: dict[str, Any]) -> None:
        job = session.post(f"{url}/generate/custom/model_rodin-hyper3d", json=body, timeout=60).json()["job"]
        while job["status"] not in ("success", "failure", "canceled"):
            time.sleep(interval)
            job = session.get(f"{url}/jobs/{job['jobId']}", timeout=60).json()["job"]
        side.saw(job["jobId"])
        for asset_id in job["metadata"].get("assetIds", []):
            asset = session.get(f"{url}/assets/{asset_id}", timeout=60).json()["asset"]
            session.get(asset["url"], timeout=60).content  # noqa: B018

    side.started = time.monotonic()
    with ThreadPoolExecutor(max_workers=mode.runs) as pool:
        list(pool.map(one, bodies(mode)))
    side.ended = time.monotonic()


def scaled(policy: rn.PollPolicy, speed: float) -> rn.PollPolicy:
    return dataclasses.replace(
        policy, first_s=policy.first_s / speed, min_s=policy.min_s / speed, max_s=policy.max_s / speed
    )


def rodin_nb_engine(url: str, mode: Mode, side: Side, workspace: str) -> None:
    poll = scaled(rn.PollPolicy(), mode.speed) if mode.scaled_policy else None
    with rn.connect(
        base_url=url, workspace=workspace, quiet=True, parallel_jobs=PARALLEL, poll=poll
    ) as client:
        cases = [{"seed": body.pop("seed"), **body} for body in bodies(mode)]
        sweep = client.sweep(cases=cases)

        def watch(sweep: Any) -> None:
            for run in sweep.runs:
                if run.job_id and run.status in ("downloading", "success"):
                    side.saw(run.job_id)

        sweep.on_change(watch)
        side.started = time.monotonic()
        sweep.run(progress=False)
        side.ended = time.monotonic()
        assert all(run.status == "success" and run.glb for run in sweep.runs)


def all_jobs(url: str) -> list[dict[str, Any]]:
    """Every job on the sandbox, oldest first (as created), each read whole (list items may be brief)."""
    ids: list[str] = []
    params: dict[str, Any] = {"pageSize": 100}
    while True:
        page = requests.get(f"{url}/jobs", params=params, timeout=60).json()
        ids += [job["jobId"] for job in page["jobs"]]
        if not page.get("nextPaginationToken"):
            break
        params["paginationToken"] = page["nextPaginationToken"]
    return [requests.get(f"{url}/jobs/{job_id}", timeout=60).json()["job"] for job_id in ids[::-1]]


def ideal_makespan(mode: Mode, inputs: Sequence[Mapping[str, Any]]) -> float:
    """Wall seconds from the first submission to the last end, had every job been given to the service
    at once in this order and read the instant it ended: the sandbox's own timeline, replayed."""
    clock = [0.0]
    state = SandboxState(
        speed=mode.speed,
        job_seconds=mode.job_seconds,
        parallel_jobs=PARALLEL,
        faults=FaultInjector(FaultConfig()),
        clock=lambda: clock[0],
    )
    jobs = [state.create_job("bench", dict(body)) for body in inputs]
    clock[0] = 1e9
    ends = [state.get_job("bench", job.id)[0].end_t for job in jobs]
    return max(end for end in ends if end is not None)


def peak_rate(times: list[float], scale: float) -> float:
    """Most requests in any PEAK_WINDOW_S (scaled) seconds, per (scaled) second."""
    window = PEAK_WINDOW_S / scale
    best = 0
    for i, t in enumerate(times):
        best = max(best, bisect.bisect_right(times, t + window) - i)
    return best / PEAK_WINDOW_S


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


@dataclass
class Figures:
    ratio: float  # makespan / ideal
    seen_ratio: float  # (the last success seen - start) / ideal: the makespan without the last downloads
    status_per_run: float
    delay_median: float  # share of running time
    delay_p95: float
    peak_status: float  # requests per scaled second
    peak_all: float


def measure(mode: Mode, play: Callable[[str, Side], None], list_items: str) -> Figures:
    side = Side()
    with serve(
        speed=mode.speed, job_seconds=mode.job_seconds, parallel_jobs=PARALLEL, list_items=list_items
    ) as sb:
        record_requests(sb, side)
        play(sb.url, side)
        requests_made = list(side.requests)  # before the reads below
        jobs = all_jobs(sb.url)
        assert len(jobs) == mode.runs, f"{len(jobs)} jobs created for {mode.runs} runs"
        delays = []
        for job in jobs:
            history = {h["status"]: parse_time(h["date"]) for h in job["statusHistory"]}
            start, end = history["warming-up"], history["success"]
            assert start is not None and end is not None
            seen = sb.state.wall(side.seen[job["jobId"]])
            delays.append((seen - end.timestamp()) / (end - start).total_seconds())
    ideal = ideal_makespan(mode, [job["metadata"]["input"] for job in jobs])
    status_times = [t for t, route in requests_made if route in STATUS_ROUTES]
    return Figures(
        ratio=(side.ended - side.started) / ideal,
        seen_ratio=(max(side.seen.values()) - side.started) / ideal,
        status_per_run=len(status_times) / mode.runs,
        delay_median=statistics.median(delays),
        delay_p95=p95(delays),
        peak_status=peak_rate(status_times, mode.scale),
        peak_all=peak_rate([t for t, _ in requests_made], mode.scale),
    )


TARGETS = {
    # mode -> (makespan/ideal, status requests vs docs, detection delay p95 share or None)
    "real": (1.02, 0.25, 0.02),
    "single": (1.05, 0.5, None),
    "mixed": (1.05, 0.5, None),
}


def run_mode(mode: Mode, list_items: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ours = measure(mode, lambda url, side: rodin_nb_engine(url, mode, side, tmp), list_items)
    docs = measure(mode, lambda url, side: docs_pattern(url, mode, side), list_items)
    seconds = (
        f"{mode.job_seconds[0]:g}-{mode.job_seconds[1]:g} s at speed 1, played at speed {mode.speed:g}"
        if isinstance(mode.job_seconds, tuple)
        else f"{mode.job_seconds:g} s at speed {mode.speed:g}"
        if mode.job_seconds
        else f"per tier at speed {mode.speed:g}"
    )
    print(
        f"\n[{mode.name}] {mode.runs} runs, parallel_jobs={PARALLEL}, jobs {seconds}, "
        f"GET /v1/jobs items {list_items}"
    )
    head = (
        "makespan/ideal",
        "seen/ideal",
        "status req/run",
        "delay med",
        "delay p95",
        "peak st/s",
        "peak all/s",
    )
    print(f"{'':26}" + "".join(f"{h:>16}" for h in head))
    for name, f in (("rodin_nb engine", ours), (f"docs pattern ({DOCS_POLL_S:g} s poll)", docs)):
        row = (
            f"{f.ratio:16.3f}{f.seen_ratio:16.3f}{f.status_per_run:16.2f}{f.delay_median:16.2%}{f.delay_p95:16.2%}"
            f"{f.peak_status:16.2f}{f.peak_all:16.2f}"
        )
        print(f"{name:26}{row}")
    ratio = ours.status_per_run / docs.status_per_run
    print(
        f"{'ours / docs':26}{ours.ratio / docs.ratio:16.3f}{ours.seen_ratio / docs.seen_ratio:16.3f}"
        f"{ratio:16.3f}"
        f"{ours.delay_median / docs.delay_median:16.3f}{ours.delay_p95 / docs.delay_p95:16.3f}"
        f"{ours.peak_status / docs.peak_status:16.3f}{ours.peak_all / docs.peak_all:16.3f}"
    )
    span, requests_target, delay_target = TARGETS[mode.name]
    verdicts = [
        f"makespan/ideal <= {span} ({'met' if ours.ratio <= span else 'MISSED'})",
        f"status requests <= {requests_target}x docs ({'met' if ratio <= requests_target else 'MISSED'})",
    ]
    if delay_target is not None:
        met = "met" if ours.delay_p95 <= delay_target else "MISSED"
        verdicts.append(f"delay p95 <= {delay_target:.0%} ({met})")
    print("targets: " + "; ".join(verdicts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("mode", nargs="?", default="all", choices=("real", "single", "mixed", "all"))
    parser.add_argument("--speed", type=float, default=32.0, help="time factor of the real mode")
    parser.add_argument("--list-items", default="full", choices=("full", "brief"))
    args = parser.parse_args()
    table = modes(args.speed)
    for name in ("real", "single", "mixed") if args.mode == "all" else (args.mode,):
        run_mode(table[name], args.list_items)
    print("\n(wall-clock figures on a shared machine are noisy; ratios come from the same run)")


if __name__ == "__main__":
    main()
