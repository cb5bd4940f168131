"""The one error tree of rodin_nb.

::

    RodinError
    ├── ConfigError                 bad credentials setup, plain-HTTP base URL, ...
    ├── ValidationError (+ValueError) bad request parameters, raised before any request
    ├── APIError                    the service answered with an error status
    │   ├── BadRequestError         400, 422
    │   ├── AuthenticationError     401
    │   ├── PermissionDeniedError   403
    │   ├── NotFoundError           404
    │   ├── ConflictError           409
    │   ├── RateLimitError          429
    │   └── ServerError             5xx
    ├── APIConnectionError          no answer: refused, dropped, DNS, ...
    │   └── APITimeoutError (+TimeoutError)
    ├── JobError                    a job ended badly (carries the Run)
    │   ├── JobFailed               status "failure", with the service's error and hint
    │   ├── JobCanceled             status "canceled"
    │   └── JobTimeout (+TimeoutError) wait() gave up; the job keeps running and can be re-attached
    ├── SweepTimeout (+TimeoutError) sweep.wait() gave up; the sweep keeps running, wait again
    ├── BudgetExceeded              a sweep would spend more than its budget
    ├── AssetError                  download, integrity or expired-URL trouble
    └── NotInLogError (+KeyError)   a run or sweep id the workspace's run log does not have

``__all__`` lists exactly the classes of this tree: it is what ``rodin_nb`` re-exports (a test checks
that every :class:`RodinError` subclass here is listed). Helpers such as :func:`error_for_status` stay
internal.

HTTP statuses are mapped to classes in exactly one place: :func:`error_for_status`.
Messages never contain credentials: the transport redacts them before an error is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .jobs import Run

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AssetError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceeded",
    "ConfigError",
    "ConflictError",
    "JobCanceled",
    "JobError",
    "JobFailed",
    "JobTimeout",
    "NotFoundError",
    "NotInLogError",
    "PermissionDeniedError",
    "RateLimitError",
    "RodinError",
    "ServerError",
    "SweepTimeout",
    "ValidationError",
]


class RodinError(Exception):
    """Base class of every error rodin_nb raises on purpose.

    ``ambiguous`` is True on an error from a job-creating call that may have created the job anyway
    (the run stays ``submitting`` and ``client.resume()`` finds out).
    """

    ambiguous: bool = False


class ConfigError(RodinError):
    """The client cannot be set up as asked (credentials, base URL, workspace)."""


class ValidationError(RodinError, ValueError):
    """Request parameters break the model's schema.

    ``problems`` lists every problem at once as ``(field, message)`` pairs, so a user fixes them all
    in one go; the message of the exception is the same list, one line per problem.
    """

    def __init__(self, problems: Sequence[tuple[str, str]], *, context: str = "request") -> None:
        self.problems: list[tuple[str, str]] = list(problems)
        self.fields: list[str] = [field for field, _ in self.problems]
        lines = [f"  - {field}: {message}" for field, message in self.problems]
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"invalid {context}, {len(self.problems)} {noun}:\n" + "\n".join(lines))


class APIError(RodinError):
    """The service answered with an error status.

    Attributes
    ----------
    status_code : the HTTP status.
    message : the service's message (from the JSON body when there is one).
    body : the decoded JSON body, or the raw text.
    method, url : what was asked (the URL never carries credentials).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: Any = None,
        method: str | None = None,
        url: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.body = body
        self.method = method
        self.url = url
        self.retry_after = retry_after
        where = f" ({method} {url})" if method and url else ""
        status = f"HTTP {status_code}: " if status_code is not None else ""
        super().__init__(f"{status}{message}{where}")


class BadRequestError(APIError):
    """400/422: the service refused the request's content."""


class AuthenticationError(APIError):
    """401: wrong or missing API key/secret."""


class PermissionDeniedError(APIError):
    """403: the key may not do this (plan, project, or an expired signed URL)."""


class NotFoundError(APIError):
    """404: no such model, job or asset for this key."""


class ConflictError(APIError):
    """409: the resource is in a state that forbids the action."""


class RateLimitError(APIError):
    """429: too many requests; ``retry_after`` says how long the service asked us to wait."""


class ServerError(APIError):
    """5xx: the service failed."""


class APIConnectionError(RodinError):
    """No usable answer: connection refused, dropped or reset.

    ``maybe_sent`` is True when the request may have reached the service before the failure
    (the case that makes a generate call ambiguous).
    """

    def __init__(self, message: str, *, maybe_sent: bool = False) -> None:
        self.maybe_sent = maybe_sent
        super().__init__(message)


class APITimeoutError(APIConnectionError, TimeoutError):
    """The service did not answer in time."""


class JobError(RodinError):
    """A job ended without a result; ``run`` is the handle, ``job_id`` its id."""

    def __init__(self, message: str, run: Run | None = None) -> None:
        self.run = run
        self.job_id = run.job_id if run is not None else None
        super().__init__(message)


class JobFailed(JobError):
    """The job ended in ``failure``; ``error`` and ``hint`` are the service's own words."""

    def __init__(self, message: str, run: Run | None = None, *, error: str | None, hint: str | None) -> None:
        self.error = error
        self.hint = hint
        super().__init__(message, run)


class JobCanceled(JobError):
    """The job was canceled (by us or on the service)."""


class JobTimeout(JobError, TimeoutError):
    """``wait(timeout=...)`` gave up. The job keeps running; wait again or re-attach by its id."""


class SweepTimeout(RodinError, TimeoutError):
    """``sweep.wait(timeout=...)`` gave up. The sweep keeps running; ``sweep_id`` says which one.

    Wait again with ``sweep.wait()``, or reopen it by id (``client.sweep_by_id``) after a restart.
    """

    def __init__(self, message: str, *, sweep_id: str | None = None) -> None:
        self.sweep_id = sweep_id
        super().__init__(message)


class BudgetExceeded(RodinError):
    """Running would spend more creative units than the budget allows; nothing was submitted."""


class AssetError(RodinError):
    """A result file could not be fetched or failed its integrity check."""


_STATUS_CLASSES: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: BadRequestError,
    429: RateLimitError,
}


def error_for_status(status_code: int) -> type[APIError]:
    """The one mapping from an HTTP error status to an exception class."""
    if status_code >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status_code, APIError)


class NotInLogError(RodinError, KeyError):
    """A run or sweep id that the workspace's run log does not have (a typo, or another workspace)."""

    def __str__(self) -> str:  # KeyError would quote the message like a dict key
        return str(self.args[0]) if self.args else ""
