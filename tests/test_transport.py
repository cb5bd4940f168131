"""The transport's named steps, one class each, then whole requests over real loopback HTTP.

The loopback tests talk either to the sandbox (its fault knobs) or to a scripted server that answers
exactly what a test asks, in order, so every retry, wait and error can be counted.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

import rodin_nb as rn
from rodin_nb.api import ScenarioAPI
from rodin_nb.errors import APIConnectionError, APITimeoutError
from rodin_nb.sandbox import serve
from rodin_nb.sandbox.model import MODEL_ID
from rodin_nb.transport import (
    MAX_RETRY_AFTER_S,
    RateGate,
    RateLimitPatience,
    RetryPolicy,
    Transport,
    parse_retry_after,
    retry_wait,
    should_retry,
)

FAST = RetryPolicy(max_retries=4, backoff_base_s=0.01, backoff_cap_s=0.02)
KEY, SECRET = "key-K3Y0123", "secret-S3CR3T456"


# --- a scripted loopback server ------------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted answer: a status, JSON body and headers, after ``sleep_s``; or a dropped connection."""

    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    sleep_s: float = 0.0
    drop: bool = False


class Scripted:
    """A loopback HTTP server answering the queued replies in order, then ``default`` forever."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.default = Reply()
        self.seen: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)
        self._lock = threading.Lock()
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with script._lock:
                    script.seen.append((self.command, self.path, self.headers.get("Authorization")))
                    reply = script.replies.popleft() if script.replies else script.default
                time.sleep(reply.sleep_s)
                if reply.drop:
                    self.close_connection = True
                    return
                data = reply.body if isinstance(reply.body, bytes) else _json_bytes(reply.body)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.url = self.origin + "/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connecting is refused, so nothing is ever sent."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    server = Scripted()
    try:
        yield server
    finally:
        server.close()


def transport_for(url: str, retry: RetryPolicy = FAST, **kwargs: Any) -> Transport:
    return Transport(url, retry=retry, **kwargs)


def answer(scripted: Scripted, reply: Reply) -> requests.Response:
    """A real response carrying ``reply``, fetched over loopback."""
    scripted.queue(reply)
    return requests.get(scripted.url + "/probe", timeout=5)


def warm(transport: Transport, n: int = 20) -> None:
    """Let ``n`` requests through, so a first 429 sets a short pace (about n/s) instead of 1 s."""
    for _ in range(n):
        transport.request("GET", "warm").close()


# --- the named steps ---------------------------------------------------------------------------------


class TestShouldRetry:
    """should_retry: is a failed attempt repeated within max_retries?"""

    @pytest.mark.parametrize("status", [408, 409, 500, 502, 503, 504])
    def test_idempotent_request_retries_transient_statuses(self, status: int) -> None:
        """408, 409 and 5xx are repeated for an idempotent request."""
        assert should_retry(FAST, 0, idempotent=True, status=status)

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 429])
    def test_other_statuses_are_final(self, status: int) -> None:
        """Client errors are final, and 429 is never retried here (it has its own budget)."""
        assert not should_retry(FAST, 0, idempotent=True, status=status)

    @pytest.mark.parametrize("maybe_sent", [True, False])
    def test_idempotent_request_retries_any_lost_answer(self, maybe_sent: bool) -> None:
        """A read may be repeated after any connection failure."""
        assert should_retry(FAST, 0, idempotent=True, maybe_sent=maybe_sent)

    def test_job_creation_retried_only_when_never_sent(self) -> None:
        """The job-creating POST is repeated after a refused connection, never after a maybe-sent one."""
        assert should_retry(FAST, 0, idempotent=False, maybe_sent=False)
        assert not should_retry(FAST, 0, idempotent=False, maybe_sent=True)

    @pytest.mark.parametrize("status", [408, 409, 500, 503])
    def test_job_creation_never_retried_after_an_answer(self, status: int) -> None:
        """An answered job-creating POST may have created the job: never repeated blindly."""
        assert not should_retry(FAST, 0, idempotent=False, status=status)

    def test_stops_at_max_retries(self) -> None:
        """After max_retries retries nothing is repeated."""
        policy = RetryPolicy(max_retries=2)
        assert should_retry(policy, 1, idempotent=True, status=503)
        assert not should_retry(policy, 2, idempotent=True, status=503)
        assert not should_retry(policy, 2, idempotent=False, maybe_sent=False)
        assert not should_retry(RetryPolicy(max_retries=0), 0, idempotent=True, maybe_sent=False)


class TestRetryPolicyDelay:
    """RetryPolicy.delay: jittered exponential backoff, capped."""

    @pytest.mark.parametrize("attempt", [0, 1, 2, 3, 6])
    def test_between_half_and_full_ceiling(self, attempt: int) -> None:
        """Retry n waits between half and all of min(cap, base * 2**n)."""
        policy = RetryPolicy(backoff_base_s=0.5, backoff_cap_s=3.0)
        ceiling = min(3.0, 0.5 * 2**attempt)
        draws = [policy.delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in draws)
        assert len(set(draws)) > 1  # jittered

    def test_refuses_nonsense(self) -> None:
        """Negative, infinite or non-integer settings are refused at construction."""
        with pytest.raises(ValueError, match="rate_limit_patience_s"):
            rn.RetryPolicy(rate_limit_patience_s=-1)
        with pytest.raises(ValueError, match="max_retries"):
            rn.RetryPolicy(max_retries=1.5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="backoff_cap_s"):
            rn.RetryPolicy(backoff_cap_s=float("inf"))


class TestRetryWait:
    """retry_wait: how long to sleep before the next retry."""

    def test_no_answer_waits_the_backoff(self) -> None:
        """After a lost connection the wait is the jittered backoff of this retry."""
        policy = RetryPolicy(backoff_base_s=1.0, backoff_cap_s=8.0)
        assert all(2.0 <= retry_wait(policy, 2, answered=False) <= 4.0 for _ in range(50))

    def test_answer_with_retry_after_waits_what_it_asks(self) -> None:
        """A 5xx with Retry-After waits exactly that, whatever the backoff."""
        assert retry_wait(FAST, 0, answered=True, retry_after=2.5) == 2.5
        assert retry_wait(FAST, 3, answered=True, retry_after=0.0) == 0.0

    def test_answer_without_retry_after_waits_the_backoff(self) -> None:
        """A 5xx without Retry-After falls back to the backoff."""
        assert all(0.005 <= retry_wait(FAST, 0, answered=True) <= 0.01 for _ in range(50))

    def test_retry_after_is_capped(self) -> None:
        """An answer asking for more than MAX_RETRY_AFTER_S waits MAX_RETRY_AFTER_S."""
        assert retry_wait(FAST, 0, answered=True, retry_after=3600.0) == MAX_RETRY_AFTER_S


class TestParseRetryAfter:
    """parse_retry_after: seconds from retry-after-ms or Retry-After."""

    def test_missing(self) -> None:
        """No header, no wait."""
        assert parse_retry_after({}) is None

    def test_milliseconds_win(self) -> None:
        """retry-after-ms is more precise than Retry-After and takes precedence."""
        assert parse_retry_after({"retry-after-ms": "250", "retry-after": "1"}) == 0.25

    def test_bad_milliseconds_fall_back_to_seconds(self) -> None:
        """An unreadable retry-after-ms is ignored in favour of Retry-After."""
        assert parse_retry_after({"retry-after-ms": "soon", "retry-after": "3"}) == 3.0

    def test_seconds_never_negative(self) -> None:
        """Seconds are read as a float and never below 0."""
        assert parse_retry_after({"retry-after": "1.5"}) == 1.5
        assert parse_retry_after({"retry-after": "-4"}) == 0.0

    def test_http_date(self) -> None:
        """An HTTP date means the seconds until then (0 when past)."""
        later = datetime.now(timezone.utc) + timedelta(seconds=30)
        wait = parse_retry_after({"retry-after": email.utils.format_datetime(later, usegmt=True)})
        assert wait is not None and 28.0 <= wait <= 30.0
        earlier = email.utils.format_datetime(later - timedelta(hours=1), usegmt=True)
        assert parse_retry_after({"retry-after": earlier}) == 0.0

    def test_garbage_is_ignored(self) -> None:
        """A Retry-After that is neither seconds nor a date should count as absent."""
        assert parse_retry_after({"retry-after": "soon"}) is None


class TestRateLimitPatience:
    """RateLimitPatience: one request's time budget for 429s, separate from max_retries."""

    def test_zero_patience_gives_up_on_the_first_429(self) -> None:
        """rate_limit_patience_s=0: the first 429 is final."""
        patience = RateLimitPatience(RetryPolicy(rate_limit_patience_s=0))
        assert not patience.refused(100.0)
        assert (patience.refusals, patience.waited) == (1, 0.0)

    def test_budget_runs_from_the_first_429(self) -> None:
        """429s are waited out while less than the patience has passed since the first one."""
        patience = RateLimitPatience(RetryPolicy(rate_limit_patience_s=5))
        assert patience.refused(100.0)
        assert patience.refused(104.9)
        assert not patience.refused(105.0)
        assert (patience.refusals, patience.waited) == (3, 5.0)

    def test_wait_asked_is_retry_after_else_backoff(self) -> None:
        """The wait asked is the 429's Retry-After, else backoff growing with the 429s so far."""
        patience = RateLimitPatience(RetryPolicy(backoff_base_s=1.0, backoff_cap_s=8.0))
        assert patience.wait_asked(0.3) == 0.3
        assert 0.5 <= patience.wait_asked(None) <= 1.0
        patience.refused(0.0)
        patience.refused(0.1)
        assert 2.0 <= patience.wait_asked(None) <= 4.0


