"""rodin_nb: Jupyter widgets, a run log and an embedded sandbox for Rodin Gen-1 on Scenario's API.

>>> import rodin_nb as rn
>>> client = rn.connect()                       # no credentials -> the embedded sandbox
>>> run = client.generate(prompt="a carved wooden chair", tier="Sketch", seed=7)
>>> run.wait().glb                              # doctest: +SKIP

The public face is written once: the error tree is ``errors.__all__`` (re-exported as is), everything
else is the lazy table ``_LAZY`` below, and ``__all__`` is built from the two. Lazy names load their
module on first use (pandas, ipywidgets, pythreejs, the sandbox), so ``import rodin_nb`` stays fast.
The ``TYPE_CHECKING`` imports show type checkers what ``_LAZY`` resolves to; a test keeps them equal.
"""

import importlib
import typing as _typing  # underscored: the package's namespace holds only public names

from . import errors as _errors
from ._version import __version__ as __version__
from .errors import *  # noqa: F403  (exactly errors.__all__: the error tree)

if _typing.TYPE_CHECKING:
    # ``X as X``: re-exported for type checkers, also under --no-implicit-reexport.
    from . import sandbox as sandbox
    from .client import Client as Client
    from .client import connect as connect
    from .form import GenerateForm as GenerateForm
    from .jobs import Run as Run
    from .logbrowser import LogBrowser as LogBrowser
    from .provenance import manifest as manifest
    from .runlog import RunLog as RunLog
    from .schema import ModelSchema as ModelSchema
    from .schema import RodinRequest as RodinRequest
    from .schema import RodinWarning as RodinWarning
    from .sweep import Sweep as Sweep
    from .sweep import SweepProgress as SweepProgress
    from .sweepform import SweepForm as SweepForm
    from .timing import PollPolicy as PollPolicy
    from .transport import RetryPolicy as RetryPolicy
    from .viewer import compare as compare
    from .viewer import show as show

# Public name -> (module, attribute); attribute None means the module itself.
_LAZY: dict[str, tuple[str, str | None]] = {
    "connect": ("client", "connect"),
    "Client": ("client", "Client"),
    "RodinRequest": ("schema", "RodinRequest"),
    "ModelSchema": ("schema", "ModelSchema"),
    "RodinWarning": ("schema", "RodinWarning"),
    "Run": ("jobs", "Run"),
    "PollPolicy": ("timing", "PollPolicy"),
    "RetryPolicy": ("transport", "RetryPolicy"),
    "RunLog": ("runlog", "RunLog"),
    "Sweep": ("sweep", "Sweep"),
    "SweepProgress": ("sweep", "SweepProgress"),
    "GenerateForm": ("form", "GenerateForm"),
    "SweepForm": ("sweepform", "SweepForm"),
    "LogBrowser": ("logbrowser", "LogBrowser"),
    "manifest": ("provenance", "manifest"),
    "show": ("viewer", "show"),
    "compare": ("viewer", "compare"),
    "sandbox": ("sandbox", None),
}

__all__ = sorted(["__version__", *_errors.__all__, *_LAZY], key=str.casefold)


if not _typing.TYPE_CHECKING:  # hidden from type checkers, so a misspelt ``rn.name`` is an error, not Any

    def __getattr__(name: str) -> _typing.Any:
        if name not in _LAZY:
            raise AttributeError(f"module 'rodin_nb' has no attribute {name!r}")
        module_name, attr = _LAZY[name]
        module = importlib.import_module(f".{module_name}", __name__)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
