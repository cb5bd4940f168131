"""The notebooks in notebooks/ in a real browser: JupyterLab 4 and Notebook 7, then a plain export offline.

One Jupyter server (``jupyterlab``; with the ``notebook`` package installed it serves Notebook 7 at
``/notebooks/...`` too) serves a temporary root with a copy of the notebooks and their ``data/`` for
each front end. Each front end's kernels run on a fast embedded sandbox (``RODIN_NB_SANDBOX_SPEED``)
with their own workspace (``RODIN_NB_HOME``), through a kernelspec of their own. For each notebook and
front end the test opens the notebook, clicks Run > Run All Cells as a user does, waits until every
cell has run and the kernel is idle, and checks what the reader sees:

- every viewer canvas shows a model (pixels unlike its background near the centre), and each notebook
  has the number of 3D views it is written to show (03 has none: its figure is a matplotlib image);
- every image in the outputs (plots, the picture, the figure) is decoded;
- no "Error displaying widget", no Python traceback in any output;
- no console error beyond ``tests.test_browser.KNOWN_HARMLESS`` (each listed with its reason).

Live views per page stay well under chromium's ~16 WebGL contexts (01 has 4, 02's grid pages at 6) and
each notebook gets a page of its own.

Then each notebook is executed with nbclient (as ``tests/test_notebooks.py`` does, widget state stored,
nbclient's default), exported with plain nbconvert (HTMLExporter, lab template) and opened in chromium
with the network refused: every 3D output (an output whose widget holds a pythreejs renderer) must show
its static copy with decoded, visible preview images, at least one per renderer.

Screenshots (whole notebooks, each canvas, each export) are kept in ``test-artifacts/browser-notebooks/``.
Same requirements and skip rules as ``tests/test_browser.py`` (``RODIN_NB_REQUIRE_BROWSER=1`` makes a
missing chromium a failure).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.browserkit import content_fraction, launch, offline_page, require_browser
from tests.test_browser import KNOWN_HARMLESS, _drawn, _free_port

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
ARTIFACTS = REPO / "test-artifacts" / "browser-notebooks"
NOTEBOOKS = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

#: Front ends: the URL a notebook opens at. Both are served by the one JupyterLab server.
FRONT_ENDS = {"lab": "/lab/tree/{name}?reset", "notebook7": "/notebooks/{name}"}

#: Live 3D views (canvases) each notebook shows once run: 01 the two runs' cards, the text run's and the
#: image run's views; 02 the comparison grid's first page (12 runs, 6 per page); 03 none (its figure is
#: a matplotlib image).
CANVASES = {"01_quickstart": 4, "02_seed_tier_sweep": 6, "03_reproducible_research": 0}
#: Outputs holding a 3D view (a pythreejs renderer), as saved by nbclient and exported by nbconvert.
MODEL_OUTPUTS = {"01_quickstart": 4, "02_seed_tier_sweep": 1, "03_reproducible_research": 0}

STDERR = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One Jupyter server on 127.0.0.1 (JupyterLab, and Notebook 7 if installed): ``(url, root)``.

    ``root/<front end>/`` holds copies of the notebooks and ``data/``; kernelspec ``rodin-<front end>``
    gives that front end's kernels their workspace, the fast sandbox and this checkout's rodin_nb.
    """
    require_browser()
    try:
        import notebook
    except ImportError:  # the `test` extra installs it
        notebook = None
    if notebook is None or int(notebook.__version__.split(".")[0]) < 7:
        message = "Notebook 7 is not installed: pip install 'notebook>=7' (the test extra has it)"
        if os.environ.get("RODIN_NB_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("jupyter")
    pythonpath = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for front in FRONT_ENDS:
        folder = root / front
        shutil.copytree(NOTEBOOK_DIR, folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        kernel = root / ".jupyter-path" / "kernels" / f"rodin-{front}"
        kernel.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python 3 (rodin_nb tests, {front})",
            "language": "python",
            "env": {
                "RODIN_NB_HOME": str(root / "workspaces" / front),
                "RODIN_NB_SANDBOX_SPEED": "100",
                "PYTHONPATH": pythonpath,
            },
        }
        (kernel / "kernel.json").write_text(json.dumps(spec))
        for path in folder.glob("*.ipynb"):
            nb = nbformat.read(path, as_version=4)
            nb.metadata["kernelspec"] = {"name": f"rodin-{front}", "display_name": spec["display_name"],
                                         "language": "python"}  # fmt: skip
            nbformat.write(nb, path)
    # Lab and Notebook 7 read the same user settings (JUPYTERLAB_SETTINGS_DIR).
    settings = root / ".settings" / "@jupyterlab"
    (settings / "apputils-extension").mkdir(parents=True)
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    # Every cell stays in the page (no windowing): outputs below the fold can be found and screenshot.
    (settings / "notebook-extension").mkdir(parents=True)
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"})
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(root / ".config"),
        "JUPYTER_PATH": os.pathsep.join([str(root / ".jupyter-path"), os.environ.get("JUPYTER_PATH", "")]),
        "JUPYTERLAB_SETTINGS_DIR": str(root / ".settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces"),
        "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
        "IPYTHONDIR": str(root / ".ipython"),
        "PYTHONPATH": pythonpath,
    }
    port = _free_port()
    log_path = root / "jupyter.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
            # Loopback, no auth: lets the test shut kernels down with a plain DELETE between notebooks.
            "--ServerApp.disable_check_xsrf=True",
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Jupyter exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url + "/api/status", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("Jupyter did not start within 60 s") from None
                time.sleep(0.2)
        yield url, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, ARTIFACTS / "jupyter.log")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_browser()
    with launch() as b:
        yield b