class TestRateGate:
    """RateGate: the pace shared by every thread once the service answered 429."""

    def test_unlimited_client_passes_straight_through(self) -> None:
        """Without a 429 nobody waits and no pace is set."""
        gate = RateGate()
        for _ in range(5):
            _, started = gate.acquire()
            gate.admitted(started)
        assert (gate.interval, gate.delayed, gate.refusals) == (0.0, 0, 0)

    def test_a_429_holds_the_next_slot_until_retry_after(self) -> None:
        """Nobody starts before the Retry-After of a 429."""
        gate = RateGate()
        epoch, _ = gate.acquire()
        refused_at = time.monotonic()
        gate.refused(epoch, 0.05)
        _, slot = gate.acquire()
        assert slot >= refused_at + 0.05 and gate.delayed == 1

    def test_gate_releases_waiters_one_by_one(self) -> None:
        """After a 429 the waiting threads get slots ``interval`` apart, not one shared instant."""
        gate = RateGate()
        epoch, started = gate.acquire()
        gate.admitted(started)
        gate.admitted(started)  # two got through in the last second: about 2/s allowed
        gate.refused(epoch, 0.3)
        assert gate.interval == pytest.approx(1.05 / 2)
        slots: list[float] = []
        lock = threading.Lock()
        barrier = threading.Barrier(4)

        def wait_for_slot() -> None:
            barrier.wait()
            _, slot = gate.acquire()
            with lock:
                slots.append(slot)

        threads = [threading.Thread(target=wait_for_slot) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        slots.sort()
        gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
        assert gaps == pytest.approx([gate.interval] * 3)
        assert gate.delayed == 4

    def test_gate_widens_once_per_burst_of_429s(self) -> None:
        """429s of requests released before the pace changed are no fresh evidence."""
        gate = RateGate()
        epoch, started = gate.acquire()
        gate.admitted(started)
        for _ in range(5):  # a burst released together, refused together
            gate.refused(epoch, 0.0)
        assert gate.interval == pytest.approx(1.05) and gate.refusals == 5
        paced_epoch, _ = gate.acquire()
        gate.refused(paced_epoch, 0.0)  # refused although paced: widen by a quarter
        assert gate.interval == pytest.approx(1.05 * 1.25)
        gate.refused(paced_epoch, 0.0)
        assert gate.interval == pytest.approx(1.05 * 1.25)


class TestRateLimited:
    """Transport._rate_limited: report an answer to the gate, and say whether to wait out a 429."""

    def test_an_answer_other_than_429_is_admitted(self, scripted: Scripted) -> None:
        """Any answer but 429, even a 5xx, counts as let through."""
        transport = transport_for(scripted.url)
        patience = RateLimitPatience(transport.retry)
        try:
            response = answer(scripted, Reply(503))
            assert not transport._rate_limited(response, 0, time.monotonic(), patience, "GET", "x")
        finally:
            transport.close()
        assert transport.gate.refusals == 0 and patience.refusals == 0

    def test_a_429_within_patience_is_waited_out(self, scripted: Scripted) -> None:
        """A 429 within patience is waited out and paces the gate from its Retry-After on."""
        transport = transport_for(scripted.url)
        patience = RateLimitPatience(transport.retry)
        try:
            response = answer(scripted, Reply(429, headers={"retry-after-ms": "40"}))
            before = time.monotonic()
            assert transport._rate_limited(response, 0, before, patience, "GET", "x")
            _, slot = transport.gate.acquire()
        finally:
            transport.close()
        assert transport.gate.refusals == 1 and patience.refusals == 1
        assert slot >= before + 0.04

    def test_the_last_429_is_still_reported(self, scripted: Scripted) -> None:
        """Past patience the 429 is final, but the gate still learns of it (others must slow down)."""
        transport = transport_for(scripted.url, RetryPolicy(rate_limit_patience_s=0))
        patience = RateLimitPatience(transport.retry)
        try:
            response = answer(scripted, Reply(429, headers={"retry-after-ms": "10"}))
            assert not transport._rate_limited(response, 0, time.monotonic(), patience, "GET", "x")
        finally:
            transport.close()
        assert transport.gate.refusals == 1 and transport.gate.interval > 0


class TestStatusError:
    """Transport._status_error: a final error status becomes the right error, redacted."""

    def test_class_message_and_details(self, scripted: Scripted) -> None:
        """The class comes from the status, the message from the JSON body."""
        transport = transport_for(scripted.url)
        try:
            response = answer(scripted, Reply(404, {"message": "no such job"}, {"Retry-After": "2"}))
            error = transport._status_error(
                response, "GET", transport.url("jobs/j1"), RateLimitPatience(transport.retry)
            )
        finally:
            transport.close()
        assert isinstance(error, rn.NotFoundError)
        assert (error.status_code, error.message, error.method) == (404, "no such job", "GET")
        assert error.url == scripted.url + "/jobs/j1" and error.retry_after == 2.0

    def test_credentials_and_signatures_are_redacted(self, scripted: Scripted) -> None:
        """Neither the key, the secret nor a signed URL's query reaches the message."""
        transport = transport_for(scripted.url, api_key=KEY, api_secret=SECRET)
        leak = f"key {KEY} secret {SECRET} see https://cdn.example/a.glb?X-Signature=abc123"
        try:
            response = answer(scripted, Reply(403, {"message": leak}))
            error = transport._status_error(
                response, "GET", transport.url("assets/a"), RateLimitPatience(transport.retry)
            )
        finally:
            transport.close()
        assert isinstance(error, rn.PermissionDeniedError)
        for text in (str(error), error.message):
            assert KEY not in text and SECRET not in text and "abc123" not in text
        assert "https://cdn.example/a.glb?..." in error.message

    def test_429_says_how_long_it_waited(self, scripted: Scripted) -> None:
        """A final 429 tells how many refusals were waited out and the patience setting."""
        transport = transport_for(scripted.url, RetryPolicy(rate_limit_patience_s=2))
        patience = RateLimitPatience(transport.retry)
        patience.refused(10.0)
        patience.refused(12.0)
        try:
            response = answer(scripted, Reply(429, {"message": "slow down"}, {"retry-after-ms": "500"}))
            error = transport._status_error(response, "POST", transport.url("generate/custom/m"), patience)
        finally:
            transport.close()
        assert isinstance(error, rn.RateLimitError) and error.retry_after == 0.5
        assert "slow down (still rate limited after 2 refusals and 2 s of waiting" in error.message
        assert "rate_limit_patience_s=2" in error.message


class TestConnectionError:
    """Transport._connection_error: could a failed request have reached the service?"""

    def test_connect_timeout_was_never_sent(self) -> None:
        """A connect timeout means nothing was sent."""
        transport = transport_for(closed_port_url())
        error = transport._connection_error(requests.ConnectTimeout("slow"), "POST", transport.url("x"))
        transport.close()
        assert isinstance(error, APITimeoutError) and not error.maybe_sent

    def test_read_timeout_may_have_been_sent(self) -> None:
        """A read timeout happens after sending: maybe sent."""
        transport = transport_for(closed_port_url())
        error = transport._connection_error(requests.ReadTimeout("slow"), "POST", transport.url("x"))
        transport.close()
        assert isinstance(error, APITimeoutError) and error.maybe_sent

    def test_refused_connection_was_never_sent(self) -> None:
        """A real refused connection is recognised as never sent."""
        url = closed_port_url()
        transport = transport_for(url)
        with pytest.raises(requests.ConnectionError) as caught:
            requests.get(url, timeout=5)
        error = transport._connection_error(caught.value, "GET", url)
        transport.close()
        assert type(error) is APIConnectionError and not error.maybe_sent

    def test_other_failures_may_have_been_sent(self) -> None:
        """An unexplained connection failure is assumed maybe sent."""
        transport = transport_for(closed_port_url())
        error = transport._connection_error(requests.ConnectionError("reset"), "GET", transport.url("x"))
        transport.close()
        assert error.maybe_sent

    def test_message_is_redacted(self) -> None:
        """Credentials and query strings never reach the message."""
        transport = transport_for(closed_port_url(), api_key=KEY, api_secret=SECRET)
        exc = requests.ConnectionError(f"{KEY}:{SECRET} http://h/a?sig=abc123")
        error = transport._connection_error(exc, "GET", transport.url("x") + "?token=abc123")
        transport.close()
        text = str(error)
        assert KEY not in text and SECRET not in text and "abc123" not in text


class TestRedact:
    """Transport.redact: messages without signed URL queries."""

    def test_signed_urls_never_reach_messages(self, client: rn.Client) -> None:
        """A signed URL keeps its path and loses its query."""
        text = client.transport.redact(
            "GET http://cdn.example/f/a.glb?X-Amz-Signature=abc123&Expires=9: timeout"
        )
        assert "abc123" not in text and "http://cdn.example/f/a.glb?..." in text


# --- whole requests over real loopback HTTP ------------------------------------------------------------


class TestRequestScripted:
    """Transport.request against a scripted loopback server: every attempt counted."""

    def test_transient_statuses_are_retried_for_reads(self, scripted: Scripted) -> None:
        """A GET meeting 503 then 408 succeeds on its third attempt, honouring Retry-After."""
        scripted.queue(Reply(503, headers={"retry-after-ms": "30"}), Reply(408))
        transport = transport_for(scripted.url)
        started = time.monotonic()
        try:
            data = transport.request_json("GET", "jobs/j1", counter="job")
        finally:
            transport.close()
        assert data == {"ok": True} and transport.counters == {"job": 3}
        assert time.monotonic() - started >= 0.03
        assert transport.gate.refusals == 0

    def test_a_success_is_returned_whatever_its_retry_after(self, scripted: Scripted) -> None:
        """Retry-After is read only from 429s and errors: a 2xx with a malformed one is still returned."""
        scripted.queue(Reply(200, headers={"Retry-After": "soon"}))
        transport = transport_for(scripted.url)
        try:
            assert transport.request_json("GET", "jobs/j1") == {"ok": True}
        finally:
            transport.close()

    def test_retries_stop_at_max_retries(self, scripted: Scripted) -> None:
        """A GET failing every time is tried 1 + max_retries times, then raises ServerError."""
        scripted.default = Reply(502, {"message": "bad gateway"})
        transport = transport_for(scripted.url, RetryPolicy(max_retries=2, backoff_base_s=0.01))
        try:
            with pytest.raises(rn.ServerError, match="bad gateway"):
                transport.request("GET", "jobs/j1")
        finally:
            transport.close()
        assert len(scripted.seen) == 3

    def test_job_creation_is_never_repeated_after_an_answer(self, scripted: Scripted) -> None:
        """The job-creating POST meeting a 503 is sent once and raises."""
        scripted.queue(Reply(503, {"message": "try later"}))
        transport = transport_for(scripted.url)
        try:
            with pytest.raises(rn.ServerError):
                transport.request("POST", "generate/custom/m", json={"prompt": "x"}, idempotent=False)
        finally:
            transport.close()
        assert [method for method, _, _ in scripted.seen] == ["POST"]

    def test_job_creation_read_timeout_is_maybe_sent(self, scripted: Scripted) -> None:
        """A read timeout on the job-creating POST raises maybe_sent=True after one attempt."""
        scripted.queue(Reply(sleep_s=0.5))
        transport = transport_for(scripted.url, timeout=(5.0, 0.1))
        try:
            with pytest.raises(APITimeoutError) as caught:
                transport.request("POST", "generate/custom/m", json={}, idempotent=False)
        finally:
            transport.close()
        assert caught.value.maybe_sent and len(scripted.seen) == 1

    def test_read_timeout_of_a_read_is_retried(self, scripted: Scripted) -> None:
        """The same read timeout on a GET is simply retried."""
        scripted.queue(Reply(sleep_s=0.5))
        transport = transport_for(scripted.url, timeout=(5.0, 0.1))
        try:
            assert transport.request_json("GET", "jobs/j1") == {"ok": True}
        finally:
            transport.close()
        assert len(scripted.seen) == 2

    def test_job_creation_dropped_connection_is_maybe_sent(self, scripted: Scripted) -> None:
        """A connection dropped after the POST arrived raises maybe_sent=True, not retried."""
        scripted.queue(Reply(drop=True))
        transport = transport_for(scripted.url)
        try:
            with pytest.raises(APIConnectionError) as caught:
                transport.request("POST", "generate/custom/m", json={}, idempotent=False)
        finally:
            transport.close()
        assert caught.value.maybe_sent and len(scripted.seen) == 1

    def test_job_creation_is_retried_when_refused(self) -> None:
        """A refused connection never sent anything: even the job POST is tried 1 + max_retries times."""
        transport = transport_for(closed_port_url(), api_key=KEY, api_secret=SECRET)
        try:
            with pytest.raises(APIConnectionError) as caught:
                transport.request(
                    "POST",
                    "generate/custom/m",
                    params={"token": "abc123"},
                    json={},
                    idempotent=False,
                    counter="generate",
                )
        finally:
            transport.close()
        assert not caught.value.maybe_sent
        assert transport.counters == {"generate": 1 + FAST.max_retries}
        text = str(caught.value)
        assert "could not connect" in text and "abc123" not in text and SECRET not in text

    def test_429s_do_not_use_up_max_retries(self, scripted: Scripted) -> None:
        """With max_retries=0, three 429s are waited out and the job POST succeeds once."""
        transport = transport_for(scripted.url, RetryPolicy(max_retries=0, backoff_base_s=0.01))
        try:
            warm(transport)
            scripted.seen.clear()
            scripted.queue(*[Reply(429, headers={"retry-after-ms": "10"})] * 3)
            data = transport.request_json("POST", "generate/custom/m", json={}, idempotent=False)
        finally:
            transport.close()
        assert data == {"ok": True} and len(scripted.seen) == 4
        assert transport.gate.refusals == 3 and transport.gate.interval > 0

    def test_429s_past_patience_raise_rate_limit_error(self, scripted: Scripted) -> None:
        """A request refused for longer than its patience raises RateLimitError, every 429 reported."""
        policy = RetryPolicy(max_retries=0, backoff_base_s=0.01, rate_limit_patience_s=0.3)
        transport = transport_for(scripted.url, policy)
        try:
            warm(transport)
            scripted.seen.clear()
            scripted.default = Reply(429, {"message": "slow down"}, {"retry-after-ms": "20"})
            started = time.monotonic()
            with pytest.raises(rn.RateLimitError, match=r"rate_limit_patience_s=0\.3") as caught:
                transport.request("GET", "jobs/j1")
            elapsed = time.monotonic() - started
        finally:
            transport.close()
        refusals = len(scripted.seen)
        assert refusals >= 2 and f"after {refusals} refusals" in caught.value.message
        assert transport.gate.refusals == refusals and caught.value.retry_after == 0.02
        assert 0.3 <= elapsed < 5.0

    def test_zero_patience_raises_on_the_first_429(self, scripted: Scripted) -> None:
        """rate_limit_patience_s=0: one 429, one request, RateLimitError."""
        scripted.queue(Reply(429, {"message": "slow down"}, {"Retry-After": "7"}))
        transport = transport_for(scripted.url, RetryPolicy(rate_limit_patience_s=0))
        try:
            with pytest.raises(rn.RateLimitError) as caught:
                transport.request("POST", "generate/custom/m", json={}, idempotent=False)
        finally:
            transport.close()
        assert len(scripted.seen) == 1 and caught.value.retry_after == 7.0

    def test_credentials_go_to_the_api_origin_only(self, scripted: Scripted) -> None:
        """The API gets Basic auth; another origin (a signed file URL) never does."""
        files = Scripted()
        transport = transport_for(scripted.url, api_key=KEY, api_secret=SECRET)
        try:
            transport.request("GET", "jobs/j1").close()
            transport.get_external(files.origin + "/f/a.glb?sig=x").close()
        finally:
            transport.close()
            files.close()
        assert (scripted.seen[0][2] or "").startswith("Basic ")
        assert files.seen[0][2] is None


class TestRequestSandbox:
    """Transport.request against the sandbox's fault knobs."""

    def test_injected_5xx_are_retried_for_reads(self) -> None:
        """Reads get through injected 5xx; every injected error cost exactly one retry."""
        policy = RetryPolicy(max_retries=10, backoff_base_s=0.005, backoff_cap_s=0.01)
        with serve(faults={"error_rate": 0.5, "seed": 11}) as sb:
            api = ScenarioAPI(transport_for(sb.url, policy))
            try:
                models = [api.get_model(MODEL_ID) for _ in range(10)]
            finally:
                api.transport.close()
            stats = sb.stats()
        injected = stats["faults_injected"]["error"]
        assert all(m for m in models) and injected > 0
        assert stats["requests"]["GET /v1/models/{modelId}"] == 10 + injected
        assert api.transport.counters == {"model": 10 + injected}

    def test_injected_5xx_never_repeat_a_job_post(self) -> None:
        """Each job POST is sent exactly once; the ones answered 5xx raise and created nothing."""
        with serve(job_seconds=5, faults={"error_rate": 0.5, "seed": 11}) as sb:
            api = ScenarioAPI(transport_for(sb.url))
            created, failed = 0, 0
            try:
                for _ in range(10):
                    try:
                        api.generate(MODEL_ID, {"prompt": "a mug"})
                        created += 1
                    except rn.ServerError:
                        failed += 1
            finally:
                api.transport.close()
            stats = sb.stats()
        assert created > 0 and failed == stats["faults_injected"]["error"] > 0
        assert stats["requests"]["POST /v1/generate/custom/{modelId}"] == 10
        assert stats["jobs_created"] == created

    def test_job_post_dropped_after_create_is_maybe_sent(self) -> None:
        """The sandbox creating the job then dropping the connection: maybe_sent, one POST, one job."""
        with serve(job_seconds=5, faults={"drop_after_create_rate": 1.0}) as sb:
            api = ScenarioAPI(transport_for(sb.url))
            try:
                with pytest.raises(APIConnectionError) as caught:
                    api.generate(MODEL_ID, {"prompt": "a mug"})
            finally:
                api.transport.close()
            stats = sb.stats()
        assert caught.value.maybe_sent
        assert stats["requests"]["POST /v1/generate/custom/{modelId}"] == 1 and stats["jobs_created"] == 1

    def test_steady_rate_limit_from_many_threads(self) -> None:
        """4 threads through 20 requests/s with max_retries=0: every read and job POST succeeds."""
        policy = RetryPolicy(max_retries=0, backoff_base_s=0.01)
        with serve(job_seconds=5, faults={"rate_limit_per_s": 20}) as sb:
            api = ScenarioAPI(transport_for(sb.url, policy))
            errors: list[BaseException] = []

            def work() -> None:
                try:
                    for _ in range(10):
                        api.get_model(MODEL_ID)
                    api.generate(MODEL_ID, {"prompt": "a mug"})
                except BaseException as exc:  # reported below
                    errors.append(exc)

            threads = [threading.Thread(target=work) for _ in range(4)]
            try:
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=60)
            finally:
                api.transport.close()
            stats = sb.stats()
        gate = api.transport.gate
        assert not errors, errors
        assert stats["jobs_created"] == 4
        limited = stats["faults_injected"].get("rate_limit", 0)
        assert limited > 0 and gate.refusals == limited and gate.interval > 0
        assert sum(stats["requests"].values()) == 44 + limited

    def test_wrong_credentials_are_not_retried_or_echoed(self) -> None:
        """A 401 is final at once and its error carries no credential."""
        with serve(credentials=(KEY, "the-right-secret")) as sb:
            transport = transport_for(sb.url, api_key=KEY, api_secret=SECRET)
            try:
                with pytest.raises(rn.AuthenticationError) as caught:
                    transport.request("GET", f"models/{MODEL_ID}", counter="model")
            finally:
                transport.close()
        assert transport.counters == {"model": 1}
        assert KEY not in str(caught.value) and SECRET not in str(caught.value)
