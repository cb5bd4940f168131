"""Binder: ``binder/`` installs the package and the pinned set, and every notebook runs there (issue 11).

The environment is built in a fresh virtualenv exactly as repo2docker builds it: ``pip install -r
binder/requirements.txt`` from the repository's root, then ``binder/postBuild`` run as a program there;
``pip check`` must pass, and every ``notebooks/*.ipynb`` (whatever notebooks exist when the test runs)
is executed in it with nbclient, with no key (the embedded sandbox), its workspace in a temporary folder
(RODIN_NB_HOME) and its working folder the notebook's own, as Binder opens it (in a temporary copy of
the repository). A few minutes: in CI only (tests/venvs.py). The checks of binder/'s files are quick
and always run.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

from .venvs import ROOT, clean_env, copy_repo, install_test, make_venv, run

BINDER = ROOT / "binder"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", requirement).lower()


def _pins(path: Path, python: str) -> dict[str, str]:
    """``name==version`` lines of a requirements/constraints file that apply on ``python`` ("3.11")."""
    from packaging.requirements import Requirement

    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"python_version": python}):
            continue
        (spec,) = req.specifier
        assert spec.operator == "==", f"{path.name}: {line} is not pinned with =="
        pins[_name(req.name)] = spec.version
    return pins


def _runtime() -> str:
    text = (BINDER / "runtime.txt").read_text().strip()
    assert text.startswith("python-"), text
    return text.removeprefix("python-")


def test_binder_pins_are_the_constraints_and_cover_rodin_nb() -> None:
    tomllib = pytest.importorskip("tomllib")
    python = _runtime()
    binder = _pins(BINDER / "requirements.txt", python)
    constraints = _pins(ROOT / "constraints.txt", python)
    differ = {name: (v, constraints.get(name)) for name, v in binder.items() if constraints.get(name) != v}
    assert not differ, f"binder/requirements.txt vs constraints.txt (Python {python}): {differ}"
    # postBuild installs rodin_nb with --no-deps: everything it needs, notebook extra included, is here.
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    needed = [*project["dependencies"], *extras["notebook"]]
    for requirement in list(needed):
        req = Requirement(requirement)
        if _name(req.name) == "rodin-nb":  # the notebook extra pulls other extras in
            needed.remove(requirement)
            needed += [dep for extra in req.extras for dep in extras[extra]]
    missing = sorted({_name(Requirement(r).name) for r in needed} - set(binder))
    assert not missing, f"binder/requirements.txt lacks {missing}"
    assert "--no-deps -e ." in (BINDER / "postBuild").read_text()
    assert (BINDER / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"


RUNNER = textwrap.dedent(
    """
    import json, sys
    import nbformat
    from nbclient import NotebookClient
    from traitlets.config import Config

    path, workdir = sys.argv[1], sys.argv[2]
    nb = nbformat.read(path, as_version=4)
    config = Config()
    config.KernelManager.transport_encryption = "auto"  # as scripts/run_notebook.py: no TCP warning
    NotebookClient(nb, timeout=600, kernel_name="python3", config=config,
                   resources={"metadata": {"path": workdir}}).execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    print(json.dumps({
        "errors": [f"{o.get('ename')}: {o.get('evalue')}"
                   for o in outputs if o.get("output_type") == "error"],
        "text": "\\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                           for o in outputs),
        "cells": sum(cell.cell_type == "code" for cell in nb.cells),
        "executed": sum(cell.cell_type == "code" and cell.get("execution_count") is not None
                        for cell in nb.cells),
    }))
    """
)


@pytest.fixture(scope="module")
def binder_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(repository copy, venv python) built as repo2docker builds it."""
    python_version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if python_version != _runtime():
        pytest.fail(f"Binder runs Python {_runtime()} (binder/runtime.txt); these tests run {python_version}")
    base = tmp_path_factory.mktemp("binder")
    repo = copy_repo(base / "repo")
    venv = base / "venv"
    python = make_venv(venv)
    env = clean_env(venv)
    run([python, "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], cwd=repo, env=env)
    run([repo / "binder" / "postBuild"], cwd=repo, env=env)
    run([python, "-m", "pip", "check"], cwd=repo, env=env)
    imports = "import rodin_nb, vtkmodules, pyarrow, nbclient, nbconvert, matplotlib, jupyterlab; "
    where = run([python, "-c", imports + "print(rodin_nb.__file__)"], cwd=base, env=env).stdout.strip()
    assert Path(where).is_relative_to(repo), where  # postBuild's editable install of the repository
    return repo, python


@install_test(timeout_s=1500)  # the first one builds the environment (module fixture)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_the_binder_environment(
    binder_env: tuple[Path, Path], notebook: Path, tmp_path: Path
) -> None:
    repo, python = binder_env
    path = repo / "notebooks" / notebook.name
    env = clean_env(python.parent.parent, RODIN_NB_HOME=str(tmp_path / "rodin_runs"))
    done = run([python, "-c", RUNNER, path, path.parent], cwd=path.parent, env=env, timeout=900)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == [], result["errors"]
    assert result["executed"] == result["cells"] > 0
    assert "Traceback" not in result["text"]
    assert "without encryption" not in done.stderr
