"""Fresh virtualenvs for the install tests (tests/test_install.py, tests/test_binder.py).

They install from the package index through pip's cache (wheels are cached on the CI machine), so they
take a minute or a few each: they run in CI (.ci/run sets RODIN_NB_INSTALL_TESTS=1) and skip elsewhere
unless asked for with RODIN_NB_INSTALL_TESTS=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[1]
F = TypeVar("F", bound=Callable[..., Any])

ENABLED = os.environ.get("RODIN_NB_INSTALL_TESTS") == "1"
SKIP_REASON = (
    "builds a fresh virtualenv and pip-installs into it (minutes): runs in CI (.ci/run); "
    "set RODIN_NB_INSTALL_TESTS=1 to run it here"
)

# What a copy of the repository leaves out: local state that a clone does not have.
_NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    "demo_output",
    "rodin_runs",
    "test-artifacts",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
)


def marks(timeout_s: int) -> list[pytest.MarkDecorator]:
    """The marks of an install test (as ``pytestmark`` or through :func:`install_test`)."""
    return [
        pytest.mark.install,
        pytest.mark.skipif(not ENABLED, reason=SKIP_REASON),
        pytest.mark.timeout(timeout_s),
    ]


def install_test(timeout_s: int) -> Callable[[F], F]:
    def mark(test: F) -> F:
        for decorator in marks(timeout_s):
            test = decorator(test)
        return test

    return mark


def copy_repo(dest: Path, parts: Sequence[str] | None = None) -> Path:
    """A copy of the checkout (or of some of its top-level ``parts``) as a clone would have it."""
    dest.mkdir(parents=True)
    for name in parts or [p.name for p in ROOT.iterdir()]:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=_NOT_IN_A_CLONE, symlinks=True)
        elif source.exists() and not _NOT_IN_A_CLONE(str(ROOT), [name]):
            shutil.copy2(source, dest / name)
    return dest


def clean_env(venv: Path, **extra: str) -> dict[str, str]:
    """The environment a user's shell would have with ``venv`` activated: no credentials, no PYTHONPATH
    pointing at the checkout (the venv must use what it installed), no other venv."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "RODIN_NB_HOME", "RODIN_NB_SANDBOX_SPEED")
    env = {
        k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("SCENARIO_", "PYTEST_"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def make_venv(venv: Path) -> Path:
    """A new virtualenv from the Python running the tests; returns its python."""
    run([sys.executable, "-m", "venv", str(venv)])
    return venv / "bin" / "python"


def run(
    command: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure, fail the test with its output (the end of it)."""
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-6000:]
        pytest.fail(f"{' '.join(map(str, command))} exited {done.returncode}:\n{output}", pytrace=False)
    return done
