"""Exports read offline: every rodin_nb widget output shows its static copy, in a real browser.

A small notebook (one view, a comparison grid, a sandbox sweep's progress, a run's card, the form, the
sweep builder, the log browser) is executed with nbclient and exported

- with plain nbconvert (lab template) holding widget state (``nbconvert --execute``'s default),
- with plain nbconvert without widget state (what JupyterLab's export of a notebook saved without
  state, and GitHub, get),
- with the project's export command (``scripts/run_notebook.py``: widget state and widget JavaScript
  inline, so the 3D views are interactive offline).

Each HTML is opened in Debian's chromium with the network refused. The plain exports must show, for
every 3D output, a decoded preview image next to its statistics, inside its output area and at its left
edge (not pushed to the right, not offset from its title); the progress's final line; a readable
summary of the forms. The export command's page must draw every model in a canvas and hide the static
copies. A JupyterLab session checks the live side: there the static copies are hidden too.
Screenshots land in ``test-artifacts/exports/``.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.browserkit import content_fraction, launch, offline_page, require_browser
from tests.test_browser import lab  # noqa: F401  (the JupyterLab fixture)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "glb"
ARTIFACTS = REPO / "test-artifacts" / "exports"

CELLS = [
    "import rodin_nb as rn\n"
    "client = rn.connect(workspace='ws', sandbox_options={'job_seconds': 2, 'state_dir': None})",
    "rn.show('Duck.glb', width=480, height=360)",
    "rn.compare(['Duck.glb', 'BoxTextured.glb'], width=280, height=220)",
    "sweep = client.sweep(prompt='a ceramic vase', seed=[1, 2], tier='Regular', quality='extra-low')\n"
    "df = sweep.run()",
    "run = client.generate(prompt='a wooden stool', seed=5, tier='Regular', quality='extra-low')\nrun",
    "run.wait(timeout=60);",  # a later cell: the card's static copy is published again with the end
    "rn.GenerateForm(client, tier='Sketch')",
    "rn.SweepForm(client, prompt='a ceramic vase', seed='1-2', tier=['Sketch', 'Regular'],\n"
    "             quality=['extra-low'])",
    "rn.LogBrowser(client.log, client=client)",
]
#: Cells whose output is a 3D model (view, grid, run card) and how many previews each shows.
MODEL_CELLS = {1: 1, 2: 2, 4: 1}


def _notebook(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("Duck.glb", "BoxTextured.glb"):
        shutil.copy(FIXTURES / name, folder / name)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "exports.ipynb"
    nbformat.write(nb, path)
    return path


def _export_command() -> Any:
    spec = importlib.util.spec_from_file_location("run_notebook", REPO / "scripts" / "run_notebook.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The notebook executed and exported three ways: {"state": html, "nostate": html, "command": html}."""
    require_browser()
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    root = tmp_path_factory.mktemp("exports")
    plain = root / "plain"
    source = _notebook(plain)
    nb = nbformat.read(source, as_version=4)
    # As `jupyter nbconvert --execute` does: nbclient with its default store_widget_state=True.
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(plain)}}
    ).execute()
    nbformat.write(nb, plain / "executed.ipynb")
    assert "widgets" in nb.metadata
    out = {"state": plain / "state.html", "nostate": plain / "nostate.html"}
    out["state"].write_text(HTMLExporter(template_name="lab").from_notebook_node(nb)[0], encoding="utf-8")
    config = Config()
    config.ClearMetadataPreprocessor.enabled = (
        True  # = `jupyter nbconvert --ClearMetadataPreprocessor.enabled=True`
    )
    body, _ = HTMLExporter(config=config, template_name="lab").from_notebook_node(nb)
    out["nostate"].write_text(body, encoding="utf-8")

    command = root / "command"
    _notebook(command)
    _notebook(command / "out")  # the kernel runs in the output folder: the GLBs go there too
    _export_command().main(str(command / "exports.ipynb"), str(command / "out"))
    out["command"] = command / "out" / "exports.html"
    return out


def test_saved_outputs_carry_static_copies(exports: dict[str, Path]) -> None:
    """Headless part: in the executed notebook each widget is followed by its static copy, and the
    static copies of the progress and of the card show how they ended (published again later)."""
    nb = nbformat.read(exports["state"].with_name("executed.ipynb"), as_version=4)
    for index in (1, 2, 3, 4, 6, 7, 8):
        statics = [o for o in nb.cells[index].outputs if "text/html" in o.get("data", {})]
        lives = [
            o
            for o in nb.cells[index].outputs
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        ]
        assert len(statics) == 1 and len(lives) == 1, (
            f"cell {index}: {[list(o.get('data', {})) for o in nb.cells[index].outputs]}"
        )
    for index in MODEL_CELLS:
        static = next(o for o in nb.cells[index].outputs if "text/html" in o.get("data", {}))
        assert "image/png" in static["data"] and "data:image/png;base64," in static["data"]["text/html"]
    progress = next(o for o in nb.cells[3].outputs if "text/html" in o.get("data", {}))
    assert "100% 2/2 done" in progress["data"]["text/plain"]
    card = next(o for o in nb.cells[4].outputs if "text/html" in o.get("data", {}))
    assert "status='success'" in card["data"]["text/plain"] and "faces" in card["data"]["text/html"]


