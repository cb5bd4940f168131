"""``rn.GenerateForm(client)``: a widget form built from the model's schema that starts runs.

Composed from stock ipywidgets, one control per input of ``client.schema`` (dropdowns for allowed
values, checkboxes for booleans, a text area for the prompt, an upload box for images, a seed box with
"random"). Buttons disable themselves while they work and always re-enable (``finally``); problems show
inside the form, never as a traceback; progress arrives from the engine thread by setting traits.
"""

from __future__ import annotations

import html
import warnings
from typing import TYPE_CHECKING, Any

from .errors import RodinError, ValidationError
from .schema import InputSpec, RodinRequest, RodinWarning

if TYPE_CHECKING:
    import ipywidgets as widgets

    from .client import Client
    from .jobs import Run

__all__ = ["GenerateForm"]


def _control(spec: InputSpec) -> widgets.Widget:
    import ipywidgets as widgets

    label = spec.label or spec.name
    tooltip = spec.description or spec.hint or ""
    style = {"description_width": "120px"}
    if spec.type in ("file", "file_array"):
        return widgets.FileUpload(
            accept="image/*", multiple=spec.type == "file_array", description=label, tooltip=tooltip
        )
    if spec.allowed_values:
        options = list(spec.allowed_values)
        value = spec.default if spec.default in options else options[0]
        return widgets.Dropdown(options=options, value=value, description=label, tooltip=tooltip, style=style)
    if spec.type == "boolean":
        return widgets.Checkbox(value=bool(spec.default), description=label, tooltip=tooltip, indent=False)
    if spec.type == "number":
        if spec.is_integer:
            low = int(spec.min) if spec.min is not None else -(2**31)
            high = int(spec.max) if spec.max is not None else 2**31 - 1
            start = int(spec.default) if isinstance(spec.default, (int, float)) else low
            return widgets.BoundedIntText(
                value=start, min=low, max=high, description=label, tooltip=tooltip, style=style
            )
        return widgets.FloatText(
            value=float(spec.default or 0.0), description=label, tooltip=tooltip, style=style
        )
    if spec.raw.get("prompt") or spec.name == "prompt":
        return widgets.Textarea(
            value=str(spec.default or ""),
            placeholder=spec.raw.get("placeholder") or "",
            description=label,
            tooltip=tooltip,
            style=style,
            layout=widgets.Layout(width="95%"),
        )
    return widgets.Text(value=str(spec.default or ""), description=label, tooltip=tooltip, style=style)


