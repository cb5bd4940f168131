"""The public face is a contract (PRODUCT.md). It is written once, in the package: the error tree is
``errors.__all__``, every other name is the lazy table ``rodin_nb._LAZY``; these tests check the package
against itself (like httpx's test_exported_members) and lock the names PRODUCT.md promises."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
import types
from pathlib import Path

import rodin_nb as rn
from rodin_nb import errors

# Names PRODUCT.md shows users (its "public face" block and its error list): removing one breaks users.
CONTRACT = {
    "connect",
    "Client",
    "RodinRequest",
    "Run",
    "RunLog",
    "GenerateForm",
    "SweepForm",
    "LogBrowser",
    "show",
    "compare",
    "sandbox",
    "RodinError",
    "ConfigError",
    "ValidationError",
    "APIError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "APIConnectionError",
    "APITimeoutError",
    "JobFailed",
    "JobCanceled",
    "JobTimeout",
    "BudgetExceeded",
    "AssetError",
    # Handed to users by client.sweep(), sweep.wait(), sweep.progress() and the run log.
    "Sweep",
    "SweepProgress",
    "SweepTimeout",
    "NotInLogError",
}


def _resolve_all() -> dict[str, object]:
    return {name: getattr(rn, name) for name in rn.__all__}


def test_all_is_built_from_the_one_list() -> None:
    assert rn.__all__ == sorted(["__version__", *errors.__all__, *rn._LAZY], key=str.casefold)
    assert len(set(rn.__all__)) == len(rn.__all__)
    assert not CONTRACT - set(rn.__all__), CONTRACT - set(rn.__all__)


def test_every_name_resolves_to_what_the_table_says() -> None:
    for name, value in _resolve_all().items():
        assert value is not None, name
        if name in rn._LAZY:
            module, attr = rn._LAZY[name]
            target = sys.modules[f"rodin_nb.{module}"]
            assert value is (target if attr is None else getattr(target, attr)), name
            if not isinstance(value, types.ModuleType):
                assert getattr(value, "__name__", name) == name, name
        elif name in errors.__all__:
            assert value is getattr(errors, name)


def test_no_public_name_outside_all() -> None:
    """Every public, non-module member of the package (all lazy names loaded) is in ``__all__``."""
    _resolve_all()
    members = {
        name
        for name, value in vars(rn).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert members <= set(rn.__all__), members - set(rn.__all__)
    assert set(rn.__all__) <= set(dir(rn))


def test_error_tree_is_exported_whole() -> None:
    """``errors.__all__`` is exactly the RodinError classes defined there (helpers stay internal)."""
    defined = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, rn.RodinError) and value.__module__ == errors.__name__
    }
    assert set(errors.__all__) == defined
    assert "error_for_status" not in rn.__all__
    # Every class appears in the tree drawing of the module docstring.
    assert errors.__doc__ is not None
    for name in defined:
        assert f" {name}" in errors.__doc__, name


def test_type_checking_imports_match_the_lazy_table() -> None:
    """The ``if TYPE_CHECKING:`` block is what mypy sees of ``_LAZY``: same names, same targets."""
    tree = ast.parse(Path(rn.__file__).read_text(encoding="utf-8"))
    seen: dict[str, tuple[str, str | None]] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "_typing.TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.level == 1, ast.unparse(stmt)
                for alias in stmt.names:
                    # ``X as X`` re-exports under mypy's --no-implicit-reexport.
                    assert alias.asname == alias.name, ast.unparse(stmt)
                    if stmt.module is None:
                        seen[alias.name] = (alias.name, None)
                    else:
                        seen[alias.name] = (stmt.module, alias.name)
    assert seen == rn._LAZY


def test_error_tree() -> None:
    for cls in (
        rn.ConfigError,
        rn.ValidationError,
        rn.APIError,
        rn.APIConnectionError,
        rn.JobFailed,
        rn.JobCanceled,
        rn.JobTimeout,
        rn.SweepTimeout,
        rn.BudgetExceeded,
        rn.AssetError,
        rn.NotInLogError,
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
    assert issubclass(rn.SweepTimeout, TimeoutError)
    assert issubclass(rn.NotInLogError, KeyError)


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        rn.error_for_status  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError:
        pass
    else:
        raise AssertionError("error_for_status is internal")


def test_import_is_light() -> None:
    code = (
        "import sys, rodin_nb; heavy = [m for m in ('pandas', 'ipywidgets', 'pythreejs', 'trimesh', "
        "'requests', 'rodin_nb.sandbox', 'rodin_nb.client', 'rodin_nb.sweep', 'rodin_nb.schema') "
        "if m in sys.modules]; print(heavy)"
    )
    # This checkout's package, not whichever one is installed (the tests run in a temporary folder).
    env = {**os.environ, "PYTHONPATH": str(Path(rn.__file__).resolve().parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.strip() == "[]"
