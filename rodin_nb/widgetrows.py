"""The layout the forms share: a label column, then the control with its message line under it.

``GenerateForm`` and ``SweepForm`` both build one row per schema input; putting every control at the
same x (instead of each widget's own ``description`` width) keeps uploads, checkboxes and toggle buttons
in line with the labelled dropdowns. Messages use three quiet colours, never a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ipywidgets as widgets

__all__ = ["AMBER", "CONTROL_WIDTH", "GREY", "LABEL_WIDTH", "RED", "label_gap", "labelled", "set_line"]

LABEL_WIDTH = "130px"  # the label column: every control starts at the same x
CONTROL_WIDTH = "320px"
RED = "color:#cf222e;font-size:12px"  # a problem: the request cannot be sent as it is
GREY = "color:#57606a;font-size:12px"  # a note: what a rule does to this value
AMBER = "color:#9a6700;font-size:12px"  # a warning: sent, but not to the letter


def labelled(label: str, tooltip: str, *body: widgets.Widget) -> widgets.HBox:
    """A row: a fixed-width label, then ``body`` stacked (the control first, its message lines under)."""
    import ipywidgets as widgets

    name = widgets.Label(
        value=label, tooltip=tooltip, layout=widgets.Layout(width=LABEL_WIDTH, flex="0 0 auto")
    )
    return widgets.HBox([name, widgets.VBox(list(body))])


def label_gap() -> widgets.Label:
    """An empty label-column cell, so a row of buttons lines up with the controls above it."""
    import ipywidgets as widgets

    return widgets.Label(layout=widgets.Layout(width=LABEL_WIDTH, flex="0 0 auto"))


def set_line(widget: widgets.HTML, text: str, style: str) -> None:
    """Set a message line; an empty one takes no room (an empty HTML widget still has a line's height)."""
    widget.value = f"<span style='{style}'>{text}</span>" if text else ""
    widget.layout.display = "" if text else "none"
