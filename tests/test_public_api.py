"""The public face is a contract (PRODUCT.md): lock it."""

from __future__ import annotations

import subprocess
import sys

import rodin_nb as rn

EXPECTED = {
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AssetError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceeded",
    "Client",
    "ConfigError",
    "ConflictError",
    "GenerateForm",
    "JobCanceled",
    "JobError",
    "JobFailed",
    "JobTimeout",
    "ModelSchema",
    "NotFoundError",
    "PermissionDeniedError",
    "PollPolicy",
    "RateLimitError",
    "RetryPolicy",
    "RodinError",
    "RodinRequest",
    "RodinWarning",
    "Run",
    "RunLog",
    "ServerError",
    "ValidationError",
    "__version__",
    "compare",
    "connect",
    "sandbox",
    "show",
}


def test_all_is_locked() -> None:
    assert set(rn.__all__) == EXPECTED
    for name in rn.__all__:
        assert getattr(rn, name) is not None


def test_error_tree() -> None:
    for cls in (
        rn.ConfigError,
        rn.ValidationError,
        rn.APIError,
        rn.APIConnectionError,
        rn.JobFailed,
        rn.JobCanceled,
        rn.JobTimeout,
        rn.BudgetExceeded,
        rn.AssetError,
    ):
        assert issubclass(cls, rn.RodinError)
    for cls in (
        rn.AuthenticationError,
        rn.PermissionDeniedError,
        rn.NotFoundError,
        rn.RateLimitError,
        rn.ServerError,
    ):
        assert issubclass(cls, rn.APIError)
    assert issubclass(rn.APITimeoutError, rn.APIConnectionError) and issubclass(
        rn.APITimeoutError, TimeoutError
    )
    assert issubclass(rn.JobTimeout, TimeoutError)


def test_import_is_light() -> None:
    code = (
        "import sys, rodin_nb; heavy = [m for m in ('pandas', 'ipywidgets', 'pythreejs', 'trimesh', "
        "'requests') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
