"""Every notebook in notebooks/ runs top to bottom in a real kernel on the sandbox (what Binder does), and
shows what its reader relies on: the tables, plots, viewers and files its prose promises.

Each notebook runs in a temporary folder (its ``data/`` copied beside it, as in notebooks/) with a
temporary workspace (``RODIN_NB_HOME``) and a fast embedded sandbox (``RODIN_NB_SANDBOX_SPEED``); the
kernel imports rodin_nb from this checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"


def execute(
    path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    cells: Callable[[list[Any]], list[Any]] | None = None,
) -> Any:
    """Run the notebook (its cells passed through ``cells`` first) as Jupyter would, from ``tmp_path``."""
    monkeypatch.setenv("RODIN_NB_HOME", str(tmp_path / "rodin_runs"))
    monkeypatch.setenv("RODIN_NB_SANDBOX_SPEED", "100")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if (NOTEBOOK_DIR / "data").is_dir():
        shutil.copytree(NOTEBOOK_DIR / "data", tmp_path / "data")
    nb = nbformat.read(path, as_version=4)
    if cells is not None:
        nb.cells = cells(nb.cells)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [out for cell in nb.cells for out in cell.get("outputs", []) if out.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    assert "Traceback" not in text_of(nb)
    return nb


def cell(nb: Any, cell_id: str) -> Any:
    return next(c for c in nb.cells if c.get("id") == cell_id)


def mimes(nb: Any, cell_id: str) -> set[str]:
    """Every MIME type and stream name among the cell's outputs."""
    found: set[str] = set()
    for out in cell(nb, cell_id).outputs:
        found |= set(out.get("data", {})) | ({out.name} if out.output_type == "stream" else set())
    return found


