"""`pip install rodin_nb` with no extras, as a user does, gives the notebook toolkit (issue 11).

A fresh virtualenv, a plain (non-editable) install of the package from a copy of the checkout, pinned
by constraints.txt; then a script, run by that venv's python with no key, generates one run on the
embedded sandbox, reads ``client.log.df``, builds ``rn.GenerateForm(client)`` and a viewer, and checks
that the extras stayed out (and that a missing one is named in a one-line hint). About 30 s with a warm
pip cache; in CI only (tests/venvs.py).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from .venvs import ROOT, clean_env, copy_repo, make_venv, marks, run

pytestmark = marks(timeout_s=600)

PROBE = textwrap.dedent(
    """
    import importlib.util, json, warnings
    warnings.simplefilter("error", ResourceWarning)
    import rodin_nb as rn

    client = rn.connect(sandbox_options={"job_seconds": 0.2})
    run = client.generate(prompt="a carved wooden chair", tier="Sketch", quality="medium", seed=7)
    run.wait(timeout=120)
    df = client.log.df
    form = rn.GenerateForm(client)
    view = run.show()
    try:
        client.log.export("runs.parquet")
        parquet = "exported"
    except ImportError as exc:
        parquet = str(exc)
    client.close()
    print(json.dumps({
        "status": run.status,
        "glb": run.glb.is_file(),
        "rows": len(df),
        "row_status": str(df.iloc[0]["status"]),
        "form": type(form).__name__,
        "view": type(view).__name__,
        "parquet": parquet,
        "absent": [m for m in ("vtkmodules", "pyarrow", "nbclient", "nbconvert", "pytest")
                   if importlib.util.find_spec(m) is None],
    }))
    """
)


def test_plain_pip_install_gives_the_notebook_toolkit(tmp_path: Path) -> None:
    source = copy_repo(tmp_path / "src", ["pyproject.toml", "README.md", "rodin_nb"])
    python = make_venv(tmp_path / "venv")
    env = clean_env(tmp_path / "venv", RODIN_NB_HOME=str(tmp_path / "work" / "rodin_runs"))
    run(
        [python, "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt", source],
        env=env,
        cwd=tmp_path,
    )
    run([python, "-m", "pip", "check"], env=env)
    (tmp_path / "work").mkdir()
    done = run([python, "-c", PROBE], cwd=tmp_path / "work", env=env, timeout=300)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "success" and result["glb"]
    assert result["rows"] == 1 and result["row_status"] == "success"
    assert result["form"] == "GenerateForm" and result["view"]
    assert result["parquet"] == (
        "Parquet export needs pyarrow, which is not installed: pip install 'rodin_nb[parquet]'"
    )
    assert result["absent"] == ["vtkmodules", "pyarrow", "nbclient", "nbconvert", "pytest"]
    # The sandbox notice, and nothing else: no tracebacks from a missing optional module.
    assert "Traceback" not in done.stderr and "falling back" not in done.stderr, done.stderr
    help_text = run([tmp_path / "venv" / "bin" / "rodin-nb", "--help"], env=env).stdout
    assert "sweep" in help_text
