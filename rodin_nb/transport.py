"""HTTP transport: one ``requests.Session``, timeouts, safe retries, status -> error mapping.

Why this is more than ``session.request``:

- **Retries only where repeating is harmless.** Reads, uploads (content-addressed, so a duplicate is
  harmless) and downloads retry on connection errors, timeouts, 408/409/429/5xx with jittered exponential
  backoff. The POST that creates a paid job does not: it is retried only when the request provably never
  reached the service (connection refused, connect timeout, 429). Every other failure is raised with
  ``maybe_sent`` so the client can reconcile by listing jobs instead of paying twice.
- **Retry-After slows everyone down.** A 429's ``retry-after-ms``/``Retry-After`` sets a gate shared by
  all threads using this transport, so a sweep backs off as a whole instead of each run hammering alone.
- **Credentials stay home.** The Authorization header is attached by :class:`_HostBoundAuth`, which
  refuses any origin but the API's (signed asset URLs live on other hosts), and the key and secret are
  redacted from every message this module builds.
"""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import random
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from ._version import __version__
from .errors import APIConnectionError, APIError, APITimeoutError, ConfigError, error_for_status

__all__ = ["RetryPolicy", "Transport", "is_loopback_url", "origin_of"]

log = logging.getLogger("rodin_nb.http")

_QUERY_RE = re.compile(r"((?:https?://|/)[^\s?'\"<>]*)\?[^\s'\"<>)]+")
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 120.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently idempotent requests are retried."""

    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 8.0

    def delay(self, attempt: int) -> float:
        """Jittered exponential backoff: retry n waits up to ``base * 2**n`` (capped), at least half."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * (2**attempt))
        return ceiling * random.uniform(0.5, 1.0)


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
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
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
        self._gate_lock = threading.Lock()
        self._not_before = 0.0
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

    def _wait_gate(self) -> None:
        delay = self._not_before - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _slow_down(self, seconds: float) -> None:
        """Hold every request of this transport back for ``seconds`` (after a 429)."""
        with self._gate_lock:
            self._not_before = max(self._not_before, time.monotonic() + min(seconds, MAX_RETRY_AFTER_S))

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
        reached the service; otherwise the error is raised with ``maybe_sent=True``.
        """
        url = self.url(path)
        attempt = 0
        while True:
            self._wait_gate()
            if counter:
                self._count(counter)
            try:
                response = self._session.request(
                    method, url, params=params, json=json, auth=self._auth, timeout=timeout or self.timeout
                )
            except requests.RequestException as exc:
                error = self._connection_error(exc, method, url)
                retryable = idempotent or not error.maybe_sent
                if retryable and attempt < self.retry.max_retries:
                    delay = self.retry.delay(attempt)
                    log.debug(
                        "%s %s: %s; retry %d in %.2fs", method, path, type(exc).__name__, attempt + 1, delay
                    )
                    attempt += 1
                    time.sleep(delay)
                    continue
                raise error from None
            if response.status_code < 400:
                return response
            error_cls = error_for_status(response.status_code)
            retry_after = parse_retry_after(response.headers)
            if response.status_code == 429:
                self._slow_down(retry_after if retry_after is not None else self.retry.delay(attempt))
            # A 429 means the service refused the request, so even a job-creating POST may repeat it.
            may_repeat = idempotent or response.status_code == 429
            if may_repeat and response.status_code in RETRY_STATUSES and attempt < self.retry.max_retries:
                delay = retry_after if retry_after is not None else self.retry.delay(attempt)
                log.debug(
                    "%s %s: HTTP %d; retry %d in %.2fs",
                    method,
                    path,
                    response.status_code,
                    attempt + 1,
                    delay,
                )
                attempt += 1
                response.close()
                if response.status_code != 429:  # a 429 already set the shared gate
                    time.sleep(min(delay, MAX_RETRY_AFTER_S))
                continue
            message, body = error_message(response)
            raise error_cls(
                self.redact(message),
                status_code=response.status_code,
                body=body,
                method=method,
                url=self.redact(url),
                retry_after=retry_after,
            )

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
