"""``RunCard``: one run as a live widget (status words, a progress bar, errors, then the 3D model).

A ``Run`` shown as a cell's output is a card (``Run._repr_mimebundle_``), and the form's result area is
one. The card follows the run through ``run.on_change``: listeners run on the engine thread, so the
card only ever sets widget traits and Box children there (ipykernel sends those comm messages safely
from any thread); it never prints and never calls ``display()``.

The 3D view is built once, when the run has its files: on the engine thread if the run ends while the
card is shown, on the caller's thread if the card is made for a finished run. Building pythreejs widgets
on the engine thread opens their comms from that thread too, which ipykernel allows (its iopub socket is
thread-safe); outside a kernel the widgets get dummy comms. It takes ~0.05 s for a large mesh, so the
engine is held up only briefly. If no view can be built (pythreejs missing, an unreadable file) the card
shows the preview image and mesh statistics instead.
"""

from __future__ import annotations

import base64
import html
import threading
from typing import TYPE_CHECKING, Any

from .reprs import mesh_line, run_html
from .status import TERMINAL, describe

if TYPE_CHECKING:
    import ipywidgets as widgets

    from .jobs import Run

__all__ = ["RunCard"]

# The bar's colour by how the run ended; running states keep the default blue.
_BAR_STYLES = {"success": "success", "failure": "danger", "lost": "danger", "not-submitted": "warning"}
_GREY = "color:#57606a;font-size:12px"


