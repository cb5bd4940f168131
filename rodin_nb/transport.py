"""HTTP transport: one ``requests.Session``, timeouts, safe retries, status -> error mapping.

Why this is more than ``session.request``:

- **Retries only where repeating is harmless.** Reads, uploads (content-addressed, so a duplicate is
  harmless) and downloads retry on connection errors, timeouts, 408/409/5xx with jittered exponential
  backoff. The POST that creates a paid job does not: it is retried only when the request provably never
  reached the service (connection refused, connect timeout, 429). Every other failure is raised with
  ``maybe_sent`` so the client can reconcile by listing jobs instead of paying twice.
- **A rate limit slows the client down; it does not fail it.** A 429 means the service refused the
  request and created nothing, so *every* request, the job-creating POST included, is repeated after it,
  for up to ``RetryPolicy.rate_limit_patience_s`` of waiting (separately from ``max_retries``, which
  counts only failures that might be real trouble). All threads share one :class:`RateGate`: a 429
  pauses everyone until its ``Retry-After`` and from then on releases requests one by one, spaced at
  the rate the service let through, instead of all at the same instant (which would earn every one of
  them another 429).
- **Credentials stay home.** The Authorization header is attached by :class:`_HostBoundAuth`, which
  refuses any origin but the API's (signed asset URLs live on other hosts), and the key and secret are
  redacted from every message this module builds.

:meth:`Transport.request` is a loop over a few named steps, each testable alone: :func:`should_retry`
(is this failure repeated?), :func:`retry_wait` (after how long?), :class:`RateLimitPatience` with the
shared :class:`RateGate` (waiting out 429s), and the error builders ``Transport._connection_error`` and
``Transport._status_error`` (status -> error class, redaction).
"""

from __future__ import annotations

import datetime
import email.utils
import ipaddress
import logging
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from ._version import __version__
from .errors import APIConnectionError, APIError, APITimeoutError, ConfigError, error_for_status

__all__ = ["RateGate", "RetryPolicy", "Transport", "is_loopback_url", "origin_of"]

log = logging.getLogger("rodin_nb.http")