def _api(url: str, path: str, method: str = "GET") -> Any:
    with urllib.request.urlopen(urllib.request.Request(url + path, method=method), timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


def _clean_up(url: str) -> None:
    """End every session (and its kernel: the next notebook gets both cores) and forget Lab's saved
    workspaces (Notebook 7 reads them too, see KNOWN_HARMLESS): each page starts as a first visit."""
    for session in _api(url, "/api/sessions"):
        _api(url, f"/api/sessions/{session['id']}", "DELETE")
    for workspace in _api(url, "/lab/api/workspaces")["workspaces"]["ids"]:
        _api(url, f"/lab/api/workspaces/{workspace}", "DELETE")


def _session_idle(url: str, path: str) -> bool:
    sessions = [s for s in _api(url, "/api/sessions") if s["path"] == path]
    return len(sessions) == 1 and sessions[0]["kernel"]["execution_state"] == "idle"


def _full_screenshot(page: Any, path: Path) -> None:
    """The whole notebook in one image: both front ends scroll inside a panel, so the viewport is made
    as tall as the notebook for the shot, then put back."""
    viewport = page.viewport_size
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('.jp-WindowedPanel-outer, .jp-Notebook')]"
        ".map(e => e.scrollHeight), 0)"
    )
    page.set_viewport_size({"width": viewport["width"], "height": min(max(height + 200, 1000), 16000)})
    page.evaluate("() => document.querySelectorAll('.jp-WindowedPanel-outer').forEach(e => e.scrollTo(0, 0))")
    page.wait_for_timeout(500)  # layout, and the canvases draw at their new place
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(viewport)


def _console_line(message: Any) -> str:
    """A console error with where it came from ("Failed to load resource" names no URL by itself)."""
    where = urllib.parse.urlsplit(message.location.get("url", "")).path
    return f"{message.text} ({where})" if where else message.text


def _first_frame(stack: str | None) -> str:
    """The script a page error was thrown from, as a path (``/static/notebook/notebook_core...js``)."""
    match = re.search(r"https?://[^/]+(/[^\s?:)]+)", stack or "")
    return match.group(1) if match else "?"