class GenerateForm:
    """Widgets for every model input, plus Estimate and Generate buttons and the run's progress.

    Attributes
    ----------
    fields : dict of the input controls by wire name.
    run : the last Run started from the form (None before the first click).
    """

    def __init__(self, client: Client, **defaults: Any) -> None:
        import ipywidgets as widgets

        self.client = client
        self.schema = client.schema
        self.fields: dict[str, widgets.Widget] = {spec.name: _control(spec) for spec in self.schema.inputs}
        self.random_seed = widgets.Checkbox(value=True, description="random seed", indent=False)
        for name, value in defaults.items():
            self.set(name, value)
        self.estimate_button = widgets.Button(description="Estimate", icon="calculator")
        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="cube")
        self.estimate_button.on_click(lambda _: self.estimate())
        self.generate_button.on_click(lambda _: self.generate())
        self.message = widgets.HTML()
        self.progress = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, description="", layout={"width": "50%"}
        )
        self.status = widgets.HTML()
        self.result = widgets.Output()
        self.run: Run | None = None
        self._notes: list[str] = []
        self.result_view: Any = None  # the view (or preview image) of the last successful run
        rows = []
        for name, control in self.fields.items():
            rows.append(widgets.HBox([control, self.random_seed]) if name == "seed" else control)
        buttons = widgets.HBox([self.estimate_button, self.generate_button])
        self.widget = widgets.VBox(
            [*rows, buttons, self.message, widgets.HBox([self.progress, self.status]), self.result]
        )

    # --- reading the form ----------------------------------------------------------------------------

    def set(self, name: str, value: Any) -> None:
        """Set a control by wire name (``seed`` also turns off "random seed")."""
        if name not in self.fields:
            raise ValidationError(
                [(name, f"unknown parameter; allowed: {', '.join(self.fields)}")], context="form"
            )
        if name == "seed":
            self.random_seed.value = value is None
            if value is None:
                return
        if name == "images":
            raise ValueError("images come from the upload box; or pass images= to client.generate()")
        self.fields[name].value = value

    def params(self) -> dict[str, Any]:
        """The form's values under their wire names.

        Blank fields and fields left at the schema's default are left out, so the request's own rules
        apply to them (Sketch, for one, then runs at its only quality instead of a default it ignores).
        """
        out: dict[str, Any] = {}
        for spec in self.schema.inputs:
            control = self.fields[spec.name]
            if spec.type in ("file", "file_array"):
                images = [bytes(item["content"]) for item in control.value]
                if images:
                    out[spec.name] = images if spec.type == "file_array" else images[0]
                continue
            if spec.name == "seed":
                if not self.random_seed.value:
                    out[spec.name] = control.value
                continue
            blank = isinstance(control.value, str) and not control.value.strip()
            if not blank and not (spec.has_default and control.value == spec.default):
                out[spec.name] = control.value
        return out

    def request(self) -> RodinRequest:
        """The validated request (raises ValidationError listing every problem).

        Warnings (a request the service accepts but will not follow to the letter) are shown in the form.
        """
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RodinWarning)
            request = self.client.request(**self.params())
        self._notes = [str(w.message) for w in caught if issubclass(w.category, RodinWarning)]
        return request

    def _notes_html(self) -> str:
        return "".join(f'<br><span style="color:#9a6700">note: {html.escape(n)}</span>' for n in self._notes)

    # --- actions -------------------------------------------------------------------------------------

    def _show_problem(self, exc: Exception) -> None:
        self.message.value = f'<pre style="color:#cf222e;white-space:pre-wrap">{html.escape(str(exc))}</pre>'

    def estimate(self) -> float | None:
        """Ask the service for the price of the current form (dry run); shown in the form."""
        self.estimate_button.disabled = True
        try:
            cost = self.client.estimate(self.request())
            self.message.value = f"estimated cost: <b>{cost:g}</b> creative units" + self._notes_html()
            return cost
        except RodinError as exc:
            self._show_problem(exc)
            return None
        finally:
            self.estimate_button.disabled = False

    def generate(self) -> Run | None:
        """Start a run from the form; progress and the result appear below it."""
        self.generate_button.disabled = True
        try:
            run = self.client.generate(self.request())
        except RodinError as exc:
            self._show_problem(exc)
            return None
        finally:
            self.generate_button.disabled = False
        self.run = run
        self.message.value = f"run <code>{run.run_id}</code> (seed {run.seed})" + (
            " answered from the run log: nothing paid" if run.done else ""
        )
        run.on_change(self._update)
        self._update(run)
        return run

    def _update(self, run: Run) -> None:
        """Called from the engine thread: only sets traits (safe), never prints."""
        if run is not self.run:
            return
        self.progress.value = float(run.progress)
        self.progress.bar_style = {
            "success": "success",
            "failure": "danger",
            "lost": "danger",
            "not-submitted": "danger",
        }.get(run.status, "")
        detail = f": {html.escape(run.error)}" if run.error else ""
        self.status.value = f"{html.escape(run.status)}{detail}"
        if run.done and run.status == "success" and self.result_view is None:
            self._show_result(run)

    def _show_result(self, run: Run) -> None:
        """Put the result under the form: a 3D view, or its preview image if no view can be built."""
        try:
            self.result_view = run.show()
        except Exception as exc:  # the viewer is optional here: fall back to the preview image
            if run.preview is None:
                self.status.value += f" ({html.escape(str(run.glb))}; no view: {html.escape(str(exc))})"
                return
            from IPython.display import Image

            self.result_view = Image(data=run.preview.read_bytes(), format="png")
        # Outside IPython (plain scripts, tests) there is nothing to render into; formatting display data
        # there would start an IPython shell on the engine thread.
        from IPython import get_ipython

        if get_ipython() is not None:
            self.result.append_display_data(self.result_view)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