_QUERY_RE = re.compile(r"((?:https?://|/)[^\s?'\"<>]*)\?[^\s'\"<>)]+")
# Retried within ``max_retries``. 429 is not here: it is waited out, bounded by time (RateLimitPatience).
RETRY_STATUSES = frozenset({408, 409, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 120.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently requests are retried.

    Parameters
    ----------
    max_retries : retries after a connection error, a timeout, 408, 409 or 5xx (idempotent requests).
    backoff_base_s, backoff_cap_s : jittered exponential backoff between those retries.
    rate_limit_patience_s : how long one request keeps waiting out 429s (with ``Retry-After``, or
        backoff) before :class:`~rodin_nb.RateLimitError` is raised. 429s do not use up
        ``max_retries``: a rate limit is the service asking us to slow down, not a fault.
        0 raises on the first 429.
    """

    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 8.0
    rate_limit_patience_s: float = 300.0

    def __post_init__(self) -> None:
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"RetryPolicy.max_retries must be an int >= 0, got {self.max_retries!r}")
        for name in ("backoff_base_s", "backoff_cap_s", "rate_limit_patience_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"RetryPolicy.{name} must be a finite number of seconds >= 0, got {value!r}")

    def delay(self, attempt: int) -> float:
        """Jittered exponential backoff: retry n waits up to ``base * 2**n`` (capped), at least half."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * (2**attempt))
        return ceiling * random.uniform(0.5, 1.0)


# Pacing learned from 429s (see RateGate). Bounds: one odd answer never spaces requests more than
# MAX_INTERVAL_S, and pacing switches itself off once the interval has decayed below MIN_INTERVAL_S.
MAX_INTERVAL_S = 30.0
MIN_INTERVAL_S = 0.001
PACING_MARGIN = 1.05  # space requests 5 % wider than the rate that got through: no near misses
PACING_GROWTH = 1.25  # a fresh 429 widens the interval by at least this factor
PACING_DECAY = 0.98  # each admitted request narrows it by 2 %


class RateGate:
    """Paces the requests of every thread of a transport once the service has answered 429.

    A "next free slot" schedule (a token bucket holding one token) whose spacing is learned from the
    429s:

    - ``interval`` is the spacing between request starts. It is 0 until the first 429, and while it
      is 0 every request passes straight through without touching the schedule: a client that is
      never rate limited is never delayed (``delayed`` stays 0).
    - Each request takes the next free slot, ``next_at``, and moves it on by ``interval``, so waiting
      threads leave one after another, ``interval`` apart, not all at the instant a pause ends (they
      would all be refused again: a thundering herd).
    - A 429 pushes ``next_at`` to its ``Retry-After`` at least: nobody starts before the service says
      a slot frees.
    - The first 429 sets the interval from what got through: requests went unpaced until then, so if
      ``n`` of them were admitted in the last second the limit is about ``n``/s and the interval
      becomes ``1/n`` plus a 5 % margin (1 s when none were: the limit is below 1/s, or shared with
      another client).
    - A 429 while pacing means we are still a little too fast: the interval widens by a quarter, so
      a limit we overestimated is found after a few 429s. Only the first 429 among requests released
      under the current interval counts (the ``epoch`` check): requests already on their way when it
      changed are no fresh evidence, and a burst of them must not widen it once each.
    - Each admitted request narrows the interval by 2 %: after a passing limit the client speeds up
      again (and stops pacing altogether), and under a steady limit it probes for a faster rate with
      about one 429 per dozen requests, each of which only costs that request a wait for its slot.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.interval = 0.0
        self._next_at = 0.0
        self._epoch = 0
        self._admitted: deque[float] = deque(maxlen=512)  # start times of requests that were not 429'd
        self.delayed = 0  # requests that had to wait for their slot
        self.refusals = 0  # 429s reported

    def __repr__(self) -> str:
        return f"RateGate(interval={self.interval:.3f}s, delayed={self.delayed}, refusals={self.refusals})"

    def acquire(self) -> tuple[int, float]:
        """Wait for this request's slot; returns ``(epoch, start time)`` to report the outcome with."""
        with self._lock:
            now = time.monotonic()
            if self.interval == 0.0 and self._next_at <= now:
                return self._epoch, now
            slot = max(now, self._next_at)
            self._next_at = slot + self.interval
            epoch = self._epoch
            if slot > now:
                self.delayed += 1
        if slot > now:
            time.sleep(slot - now)
        return epoch, slot

    def admitted(self, started: float) -> None:
        """The request started at ``started`` got past the rate limit (any answer but 429)."""
        with self._lock:
            self._admitted.append(started)
            if self.interval:
                self.interval *= PACING_DECAY
                if self.interval < MIN_INTERVAL_S:
                    self.interval = 0.0

    def refused(self, epoch: int, wait_s: float) -> None:
        """A request released in ``epoch`` got a 429 asking to wait ``wait_s`` seconds."""
        with self._lock:
            now = time.monotonic()
            self.refusals += 1
            if self.interval == 0.0:
                # Unpaced until now, so what got through in the last second was a burst up to the limit.
                recent = sum(1 for started in self._admitted if started >= now - 1.0)
                self.interval = PACING_MARGIN / recent if recent else 1.0
                self._epoch += 1
            elif epoch == self._epoch:
                # Paced, and still slightly too fast (or sharing the limit): widen a little.
                self.interval = min(MAX_INTERVAL_S, PACING_GROWTH * self.interval)
                self._epoch += 1
            self._next_at = max(self._next_at, now + min(wait_s, MAX_RETRY_AFTER_S))


def origin_of(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def credential_problem(value: object) -> str | None:
    """What makes ``value`` unusable as a Basic-auth credential (None when it is fine, or absent).

    Scenario's keys and secrets are visible ASCII. A pasted zero-width space or a non-breaking space
    cannot be encoded in the header at all: found here, it is one clear error at connect instead of
    every request failing later. The message says where, never what (it is a secret).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    for index, char in enumerate(value):
        if not ("!" <= char <= "~"):
            what = "a space or control character" if ord(char) < 0x80 else "a non-ASCII character"
            return (
                f"contains {what} (U+{ord(char):04X}) at position {index + 1} of {len(value)}; "
                "keys and secrets are visible ASCII: paste them again without it"
            )
    return None


class _HostBoundAuth(AuthBase):
    """HTTP Basic auth that is only ever attached to requests for the API's own origin."""

    def __init__(self, api_key: str, api_secret: str, origin: tuple[str, str, int | None]) -> None:
        self._basic = HTTPBasicAuth(api_key, api_secret)
        self._origin = origin

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if origin_of(request.url or "") == self._origin:
            return self._basic(request)
        request.headers.pop("Authorization", None)
        return request

    def __repr__(self) -> str:
        return "<_HostBoundAuth credentials=hidden>"


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):  # neither seconds nor a date: as if there were none
        return None
    if parsed.tzinfo is None:  # an HTTP date is GMT; one without a zone is read as such
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, parsed.timestamp() - time.time())


def error_message(response: requests.Response) -> tuple[str, Any]:
    """The service's own message and the decoded body (the error body shape is undocumented)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    message = None
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "reason"):
            if isinstance(body.get(key), str):
                message = body[key]
                break
    if message is None:
        text = body if isinstance(body, str) else str(body)
        message = text.strip()[:500] or response.reason or "no message"
    return message, body


# --- the steps of one request (Transport.request reads as a few calls to these) ---------------------


def should_retry(
    policy: RetryPolicy,
    retries_done: int,
    *,
    idempotent: bool,
    status: int | None = None,
    maybe_sent: bool = True,
) -> bool:
    """Whether a failed attempt is repeated, counting against ``policy.max_retries``.

    ``status`` is the error status the service answered with, or None when there was no answer
    (``maybe_sent`` then says whether the request may have reached the service). A request that is
    not idempotent (job creation) is repeated only when it provably never got there: never after an
    answer, nor after a failure that may have happened once it was sent. A 429 is never retried here:
    it is waited out by :class:`RateLimitPatience` (its own budget), and ends up here only once that
    is spent.
    """
    if retries_done >= policy.max_retries:
        return False
    if status is None:
        return idempotent or not maybe_sent
    return idempotent and status in RETRY_STATUSES


def retry_wait(
    policy: RetryPolicy, retries_done: int, *, answered: bool, retry_after: float | None = None
) -> float:
    """Seconds to sleep before retry number ``retries_done + 1``.

    After no answer: the jittered backoff ``policy.delay(retries_done)``. After an answer (408, 409,
    5xx): its ``Retry-After`` when it sent one, else that backoff, and never more than
    ``MAX_RETRY_AFTER_S``.
    """
    if not answered:
        return policy.delay(retries_done)
    return min(retry_after if retry_after is not None else policy.delay(retries_done), MAX_RETRY_AFTER_S)


class RateLimitPatience:
    """One request's budget for waiting out 429s: time, not ``max_retries``.

    The budget runs from the request's first 429; each later 429 is waited out (by the shared
    :class:`RateGate`) as long as less than ``policy.rate_limit_patience_s`` has passed since then.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.refusals = 0  # 429s this request received
        self.waited = 0.0  # seconds from its first 429 to its latest
        self._first_at: float | None = None

    def wait_asked(self, retry_after: float | None) -> float:
        """How long the 429 just received asks to wait: its ``Retry-After``, else jittered backoff."""
        return retry_after if retry_after is not None else self.policy.delay(self.refusals)

    def refused(self, now: float) -> bool:
        """Count a 429 received at ``now`` (monotonic); True while the request may wait it out."""
        self._first_at = now if self._first_at is None else self._first_at
        self.waited = now - self._first_at
        self.refusals += 1
        return self.waited < self.policy.rate_limit_patience_s