class RunCard:
    """A live card for one run: title, status in words, progress bar with percentage, error and hint,
    and, once the files are in, the 3D view (``run.show()``) or the preview image with mesh stats.

    Attributes
    ----------
    run : the run followed.
    widget : the card (an ``ipywidgets.VBox``).
    bar, percent, status, error, result : its parts (``result`` holds the view once built).
    result_view : the 3D view, or the preview ``Image`` when no view could be built; None before.
    """

    def __init__(self, run: Run, *, view: bool = True) -> None:
        import ipywidgets as widgets

        self.run = run
        self._want_view = view
        self._lock = threading.RLock()  # the engine thread and the caller's thread both refresh
        self._closed = False
        self._result_started = False
        self.result_view: Any = None
        self.companion: Any = None  # the static copy shown with the card (rodin_nb.statics)
        self.title = widgets.HTML(self._title_html())
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="320px"))
        self.percent = widgets.Label(value="0%", layout=widgets.Layout(width="48px"))
        self.status = widgets.HTML()
        self.error = widgets.HTML(layout=widgets.Layout(display="none"))
        self.result = widgets.Box(layout=widgets.Layout(flex_flow="column"))
        self.widget: widgets.VBox = widgets.VBox(
            [self.title, widgets.HBox([self.bar, self.percent, self.status]), self.error, self.result]
        )
        run.on_change(self._changed)
        self.refresh()

    # --- following the run ---------------------------------------------------------------------------

    def _changed(self, _: Run) -> None:
        """Called on the engine thread after every change of the run: sets traits only."""
        self.refresh()

    def close(self) -> None:
        """Stop following the run (a form's card replaced by a newer run's); the widgets stay as they are."""
        with self._lock:
            self._closed = True

    def refresh(self) -> None:
        """Show the run's current state (and build the result once it has its files)."""
        with self._lock:
            if self._closed:
                return
            run = self.run
            self.title.value = self._title_html()
            self.bar.value = float(run.progress)
            self.bar.bar_style = _BAR_STYLES.get(run.status, "")
            self.percent.value = f"{run.progress:.0%}"
            self.status.value = self._status_html()
            error = self._error_html()
            self.error.value = error
            self.error.layout.display = "" if error else "none"
            build = run.done and run.status == "success" and not self._result_started
            if build:
                self._result_started = True
        if build:
            # Outside the lock: a listener call that arrives meanwhile must not wait on the build.
            self._show_result()

    def _title_html(self) -> str:
        run = self.run
        params = run.params
        what = params.get("prompt") or (f"{len(params.get('images') or [])} image(s)")
        details = " · ".join(
            f"{key}={params[key]}" for key in ("tier", "quality", "seed") if params.get(key) is not None
        )
        cost = f" · {run.cost:g} CU" if run.cost is not None else ""
        title = html.escape(_shorten(str(what), 80))
        return (
            f"<b>{title}</b> <span style='{_GREY}'>{html.escape(details)}{cost} · "
            f"<code>{html.escape(run.run_id)}</code></span>"
        )

    def _status_html(self) -> str:
        run = self.run
        words = describe(run.status)
        if run.status == "downloading" and run.download_error:
            words = "files not downloaded"
        elif run.status == "success" and not run.done:
            words = "succeeded, checking files"
        return f"<span title='{html.escape(run.status)}'>{html.escape(words)}</span>"

    def _error_html(self) -> str:
        run = self.run
        if run.download_error:
            return (
                f"<span style='color:#cf222e'>{html.escape(run.download_error)}</span><br>"
                f"<span style='{_GREY}'>the job succeeded (it is paid); client.download(run) or "
                "client.resume() fetches the files again</span>"
            )
        if not run.error or run.status not in TERMINAL:
            return ""
        hint = f"<br><span style='{_GREY}'>hint: {html.escape(run.hint)}</span>" if run.hint else ""
        return f"<span style='color:#cf222e'>{html.escape(run.error)}</span>{hint}"

    # --- the result ----------------------------------------------------------------------------------

    def _show_result(self) -> None:
        """The 3D view, or the preview image and stats when no view can be built."""
        import ipywidgets as widgets

        run = self.run
        parts: list[widgets.Widget] = []
        problem = ""
        if self._want_view:
            try:
                # static=False: the card's own text/html is the static fallback; inside the card the
                # view's is never used, and rendering an offline preview for it would be wasted work.
                view = run.show(static=False)
            except Exception as exc:  # the viewer is optional here: fall back to the preview image
                problem = f"no 3D view: {exc}"
            else:
                self.result_view = view
                parts.append(view)
        if not parts:
            if run.preview is not None and run.preview.is_file():
                image = widgets.Image(value=run.preview.read_bytes(), format="png", width=256, height=256)
                self.result_view = image
                parts.append(image)
            line = " · ".join(x for x in (mesh_line(run), str(run.glb or ""), problem) if x)
            parts.append(widgets.HTML(f"<span style='{_GREY}'>{html.escape(line)}</span>"))
        with self._lock:
            if not self._closed:
                self.result.children = tuple(parts)

    # --- display -------------------------------------------------------------------------------------

    def static_html(self) -> str:
        """The card for pages without a widget front end (nbconvert HTML, GitHub): preview + stats."""
        return run_html(self.run, thumb=160)

    def static_bundle(self) -> dict[str, Any]:
        """The run as HTML (preview, status, parameters, mesh stats), its preview PNG and its repr."""
        data: dict[str, Any] = {"text/plain": repr(self.run), "text/html": self.static_html()}
        preview = self.run.preview
        if preview is not None and preview.is_file():
            data["image/png"] = base64.b64encode(preview.read_bytes()).decode("ascii")
        return data

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live widget, plus the run as text and HTML, in one output (IPython in a kernel uses
        ``_ipython_display_`` instead: the widget and a separate static output).

        The static parts describe the run when it was displayed; the widget keeps following it.
        """
        data = self.widget._repr_mimebundle_(**kwargs)
        if not isinstance(data, dict):
            return data
        data["text/plain"] = repr(self.run)
        data["text/html"] = self.static_html()
        return data

    def _ipython_display_(self) -> None:
        """The live card and its static copy (:mod:`rodin_nb.statics`). The copy shows the run as it
        is now and is published again, from the kernel's main thread, after each later cell until the
        run has ended (and by ``scripts/run_notebook.py`` after the last cell), so a saved notebook
        shows how the run ended."""
        from .statics import show

        self.companion = show(
            self.widget, self.static_bundle, fallback=self._repr_mimebundle_, final=lambda: self.run.done
        )


def _shorten(text: str, width: int) -> str:
    """Cut before escaping (cutting after could split an entity like ``&amp;``); an ellipsis says so."""
    return text if len(text) <= width else text[: width - 1] + "…"
