"""Optional parts of rodin_nb, and the one-line hint naming the extra that installs a missing one.

``pip install rodin_nb`` gives the client, the run log (pandas), the widgets and the viewer. Heavier
parts are extras (``pyproject.toml``):

- ``preview``: VTK, for offline preview images rendered off-screen (a numpy rasteriser stands in
  without it, so only an explicit ``renderer="vtk"`` needs it);
- ``parquet``: pyarrow, for ``log.export("runs.parquet")``;
- ``notebook``: nbclient/nbconvert/nbformat/ipykernel (executing and exporting notebooks), matplotlib
  (the notebooks' plots), and the two above.

Code that needs an optional module asks :func:`require` for it instead of importing it, so a missing
one says which extra to install, in one line, the same way everywhere.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "MissingExtra", "install_hint", "require"]

#: Each extra and the import names it provides (kept in step with pyproject.toml by a test).
EXTRAS: dict[str, tuple[str, ...]] = {
    "preview": ("vtkmodules",),
    "parquet": ("pyarrow",),
    "notebook": ("nbclient", "nbconvert", "nbformat", "ipykernel", "matplotlib"),
}


class MissingExtra(ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""


def install_hint(extra: str) -> str:
    """``pip install 'rodin_nb[extra]'``, quoted for every shell (zsh globs bare brackets)."""
    if extra not in EXTRAS:
        raise ValueError(f"rodin_nb has no extra {extra!r}; its extras are {', '.join(EXTRAS)}")
    return f"pip install 'rodin_nb[{extra}]'"


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtra`: "<what> needs <package>: pip install ...".

    ``what`` says what the caller was about to do ("Parquet export"), so the line reads on its own.
    A module that is installed but fails to import (a broken wheel, a missing system library) says so,
    with the import error, instead of pretending it is absent.
    """
    hint = install_hint(extra)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        missing = exc.name is not None and exc.name.split(".")[0] == top
        if missing:
            message = f"{what} needs {top}, which is not installed: {hint}"
        else:
            message = f"{what} needs {top}, which failed to import ({exc}): {hint}"
        raise MissingExtra(message, name=top) from None