def _fail(page: Any, shot: Path, message: str) -> None:
    page.screenshot(path=str(shot), full_page=True)
    raise AssertionError(message)


@pytest.mark.parametrize("front", list(FRONT_ENDS))
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_the_browser(server: tuple[str, Path], browser: Any, front: str, name: str) -> None:
    """Open, Run All Cells, and every view shows its model; no widget error, traceback or console error."""
    assert name in CANVASES, f"{name}: say how many 3D views it shows (CANVASES, MODEL_OUTPUTS)"
    url, _root = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stem = f"{front}-{name}"
    console: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("console", lambda m: console.append(_console_line(m)) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(f"pageerror: {e} at {_first_frame(e.stack)}"))
    try:
        started = time.monotonic()
        page.goto(url + FRONT_ENDS[front].format(name=f"{front}/{name}.ipynb"), timeout=60_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        notebook_path = f"{front}/{name}.ipynb"
        deadline = time.monotonic() + 60
        while not _session_idle(url, notebook_path):
            if time.monotonic() > deadline:
                _fail(page, ARTIFACTS / f"{stem}-timeout.png", "the kernel did not start within 60 s")
            page.wait_for_timeout(200)
        code_cells = sum(
            c.cell_type == "code" for c in nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", 4).cells
        )
        prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
        assert prompts.count() == code_cells, (
            f"{prompts.count()} code cells in the page, {code_cells} in the file"
        )
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run All Cells", exact=True).click()

        # Every cell has run (numbered prompts, none queued "[*]") and the kernel is idle.
        deadline = time.monotonic() + 150
        while True:
            texts = prompts.all_inner_texts()
            if all(re.fullmatch(r"\[\d+\]:", t.strip()) for t in texts) and _session_idle(url, notebook_path):
                break
            if page.get_by_text("Error displaying widget").count():
                _fail(page, ARTIFACTS / f"{stem}-error.png", "Error displaying widget")
            tracebacks = [t[:800] for t in page.locator(STDERR).all_inner_texts() if "Traceback" in t]
            if tracebacks:  # Run All stops at an error: the cells after it never run
                _fail(page, ARTIFACTS / f"{stem}-error.png", f"a cell failed: {tracebacks}")
            if time.monotonic() > deadline:
                _fail(page, ARTIFACTS / f"{stem}-timeout.png", f"cells did not all run: {texts}; {console}")
            page.wait_for_timeout(250)
        ran = time.monotonic() - started

        # The live views: as many canvases as the notebook shows 3D views (run cards fill in after the
        # cell), each inside a widget, each drawing its model (textures arrive asynchronously: poll).
        canvases = page.locator(".jp-OutputArea-output canvas")
        deadline = time.monotonic() + 60
        while canvases.count() < CANVASES[name] and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        assert canvases.count() == CANVASES[name], f"{canvases.count()} canvases, expected {CANVASES[name]}"
        assert page.locator(".jp-OutputArea-output .jupyter-widgets canvas").count() == CANVASES[name]
        fractions = []
        for index in range(canvases.count()):
            shot = _drawn(canvases.nth(index))
            (ARTIFACTS / f"{stem}-canvas-{index}.png").write_bytes(shot)
            fractions.append(round(content_fraction(shot)[0], 3))
        # Every image in the outputs (plots, the picture, the figure) is decoded.
        images = page.locator(".jp-OutputArea-output img")
        undecoded = [
            i
            for i in range(images.count())
            if not images.nth(i).evaluate("i => i.complete && i.naturalWidth > 0")
        ]
        _full_screenshot(page, ARTIFACTS / f"{stem}.png")

        assert all(f > 0.05 for f in fractions), f"blank canvases: {fractions}"
        assert not undecoded, f"images not decoded: {undecoded} of {images.count()}"
        assert page.get_by_text("Error displaying widget").count() == 0
        tracebacks = [t[:500] for t in page.locator(STDERR).all_inner_texts() if "Traceback" in t]
        assert not tracebacks, f"tracebacks in the outputs: {tracebacks}"
        print(f"{stem}: ran in {ran:.1f} s, {len(fractions)} canvases {fractions}, {images.count()} images")
    finally:
        page.close()
        _clean_up(url)
    (ARTIFACTS / f"{stem}-console.txt").write_text("\n".join(console))
    unexpected = [m for m in console if not any(known in m for known in KNOWN_HARMLESS)]
    assert not unexpected, f"console errors: {unexpected}"


# --- plain nbconvert, offline --------------------------------------------------------------------------


def _model_outputs(nb: Any) -> list[tuple[int, int]]:
    """``(cell index, renderers)`` for each output whose widget holds pythreejs renderers (a 3D view)."""
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]

    def reachable(model_id: str, seen: set[str]) -> set[str]:
        if model_id in state and model_id not in seen:
            seen.add(model_id)
            for ref in re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state[model_id]["state"])):
                reachable(ref, seen)
        return seen

    found = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view:
                models = reachable(view["model_id"], set())
                renderers = sum(state[m]["model_name"] == "RendererModel" for m in models)
                if renderers:
                    found.append((index, renderers))
    return found


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[tuple[int, int]]]]:
    """Each notebook executed with nbclient (widget state stored) and exported by plain nbconvert:
    ``{name: (html, model outputs)}``."""
    require_browser()
    from nbconvert import HTMLExporter

    from tests.test_notebooks import execute

    root = tmp_path_factory.mktemp("nbconvert")
    out = {}
    for name in NOTEBOOKS:
        folder = root / name
        folder.mkdir()
        with pytest.MonkeyPatch.context() as mp:
            nb = execute(NOTEBOOK_DIR / f"{name}.ipynb", folder, mp)
        assert WIDGET_STATE in nb.metadata.get("widgets", {}), f"{name}: no widget state stored"
        html = folder / f"{name}.html"
        # = `jupyter nbconvert --to html` (the lab template is its default)
        html.write_text(HTMLExporter(template_name="lab").from_notebook_node(nb)[0], encoding="utf-8")
        out[name] = (html, _model_outputs(nb))
    return out


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_plain_nbconvert_export_offline_shows_every_model(
    exports: dict[str, tuple[Path, list[tuple[int, int]]]], browser: Any, name: str
) -> None:
    html, models = exports[name]
    assert len(models) == MODEL_OUTPUTS[name], f"{name}: 3D outputs {models}, expected {MODEL_OUTPUTS[name]}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page, refused = offline_page(browser, html)
    try:
        page.wait_for_timeout(1000)  # the CDN's widget scripts fail; nothing else to wait for
        _full_screenshot(page, ARTIFACTS / f"nbconvert-{name}.png")
        cells = page.locator(".jp-Cell")
        nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", 4)
        assert cells.count() == len(nb.cells)
        for index, renderers in models:
            area = cells.nth(index).locator(".jp-Cell-outputArea")
            static = area.locator(".rodin-nb-static")
            assert static.count() == 1 and static.is_visible(), f"cell {index}: no visible static copy"
            static.scroll_into_view_if_needed()
            area.screenshot(path=str(ARTIFACTS / f"nbconvert-{name}-cell{index}.png"))
            images = static.locator("img")
            assert images.count() >= renderers, f"cell {index}: {images.count()} images for {renderers} views"
            for k in range(images.count()):
                img = images.nth(k)
                assert img.is_visible(), f"cell {index}: image {k} hidden"
                assert img.evaluate("i => i.complete && i.naturalWidth > 0"), (
                    f"cell {index}: image {k} not decoded"
                )
        assert page.get_by_text("Traceback").count() == 0
    finally:
        page.close()
    if models:
        assert any("html-manager" in u for u in refused)  # the widget JS would come from the CDN