def text_of(nb: Any, cell_id: str | None = None) -> str:
    cells = [cell(nb, cell_id)] if cell_id else nb.cells
    return "\n".join(
        str(out.get("text", ""))
        + "".join(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
        for c in cells
        for out in c.get("outputs", [])
    )


def log_rows(tmp_path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(tmp_path / "rodin_runs" / "runs.sqlite") as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(row) for row in conn.execute("SELECT * FROM runs")]
    conn.close()
    return rows


def new_cell(source: str, cell_id: str, tags: tuple[str, ...] = ()) -> Any:
    c = nbformat.v4.new_code_cell(source)
    c.id = cell_id
    if tags:
        c.metadata["tags"] = list(tags)
    return c


# --- per notebook: what its reader relies on ----------------------------------------------------------


def check_quickstart(nb: Any, tmp_path: Path) -> None:
    assert "embedded sandbox" in text_of(nb, "qs-connect") and "'sandbox'" in text_of(nb, "qs-connect")
    for widget_cell in ("qs-key", "qs-form", "qs-text"):
        assert WIDGET in mimes(nb, widget_cell), widget_cell
    # The viewer: a live widget, and its preview image for pages without widgets.
    for view in ("qs-show", "qs-image"):
        assert {WIDGET, "image/png", "text/html"} <= mimes(nb, view), view
    assert "image/png" in mimes(nb, "qs-picture")
    rows = {row["run_id"]: row for row in log_rows(tmp_path)}
    assert len(rows) == 3 and {row["status"] for row in rows.values()} == {"success"}
    image_runs = [row for row in rows.values() if json.loads(row["params"]).get("images")]
    assert len(image_runs) == 1 and json.loads(image_runs[0]["params"])["images"][0].startswith("asset_")
    # The two runs' rows, as an HTML table with their files' hashes.
    row_html = "".join(out.data.get("text/html", "") for out in cell(nb, "qs-row").outputs)
    assert "<table" in row_html and "sha256" in row_html
    assert sum(run_id in row_html for run_id in rows) == 2
    # After the "restart": resume() re-attached the running job, attach() ended with its file.
    assert "tier='Regular'" in text_of(nb, "qs-resume")
    teapot = next(
        row for row in rows.values() if json.loads(row["params"]).get("prompt") == "a ceramic teapot"
    )
    assert teapot["job_id"] in text_of(nb, "qs-restart") and "status='success'" in text_of(nb, "qs-attach")
    assert len({row["job_id"] for row in rows.values()}) == 3  # nothing submitted twice


def check_sweep(nb: Any, tmp_path: Path) -> None:
    assert "<table" in text_of(nb, "sw-plan")
    assert "would cost" in text_of(nb, "sw-estimate") and "nothing was submitted" in text_of(
        nb, "sw-estimate"
    )
    assert {WIDGET, "text/html"} <= mimes(nb, "sw-run")  # live progress, then the results table
    assert "12/12 done" in text_of(nb, "sw-run")
    assert WIDGET in mimes(nb, "sw-form")
    assert {WIDGET, "image/png"} <= mimes(nb, "sw-grid")
    for table in ("sw-per-tier", "sw-seeds", "sw-diff"):
        assert "<table" in text_of(nb, table), table
    assert "Regular" in text_of(nb, "sw-per-tier")
    for plot in ("sw-plots", "sw-seeds-plot"):
        assert "image/png" in mimes(nb, plot), plot
    rows = log_rows(tmp_path)
    assert len(rows) == 12 and {row["status"] for row in rows} == {"success"}
    qualities = {(json.loads(r["params"])["tier"], json.loads(r["params"])["quality"]) for r in rows}
    assert qualities == {("Sketch", "medium"), *(("Regular", q) for q in ("low", "medium", "high"))}


def check_research(nb: Any, tmp_path: Path) -> None:
    assert cell(nb, "rr-params").metadata.get("tags") == ["parameters"]
    assert "same files (sha256): True" in text_of(nb, "rr-rerun")
    rows = log_rows(tmp_path)
    assert len(rows) == 5  # 2 seeds x 2 tiers, and the forced re-run
    by_hash: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_hash.setdefault(row["params_hash"], []).append(row)
    twins = next(group for group in by_hash.values() if len(group) == 2)
    assert twins[0]["sha256"] == twins[1]["sha256"] and twins[0]["job_id"] != twins[1]["job_id"]
    assert "<table" in text_of(nb, "rr-diff") and "re-run vs first, fields that differ: []" in text_of(
        nb, "rr-diff"
    )
    paper = tmp_path / "paper"
    assert (paper / "runs.csv").read_text(encoding="utf-8").count("\n") == 6  # header + 5 runs
    manifest = json.loads((paper / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["backend"] == "sandbox" and manifest["model_id"] == "model_rodin-hyper3d"
    assert len(manifest["schema"]["sha256"]) == 64 and manifest["run_log"]["runs"] == 5
    assert manifest["packages"]["pandas"] and manifest["packages"]["matplotlib"]
    assert '"schema"' in text_of(nb, "rr-export")
    # The figure: 2 seeds x (2 tiers x 3 angles), 7 inches at 300 dpi, as PNG and PDF.
    assert "image/png" in mimes(nb, "rr-figure")
    with Image.open(paper / "figure.png") as png:
        assert png.size[0] == 2100 and 700 <= png.size[1] <= 900
    assert (paper / "figure.pdf").read_bytes().startswith(b"%PDF")


CHECKS = {
    "01_quickstart": check_quickstart,
    "02_seed_tier_sweep": check_sweep,
    "03_reproducible_research": check_research,
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_shows_what_it_says(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert path.stem in CHECKS, f"{path.name} needs a check of what its reader relies on"
    nb = execute(path, tmp_path, monkeypatch)
    CHECKS[path.stem](nb, tmp_path)


def test_notebooks_are_stored_clean() -> None:
    """Outputs cleared, no execution counts, every cell with an id (kept stable across edits)."""
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for c in nb.cells:
            assert c.get("id"), path.name
            if c.cell_type == "code":
                assert c.outputs == [] and c.execution_count is None, (path.name, c.id)


KEY, SECRET = "sk-test-never-stored-7f3a", "ss-test-never-stored-91c2"

# The typed key reaches the kernel through its environment, so the test cell's own source holds none.
TYPE_A_KEY = """
import os
from rodin_nb.sandbox import serve

typed_key, typed_secret = os.environ.pop("TEST_TYPED_KEY"), os.environ.pop("TEST_TYPED_SECRET")
service = serve(speed=100, credentials=(typed_key, typed_secret))  # stands in for Scenario
os.environ["SCENARIO_BASE_URL"] = service.url
key.value, secret.value = typed_key, "wrong-secret"
connect_button.click()
assert key.value == secret.value == "" and "401" in connected.value, connected.value
key.value, secret.value = typed_key, typed_secret
connect_button.click()
assert key.value == secret.value == "" and "connected to" in connected.value, connected.value
print(repr(client), connected.value)
run = client.generate(prompt="a carved wooden chair", tier="Sketch", seed=7).wait()
print(repr(run), client.log.df.to_string())
"""


def test_quickstart_key_is_used_and_never_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key typed into the quick start's password boxes connects (a wrong one says so), and lands in no
    output, no widget, no saved notebook and no workspace file."""

    def up_to_the_key_box(cells: list[Any]) -> list[Any]:
        index = next(i for i, c in enumerate(cells) if c.get("id") == "qs-key")
        return [*cells[: index + 1], new_cell(TYPE_A_KEY, "typed-key")]

    monkeypatch.setenv("TEST_TYPED_KEY", KEY)
    monkeypatch.setenv("TEST_TYPED_SECRET", SECRET)
    nb = execute(NOTEBOOK_DIR / "01_quickstart.ipynb", tmp_path, monkeypatch, cells=up_to_the_key_box)
    assert "status='success'" in text_of(nb, "typed-key")
    saved = tmp_path / "executed.ipynb"
    nbformat.write(nb, saved)
    places = [saved, *(p for p in (tmp_path / "rodin_runs").rglob("*") if p.is_file())]
    assert any(p.name == "runs.sqlite" for p in places)
    for place in places:
        data = place.read_bytes()
        assert KEY.encode() not in data and SECRET.encode() not in data, place


PARAMETERS = """
prompt = "a ceramic teapot"
seeds = [5]
tiers = ["Regular"]
angles = [30]
figure_width_in = 2.0
figure_dpi = 150
out_dir = "paper_teapot"
"""


def test_research_notebook_reruns_with_papermill_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As papermill does: a cell tagged ``injected-parameters`` right after the ``parameters`` cell."""

    def inject(cells: list[Any]) -> list[Any]:
        index = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
        return [
            *cells[: index + 1],
            new_cell(PARAMETERS, "injected", ("injected-parameters",)),
            *cells[index + 1 :],
        ]

    nb = execute(NOTEBOOK_DIR / "03_reproducible_research.ipynb", tmp_path, monkeypatch, cells=inject)
    assert "same files (sha256): True" in text_of(nb, "rr-rerun")
    rows = log_rows(tmp_path)
    assert {(json.loads(r["params"])["prompt"], r["seed"]) for r in rows} == {("a ceramic teapot", 5)}
    assert len(rows) == 2  # the one run and its forced re-run
    with Image.open(tmp_path / "paper_teapot" / "figure.png") as png:
        assert png.size[0] == 300  # 2 inches at 150 dpi
    assert (tmp_path / "paper_teapot" / "figure.pdf").is_file()
    manifest = json.loads((tmp_path / "paper_teapot" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["run_log"]["runs"] == 2