class Transport:
    """The client's HTTP layer. Thread-safe for use by the engine's worker threads.

    Parameters
    ----------
    base_url : ending in ``/v1``; HTTPS unless it is a loopback address.
    api_key, api_secret : Basic-auth credentials, or both None (the sandbox without credentials).
    timeout : ``(connect, read)`` seconds.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        timeout: tuple[float, float] = (5.0, 60.0),
        retry: RetryPolicy | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"base_url must be an http(s) URL such as https://api.cloud.scenario.com/v1, got {base_url!r}"
            )
        if parts.username or parts.password:
            # Never echo it back: it holds a credential.
            raise ConfigError("base_url must not contain credentials; pass api_key/api_secret instead")
        if parts.scheme != "https" and not is_loopback_url(base_url):
            raise ConfigError(
                f"base_url must use https for a non-loopback host ({parts.hostname}); "
                "plain http is only allowed for 127.0.0.1/localhost (the sandbox)"
            )
        if parts.path.strip("/") == "":
            # Every Scenario route lives under /v1: a bare host would answer 404 to everything.
            log.info("base_url %s has no path; using %s/v1", base_url, base_url.rstrip("/"))
            base_url = base_url.rstrip("/") + "/v1"
        for name, value in (("api_key", api_key), ("api_secret", api_secret)):
            problem = credential_problem(value)
            if problem:
                raise ConfigError(f"{name} {problem}")  # never the value itself: it is a credential
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._secrets = [s for s in (api_key, api_secret) if s]
        self._auth = (
            _HostBoundAuth(api_key, api_secret, origin_of(self.base_url)) if api_key and api_secret else None
        )
        self._session = requests.Session()
        # The environment's proxies and .netrc must not capture loopback traffic or inject credentials.
        self._session.trust_env = not is_loopback_url(self.base_url)
        self._session.headers.update({"User-Agent": f"rodin_nb/{__version__}", "Accept": "application/json"})
        self.gate = RateGate()
        self.counters: dict[str, int] = {}
        self._counter_lock = threading.Lock()

    def __repr__(self) -> str:
        auth = "basic" if self._auth else "none"
        return f"Transport(base_url={self.base_url!r}, auth={auth})"

    # --- helpers -------------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """The text without credentials, and without URL query strings (signed URLs carry their
        signature there, and messages end up in the run log and its exports)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _QUERY_RE.sub(r"\1?...", text)

    def url(self, path: str) -> str:
        return self.base_url + path.lstrip("/")

    def _count(self, key: str) -> None:
        with self._counter_lock:
            self.counters[key] = self.counters.get(key, 0) + 1

    def close(self) -> None:
        self._session.close()

    # --- requests ------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool = True,
        timeout: tuple[float, float] | None = None,
        counter: str | None = None,
    ) -> requests.Response:
        """Send an API request and return the 2xx response, retrying only what is safe to repeat.

        With ``idempotent=False`` (job creation) the request is repeated only when it provably never
        reached the service; otherwise the error is raised (a lost connection or a read timeout with
        ``maybe_sent=True``). A 429 is repeated for any request (the service refused it, nothing was
        created) until ``retry.rate_limit_patience_s`` has passed since the first one.

        Each attempt: wait for a slot at the shared :class:`RateGate`, send, then either report the
        answer to the gate and wait out a 429 (:meth:`_rate_limited`), return a success, or decide
        whether the failure is repeated (:func:`should_retry`), how long to wait first
        (:func:`retry_wait`), and otherwise raise it (:meth:`_connection_error`, :meth:`_status_error`).
        """
        url = self.url(path)
        retries = 0  # retries after failures (connection, 408/409/5xx), bounded by max_retries
        patience = RateLimitPatience(self.retry)  # 429s, bounded by time instead
        while True:
            epoch, started = self.gate.acquire()
            if counter:
                self._count(counter)
            try:
                response = self._session.request(
                    method, url, params=params, json=json, auth=self._auth, timeout=timeout or self.timeout
                )
            except requests.RequestException as exc:
                error = self._connection_error(exc, method, url)
                if not should_retry(self.retry, retries, idempotent=idempotent, maybe_sent=error.maybe_sent):
                    raise error from None
                wait = retry_wait(self.retry, retries, answered=False)
                log.debug("%s %s: %s; retry %d in %.2fs", method, path, type(exc).__name__, retries + 1, wait)
            else:
                if self._rate_limited(response, epoch, started, patience, method, path):
                    response.close()
                    continue  # the gate holds the next attempt back until its slot
                if response.status_code < 400:
                    return response
                if not should_retry(self.retry, retries, idempotent=idempotent, status=response.status_code):
                    raise self._status_error(response, method, url, patience)
                retry_after = parse_retry_after(response.headers)
                wait = retry_wait(self.retry, retries, answered=True, retry_after=retry_after)
                log.debug(
                    "%s %s: HTTP %d; retry %d in %.2fs", method, path, response.status_code, retries + 1, wait
                )
                response.close()
            retries += 1
            time.sleep(wait)

    def request_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.request(method, path, **kwargs)
        try:
            data = response.json()
        except ValueError:
            raise APIError(
                f"expected JSON from {method} {path}, got {response.headers.get('content-type')!r}",
                status_code=response.status_code,
                method=method,
                url=self.redact(response.url),
            ) from None
        if not isinstance(data, dict):
            raise APIError(
                f"expected a JSON object from {method} {path}",
                status_code=response.status_code,
                body=data,
                method=method,
            )
        return data

    def _rate_limited(
        self,
        response: requests.Response,
        epoch: int,
        started: float,
        patience: RateLimitPatience,
        method: str,
        path: str,
    ) -> bool:
        """Report an answer to the shared gate; True for a 429 this request should wait out.

        Every 429 is reported, even the one that exhausts the request's patience: the other threads
        still need to slow down. The wait itself happens in the next :meth:`RateGate.acquire`.
        """
        if response.status_code != 429:
            self.gate.admitted(started)
            return False
        asked = patience.wait_asked(parse_retry_after(response.headers))
        self.gate.refused(epoch, asked)
        if not patience.refused(time.monotonic()):
            return False
        log.debug(
            "%s %s: HTTP 429 (%d so far); waiting %.2fs or more", method, path, patience.refusals, asked
        )
        return True

    def _status_error(
        self, response: requests.Response, method: str, url: str, patience: RateLimitPatience
    ) -> APIError:
        """The error for a final error status: its class from :func:`error_for_status`, the service's
        message with credentials and query strings redacted, and how long a 429 was waited out."""
        message, body = error_message(response)
        if response.status_code == 429:
            message = (
                f"{message} (still rate limited after {patience.refusals} refusals and "
                f"{patience.waited:.0f} s of waiting; "
                f"RetryPolicy.rate_limit_patience_s={self.retry.rate_limit_patience_s:g})"
            )
        return error_for_status(response.status_code)(
            self.redact(message),
            status_code=response.status_code,
            body=body,
            method=method,
            url=self.redact(url),
            retry_after=parse_retry_after(response.headers),
        )

    def _connection_error(self, exc: requests.RequestException, method: str, url: str) -> APIConnectionError:
        """Classify a transport failure: could the request have reached the service?"""
        text = self.redact(f"{method} {url}: {type(exc).__name__}: {exc}")
        if isinstance(exc, requests.ConnectTimeout):
            return APITimeoutError(f"could not connect in time: {text}", maybe_sent=False)
        if isinstance(exc, requests.Timeout):
            return APITimeoutError(f"no answer in time: {text}", maybe_sent=True)
        if isinstance(exc, requests.ConnectionError) and _never_connected(exc):
            return APIConnectionError(f"could not connect: {text}", maybe_sent=False)
        return APIConnectionError(f"connection failed: {text}", maybe_sent=True)

    # --- plain GETs to other origins (signed asset URLs) ----------------------------------------------

    def get_external(
        self, url: str, *, stream: bool = True, timeout: tuple[float, float] | None = None
    ) -> requests.Response:
        """GET a signed URL with no credentials (they are bound to the API origin) and no retry.

        The caller handles retries because a failed download may need a fresh URL first.
        """
        try:
            return self._session.get(url, stream=stream, timeout=timeout or self.timeout, auth=self._auth)
        except requests.RequestException as exc:
            raise self._connection_error(exc, "GET", _strip_query(url)) from None


def _strip_query(url: str) -> str:
    """Signed URLs carry their signature in the query: keep it out of messages."""
    return url.split("?", 1)[0]


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the socket never connected (refused, DNS), so nothing was sent."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if name in ("NewConnectionError", "NameResolutionError", "ConnectionRefusedError"):
            return True
        if isinstance(current, requests.ConnectionError) and current.args:
            inner = current.args[0]
            if isinstance(inner, BaseException):
                current = inner
                continue
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
            continue
        current = current.__cause__ or current.__context__
    return False
