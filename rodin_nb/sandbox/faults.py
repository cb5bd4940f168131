"""Fault injection: the bad days of a real service, on demand and reproducibly.

Each fault kind draws from its own RNG stream derived from ``seed`` (injected 5xx: one stream per route),
so turning one knob on or off does not change which requests another knob hits, and a test that sets
``seed`` sees the same faults on every run for the same sequence of calls to each route, even when a
background poller interleaves other requests.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["ALLOWED_FAULTS", "FaultConfig", "FaultInjector", "retry_after_headers"]

ALLOWED_FAULTS: tuple[str, ...] = (
    "latency_s",
    "error_rate",
    "create_error_rate",
    "rate_limit_per_s",
    "fail_rate",
    "drop_after_create_rate",
    "slow_create_s",
    "url_ttl_s",
    "stale_url_rate",
    "seed",
)


@dataclass(frozen=True)
class FaultConfig:
    """Validated fault settings; see :func:`rodin_nb.sandbox.serve` for what each one does."""

    latency_s: float = 0.0
    error_rate: float = 0.0
    # 5xx answers to generate calls only (nothing is created), while every other route works: the
    # service that is there and says it failed, whose job list then shows there is no such job.
    create_error_rate: float = 0.0
    rate_limit_per_s: float | None = None
    fail_rate: float = 0.0
    drop_after_create_rate: float = 0.0
    # Seconds to hold back the answer to a generate call *after* the job was created: a client whose
    # read timeout is shorter sees a timeout although it created (and pays for) a job.
    slow_create_s: float = 0.0
    url_ttl_s: float = 3600.0
    # The first URL signed for an asset is, at this rate, handed out already expired: a URL cached past
    # its lifetime (by a gateway, a proxy or a slow caller) that meets S3's 403 "Request has expired" on
    # its very first use, whatever the timing. ``url_ttl_s`` alone cannot do that: S3-style expiries are
    # whole seconds, and a client that downloads at once usually beats a short lifetime.
    stale_url_rate: float = 0.0
    seed: int | None = None

    @classmethod
    def from_dict(cls, faults: Mapping[str, Any] | None) -> FaultConfig:
        """Check a user's ``faults`` dict: unknown keys and out-of-range values raise ``ValueError``."""
        if faults is None:
            return cls()
        if not isinstance(faults, Mapping):
            raise ValueError(f"faults must be a dict with keys among {', '.join(ALLOWED_FAULTS)}")
        unknown = sorted(set(faults) - set(ALLOWED_FAULTS))
        if unknown:
            raise ValueError(
                f"Unknown fault key(s) {', '.join(map(repr, unknown))}; "
                f"allowed keys: {', '.join(ALLOWED_FAULTS)}"
            )
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in faults or faults[f.name] is None:
                continue
            v = faults[f.name]
            if f.name == "seed":
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ValueError(f"faults['seed'] must be an int, got {v!r}")
                values["seed"] = v
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"faults[{f.name!r}] must be a finite number, got {v!r}")
            if f.name.endswith("_rate") and not 0.0 <= v <= 1.0:
                raise ValueError(f"faults[{f.name!r}] is a fraction and must be between 0 and 1, got {v}")
            if f.name in ("latency_s", "slow_create_s") and v < 0:
                raise ValueError(f"faults[{f.name!r}] must be >= 0, got {v}")
            if f.name in ("rate_limit_per_s", "url_ttl_s") and v <= 0:
                raise ValueError(f"faults[{f.name!r}] must be > 0, got {v}")
            values[f.name] = float(v)
        return cls(**values)


