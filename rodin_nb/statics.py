"""Static companions: what a rodin_nb widget shows where no widget front end runs.

In a Jupyter kernel every rodin_nb widget (a 3D view or grid, a run's card, sweep progress, the forms,
the log browser) is displayed as **two outputs**:

1. the live widget (``application/vnd.jupyter.widget-view+json``, with an empty ``text/plain``);
2. its *static companion*: ``text/html`` (preview images, statistics, the progress's line, ...), often
   ``image/png`` too, and ``text/plain``, published with a display id.

Why two: nbconvert's HTML exporter picks one MIME type per output. When the notebook holds widget state
(``nbconvert --execute``, nbclient's default ``store_widget_state=True``) it picks the widget view, which
needs the widget JavaScript from a CDN and is an empty box offline; the ``text/html`` beside it in the
same output is never written. A separate output is always written, with or without widget state, by
JupyterLab's export and by GitHub (which keeps ``<img src="data:...">`` and tables, strips styles and
scripts). When the widget does render (JupyterLab, Notebook 7, VS Code, an export that loads the widget
JavaScript), the companion must not show twice: the live output carries a hidden ``<style>`` (inside an
``ipywidgets.HTML``, so it exists only where the widget renders) that hides the companion, and its
output area, by a class unique to the display. Nothing to hide where widgets do not run.

A companion that follows something still changing (a run, a sweep) is refreshed after every cell from
the kernel's main thread (an IPython ``post_run_cell`` hook) until it is final, and by :func:`settle`,
which ``scripts/run_notebook.py`` runs after the last cell: background threads never publish displays
(nbclient only records messages whose parent is the cell running, and a thread's parent is unknown).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["Companion", "display_with_static", "refresh", "settle"]

log = logging.getLogger(__name__)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

_FOLLOWED: list[Companion] = []  # companions still changing (refreshed after each cell until final)
_LOCK = threading.Lock()
_HOOKED = False


class Companion:
    """A static copy of one widget display: ``static()`` gives its bundle (``text/html`` at least),
    ``final()`` says when it will not change any more (default: at once)."""

    def __init__(self, static: Callable[[], dict[str, Any]], final: Callable[[], bool] | None = None) -> None:
        self.token = "rodin-nb-static-" + uuid.uuid4().hex[:12]
        self._static = static
        self._final = final or (lambda: True)
        self._published: dict[str, Any] | None = None

    @property
    def final(self) -> bool:
        return bool(self._final())

    def bundle(self) -> dict[str, Any]:
        """The companion's MIME bundle, its HTML wrapped in a block of class ``token``."""
        data = dict(self._static())
        inner = data.get("text/html", "")
        data["text/html"] = f'<div class="rodin-nb-static {self.token}" style="text-align:left">{inner}</div>'
        data.setdefault("text/plain", "")
        return data

    def hider_css(self) -> str:
        """CSS that hides this companion (and its output area: no empty gap) where the widget renders."""
        t = self.token
        return (
            f".{t}{{display:none!important}}"
            f".jp-OutputArea-child:has(.{t}),.output_area:has(.{t}){{display:none!important}}"
        )

    def publish(self) -> None:
        from IPython.display import display

        self._published = self.bundle()
        display(self._published, raw=True, display_id=self.token)

    def refresh(self) -> bool:
        """Publish the current static copy again if it changed (main thread only); True if it did."""
        from IPython.display import update_display

        data = self.bundle()
        if data == self._published:
            return False
        self._published = data
        update_display(data, raw=True, display_id=self.token)
        return True


def live_bundle(widget: Any, companion: Companion) -> dict[str, Any]:
    """The widget's own output: its view inside a box whose hidden ``<style>`` hides the companion."""
    import ipywidgets as widgets

    hider = widgets.HTML(f"<style>{companion.hider_css()}</style>", layout=widgets.Layout(display="none"))
    box = widgets.VBox([hider, widget], layout=widgets.Layout(margin="0", padding="0"))
    data = box._repr_mimebundle_()
    return {WIDGET_VIEW: data[WIDGET_VIEW], "text/plain": ""}


def display_with_static(
    widget: Any,
    static: Callable[[], dict[str, Any]],
    *,
    final: Callable[[], bool] | None = None,
) -> Companion:
    """Display ``widget`` and its static companion (two outputs; see the module's docstring).

    ``static`` returns the companion's bundle; with ``final``, the companion is refreshed after each
    cell until ``final()`` is true.
    """
    from IPython.display import display

    companion = Companion(static, final)
    display(live_bundle(widget, companion), raw=True)
    companion.publish()
    if not companion.final:
        follow(companion)
    return companion


def follow(companion: Companion) -> None:
    with _LOCK:
        _FOLLOWED.append(companion)
    _hook()


def _hook() -> None:
    global _HOOKED
    if _HOOKED:
        return
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return
    shell = get_ipython()
    if shell is None:
        return
    shell.events.register("post_run_cell", _after_cell)
    _HOOKED = True


def _after_cell(*_: Any) -> None:
    try:
        refresh()
    except Exception:  # a hook must never break the user's cell; the live widget is still right
        log.debug("refreshing static companions failed", exc_info=True)


def refresh() -> int:
    """Publish every followed companion that changed; stop following the final ones. Returns how many
    were published. Call from the kernel's main thread (a cell, a hook)."""
    with _LOCK:
        followed = list(_FOLLOWED)
    published = 0
    done = []
    for companion in followed:
        final = companion.final  # read before the bundle: a final bundle is the last word
        if companion.refresh():
            published += 1
        if final:
            done.append(companion)
    with _LOCK:
        for companion in done:
            if companion in _FOLLOWED:
                _FOLLOWED.remove(companion)
    return published


def settle(timeout: float = 300.0, poll: float = 0.2) -> int:
    """Wait (up to ``timeout`` seconds) until every followed companion is final, then refresh them.

    ``scripts/run_notebook.py`` runs this after the notebook's last cell, so a run still going when its
    card was shown is saved as it ended.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _LOCK:
            pending = [c for c in _FOLLOWED if not c.final]
        if not pending:
            break
        time.sleep(poll)
    return refresh()


def show(
    widget: Any,
    static: Callable[[], dict[str, Any]] | None,
    *,
    fallback: Callable[[], Any],
    final: Callable[[], bool] | None = None,
) -> Companion | None:
    """What an ``_ipython_display_`` does: in a Jupyter kernel, the widget and its static companion;
    elsewhere (a terminal IPython) or without a static copy, ``fallback()``'s bundle as one output."""
    from IPython.display import display

    from .progress import in_notebook

    if static is not None and in_notebook():
        return display_with_static(widget, static, final=final)
    data = fallback()
    if isinstance(data, dict):
        display(data, raw=True)
    return None
