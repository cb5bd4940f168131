"""rodin_nb: Jupyter widgets, a run log and an embedded sandbox for Rodin Gen-1 on Scenario's API.

>>> import rodin_nb as rn
>>> client = rn.connect()                       # no credentials -> the embedded sandbox
>>> run = client.generate(prompt="a carved wooden chair", tier="Sketch", seed=7)
>>> run.wait().glb                              # doctest: +SKIP

The public face is listed in ``__all__`` (locked by a test). Heavy modules (pandas, ipywidgets,
pythreejs, the sandbox) load only when first used, so ``import rodin_nb`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AssetError,
    AuthenticationError,
    BadRequestError,
    BudgetExceeded,
    ConfigError,
    ConflictError,
    JobCanceled,
    JobError,
    JobFailed,
    JobTimeout,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RodinError,
    ServerError,
    ValidationError,
)
from .schema import ModelSchema, RodinRequest, RodinWarning

if TYPE_CHECKING:
    from . import sandbox
    from .client import Client, connect
    from .form import GenerateForm
    from .jobs import PollPolicy, Run
    from .runlog import RunLog
    from .transport import RetryPolicy
    from .viewer import compare, show

__all__ = [
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
]

_LAZY = {
    "connect": ("client", "connect"),
    "Client": ("client", "Client"),
    "Run": ("jobs", "Run"),
    "RunLog": ("runlog", "RunLog"),
    "GenerateForm": ("form", "GenerateForm"),
    "PollPolicy": ("jobs", "PollPolicy"),
    "RetryPolicy": ("transport", "RetryPolicy"),
    "sandbox": ("sandbox", None),
    "show": ("viewer", "show"),
    "compare": ("viewer", "compare"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'rodin_nb' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(f".{module_name}", __name__)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
