"""scripts/run_notebook.py (the demo's notebook step) prints only what it wrote: no kernel chatter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.kernel

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "run_notebook.py"


def test_run_notebook_is_quiet(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source = tmp_path / "tiny.ipynb"
    nbformat.write(nb, source)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(source), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    # The kernel's "running over TCP without encryption" warning went to the terminal in the demo.
    assert "without encryption" not in done.stderr
    assert done.stderr.strip() == "", done.stderr
    assert done.stdout.startswith("wrote ") and (tmp_path / "out" / "tiny.html").is_file()
    executed = nbformat.read(tmp_path / "out" / "tiny.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "42\n"
    assert not list(tmp_path.glob("kernel-*")), "no kernel files left in the working folder"