def _static_checks(page: Any, name: str) -> None:
    """Every 3D output: a decoded preview beside its stats, inside its output area, at its left edge."""
    cells = page.locator(".jp-Cell")
    assert cells.count() == len(CELLS)
    for index, count in MODEL_CELLS.items():
        area = cells.nth(index).locator(".jp-Cell-outputArea")
        static = area.locator(".rodin-nb-static")
        assert static.count() == 1 and static.is_visible(), f"cell {index}: no visible static copy ({name})"
        static.scroll_into_view_if_needed()
        area.screenshot(path=str(ARTIFACTS / f"{name}-cell{index}.png"))
        box = area.bounding_box()
        images = static.locator("img")
        assert images.count() == count, f"cell {index}: {images.count()} images, expected {count} ({name})"
        text = static.inner_text()
        assert ("triangles" in text) or ("faces" in text), f"cell {index}: no stats ({name}): {text[:200]}"
        for k in range(count):
            img = images.nth(k)
            assert img.is_visible()
            width = img.evaluate("i => i.complete ? i.naturalWidth : 0")
            assert width > 0, f"cell {index}: image {k} not decoded ({name})"
            ib = img.bounding_box()
            assert box is not None and ib is not None
            assert box["x"] <= ib["x"] and ib["x"] + ib["width"] <= box["x"] + box["width"] + 1
            assert box["y"] <= ib["y"] and ib["y"] + ib["height"] <= box["y"] + box["height"] + 1
        first = images.first.bounding_box()
        assert first is not None
        # At the left of the output (a prompt column's width at most), not centred or pushed right.
        assert first["x"] - box["x"] < 120, f"cell {index}: preview pushed right ({name}): {first} in {box}"
        if index == 1:  # the single view: the title sits right above the image, same left edge
            title = static.locator("div", has_text="Duck.glb").first.bounding_box()
            assert (
                title is not None and abs(title["x"] - first["x"]) <= 4 and 0 <= first["y"] - title["y"] < 40
            )
    text = cells.nth(3).inner_text()
    assert "100% 2/2 done" in text, f"no final progress line ({name}): {text[:300]}"
    assert "GenerateForm" in cells.nth(6).inner_text()
    assert "SweepForm:" in cells.nth(7).inner_text()
    assert "LogBrowser" in cells.nth(8).inner_text()


@pytest.mark.parametrize("which", ["state", "nostate"])
def test_plain_nbconvert_offline_shows_static_copies(exports: dict[str, Path], which: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with launch() as browser:
        page, refused = offline_page(browser, exports[which])
        page.wait_for_timeout(1500)  # the CDN scripts fail; nothing else to wait for
        page.screenshot(path=str(ARTIFACTS / f"nbconvert-{which}.png"), full_page=True)
        if which == "state":
            assert any("html-manager" in url for url in refused)  # the widget JS is the CDN's
        _static_checks(page, f"nbconvert-{which}")


def test_export_command_is_interactive_offline(exports: dict[str, Path]) -> None:
    """The project's export command: widgets render offline (every model drawn), static copies hidden.
    Without the widget JavaScript (no cache, no network) it writes the static copies instead."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    html = exports["command"].read_text(encoding="utf-8")
    with launch() as browser:
        page, _ = offline_page(browser, exports["command"], height=1000)
        if 'define("jupyter-threejs"' not in html:  # the JS was not available: static copies
            page.screenshot(path=str(ARTIFACTS / "command-static.png"), full_page=True)
            _static_checks(page, "command-static")
            return
        canvases = page.locator(".jupyter-widgets canvas")
        deadline = time.monotonic() + 90
        while canvases.count() < 4 and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        assert canvases.count() == 4, f"{canvases.count()} canvases (view 1, grid 2, card 1)"
        for index in range(4):
            canvas = canvases.nth(index)
            canvas.scroll_into_view_if_needed()
            limit = time.monotonic() + 30
            while True:
                shot = canvas.screenshot()
                if content_fraction(shot)[0] > 0.05 or time.monotonic() > limit:
                    break
                page.wait_for_timeout(300)
            (ARTIFACTS / f"command-canvas-{index}.png").write_bytes(shot)
            assert content_fraction(shot)[0] > 0.05, f"canvas {index} is blank"
        page.screenshot(path=str(ARTIFACTS / "command.png"), full_page=True)
        statics = page.locator(".rodin-nb-static")
        assert statics.count() >= 7
        assert not any(statics.nth(i).is_visible() for i in range(statics.count()))
        assert "100% 2/2 done" in page.locator(".jp-Cell").nth(3).inner_text()
        assert page.get_by_text("Error displaying widget").count() == 0


def test_static_copies_hidden_in_jupyterlab(lab: tuple[str, Path]) -> None:  # noqa: F811
    """Live, the widget renders and its static copy (and that output's area) is hidden."""
    from tests.test_browser import _open_and_run_all

    url, _root = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with launch() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        _open_and_run_all(page, url, "viewer.ipynb")
        canvases = page.locator(".jupyter-widget canvas")
        deadline = time.monotonic() + 90
        while canvases.count() < 5 and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        assert canvases.count() == 5
        statics = page.locator(".rodin-nb-static")
        deadline = time.monotonic() + 30
        while statics.count() < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        assert statics.count() == 2  # the view's and the grid's
        page.screenshot(path=str(ARTIFACTS / "lab.png"), full_page=True)
        assert not any(statics.nth(i).is_visible() for i in range(statics.count()))
        children = page.locator(".jp-OutputArea-child:has(.rodin-nb-static)")
        assert all(not children.nth(i).is_visible() for i in range(children.count()))