class FaultInjector:
    """Decides, thread-safely, which requests and jobs get a fault, and counts what it injected."""

    def __init__(self, config: FaultConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._streams: dict[str, random.Random] = {}
        self._admitted: deque[float] = deque()
        self.injected: dict[str, int] = {}
        rate = config.rate_limit_per_s
        # A sliding window admitting ``capacity`` requests per ``window`` seconds, sized so that
        # capacity / window is exactly the rate: 5/s is 5 per second, 0.5/s one per two seconds
        # (rather than never), 2.5/s three per 1.2 s (rather than 2/s). Refused requests take no slot,
        # and their Retry-After says when the oldest admitted one leaves the window, freeing a slot.
        self._capacity = max(1, math.ceil(rate)) if rate else 0
        self._window = self._capacity / rate if rate else 1.0

    def rng(self, stream: str) -> random.Random:
        """The RNG of one named stream (created on first use; deterministic when ``seed`` is set)."""
        with self._lock:
            return self._stream(stream)

    def _stream(self, stream: str) -> random.Random:
        if stream not in self._streams:
            seed = self.config.seed
            self._streams[stream] = random.Random(f"{seed}/{stream}") if seed is not None else random.Random()
        return self._streams[stream]

    def record(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] = self.injected.get(kind, 0) + 1

    def _roll(self, kind: str, rate: float, stream: str | None = None) -> bool:
        if rate <= 0.0:
            return False
        with self._lock:
            hit = self._stream(stream or kind).random() < rate
            if hit:
                self.injected[kind] = self.injected.get(kind, 0) + 1
        return hit

    def latency(self) -> float:
        """Seconds to sleep before answering a /v1 request."""
        if self.config.latency_s > 0:
            self.record("latency")
        return self.config.latency_s

    def rate_limited(self) -> float | None:
        """None if the request is admitted, else the seconds until a slot frees (the request is refused)."""
        if not self._capacity:
            return None
        now = self._clock()
        with self._lock:
            while self._admitted and now - self._admitted[0] >= self._window:
                self._admitted.popleft()
            if len(self._admitted) < self._capacity:
                self._admitted.append(now)
                return None
            self.injected["rate_limit"] = self.injected.get("rate_limit", 0) + 1
            return max(self._admitted[0] + self._window - now, 0.001)

    def server_error(self, route: str = "") -> int | None:
        """A 5xx status to answer with instead of handling the request, or None.

        Draws come from one stream per route template, so with a fixed ``seed`` the n-th generate call
        meets the same fate however many polls a background thread interleaves with it.
        """
        if not self._roll("error", self.config.error_rate, stream=f"error:{route}"):
            return None
        with self._lock:
            return self._stream(f"error-status:{route}").choice((500, 502, 503))

    def create_error(self) -> int | None:
        """A 5xx status to answer a generate call with, without creating its job, or None."""
        if not self._roll("create_error", self.config.create_error_rate):
            return None
        with self._lock:
            return self._stream("create-error-status").choice((500, 502, 503))

    def job_failure_point(self) -> float | None:
        """For a new job: the fraction of its running time at which it fails, or None if it succeeds."""
        if not self._roll("fail", self.config.fail_rate):
            return None
        with self._lock:
            return self._stream("fail-point").uniform(0.3, 0.8)

    def drop_after_create(self) -> bool:
        """Whether to close the connection without a response after creating a job."""
        return self._roll("drop_after_create", self.config.drop_after_create_rate)

    def stale_url(self) -> bool:
        """Whether to hand out an asset's first signed URL already expired."""
        return self._roll("stale_url", self.config.stale_url_rate)

    def slow_create(self) -> float:
        """Seconds to wait before answering a generate call that created a job (0: answer at once)."""
        if self.config.slow_create_s <= 0:
            return 0.0
        with self._lock:
            self.injected["slow_create"] = self.injected.get("slow_create", 0) + 1
        return self.config.slow_create_s

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.injected)


def retry_after_headers(wait_s: float) -> dict[str, str]:
    """``Retry-After`` (whole seconds, at least 1, as HTTP requires) plus the precise ``retry-after-ms``."""
    return {
        "Retry-After": str(max(1, math.ceil(wait_s))),
        "retry-after-ms": str(max(1, math.ceil(wait_s * 1000))),
    }
