"""Live progress for sweeps: a widget in notebooks, one updating line in terminals.

The widget is updated by setting traits from the engine thread (ipykernel sends those comm messages
safely from any thread); nothing is ever printed from a background thread. The terminal line is drawn
by the waiting (main) thread.
"""

from __future__ import annotations

import html
import shutil
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from .status import describe

if TYPE_CHECKING:
    from .sweep import Sweep

__all__ = ["SweepProgressWidget", "finish", "in_notebook", "progress_line", "watch"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where widgets can render)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def progress_line(sweep: Sweep) -> str:
    info = sweep.progress()
    counts = ", ".join(f"{describe(status)} {n}" for status, n in sorted(info.counts.items()))
    estimate = f"/{info.estimate:g}" if info.estimate is not None else ""
    # Never "100%" while a run has not ended (jobs at 100% may still be finalizing or downloading).
    fraction = info.fraction if info.ended >= info.total else min(info.fraction, 0.99)
    return (
        f"{fraction:4.0%} {info.ended}/{info.total} done  [{counts}]  "
        f"spent {info.spent:g}{estimate} CU  elapsed {_duration(info.elapsed_s)}  "
        f"left ~{_duration(info.remaining_s)}"
    )


class SweepProgressWidget:
    """A widget showing a sweep's counts per status, a bar, spent vs estimated cost and times."""

    def __init__(self, sweep: Sweep, *, min_interval_s: float = 0.2) -> None:
        import ipywidgets as widgets

        self.sweep = sweep
        self.bar = widgets.FloatProgress(
            value=0.0,
            min=0.0,
            max=1.0,
            description=sweep.sweep_id,
            style={"description_width": "initial"},
            layout=widgets.Layout(width="60%"),
        )
        self.label = widgets.HTML()
        self.widget = widgets.VBox([self.bar, self.label])
        self._min_interval_s = min_interval_s
        self._last = 0.0
        self._lock = threading.Lock()
        self.companion: Any = None  # the static copy shown with the widget (rodin_nb.statics)
        sweep.on_change(self._changed)
        self.refresh()

    def _changed(self, _: Sweep) -> None:
        now = time.monotonic()
        if now - self._last >= self._min_interval_s or self.sweep.done:
            self.refresh()

    def refresh(self) -> None:
        with self._lock:
            self._last = time.monotonic()
            self.bar.value = self.sweep.progress().fraction
            self.bar.bar_style = "success" if self.sweep.done else ""
            self.label.value = progress_line(self.sweep)

    def static_bundle(self) -> dict[str, Any]:
        """The progress as text and HTML for pages with no widget front end (nbconvert HTML, GitHub)."""
        line = progress_line(self.sweep)
        fraction = self.sweep.progress().fraction
        return {
            "text/plain": line,
            "text/html": (
                f'<div style="text-align:left"><progress value="{fraction:.3f}" max="1" style="width:60%">'
                f"</progress> <code>{html.escape(self.sweep.sweep_id)}</code><br>"
                f"<code>{html.escape(line)}</code></div>"
            ),
        }

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live widget, plus its state as text and HTML (one output; IPython in a kernel uses
        ``_ipython_display_``: the widget and a separate static output, see :mod:`rodin_nb.statics`)."""
        data = self.widget._repr_mimebundle_(**kwargs)
        if not isinstance(data, dict):
            return data
        data.update(self.static_bundle())
        return data

    def _ipython_display_(self) -> None:
        from .statics import show

        self.companion = show(
            self.widget, self.static_bundle, fallback=self._repr_mimebundle_, final=lambda: self.sweep.done
        )


def finish(view: Any) -> None:
    """Publish the final state of a notebook display's static copy, from the waiting (main) thread, so
    saved and exported notebooks show how the sweep ended rather than how it started."""
    if isinstance(view, SweepProgressWidget):
        view.refresh()
        if view.companion is not None:
            view.companion.refresh()


def watch(sweep: Sweep) -> Any:
    """Show progress: a widget in a notebook (returned at once), or a line redrawn until the sweep ends."""
    if in_notebook():
        from IPython.display import display

        view = SweepProgressWidget(sweep)
        display(view)
        return view
    stream = sys.stderr
    tty = stream.isatty()
    while not sweep.done:
        if tty:
            # Never wider than the terminal: a wrapped line cannot be redrawn in place with "\r".
            width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
            stream.write("\r" + progress_line(sweep)[:width].ljust(width))
            stream.flush()
        sweep._done.wait(0.25)
    stream.write(("\r" if tty else "") + progress_line(sweep) + "\n")
    stream.flush()
    return None
