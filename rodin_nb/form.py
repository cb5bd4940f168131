"""``rn.GenerateForm(client)``: a widget form built from the model's schema that starts runs.

Composed from stock ipywidgets, one row per input of ``client.schema`` (dropdowns for allowed values,
checkboxes for booleans, a text area for the prompt, an upload box for images, a seed box with
"random"), each row a fixed-width label and the control, so every control lines up.

The form validates as values change, not only on a click: each problem shows once, under its field;
Rodin's rules show where they act (Sketch greys out hyper mode and says quality runs as medium); Estimate
and Generate are disabled while the request is invalid. Buttons also disable themselves while they work
and always re-enable (``finally``). Each run gets a :class:`~rodin_nb.runcard.RunCard` as the form's
result area, replacing the previous run's.
"""

from __future__ import annotations

import html
import time
import warnings
from typing import TYPE_CHECKING, Any

from .errors import RodinError, ValidationError
from .rules import forced_quality, hyper_allowed
from .schema import InputSpec, RodinRequest, RodinWarning
from .widgetrows import AMBER, CONTROL_WIDTH, GREY, RED, label_gap, labelled, set_line

if TYPE_CHECKING:
    import ipywidgets as widgets

    from .client import Client
    from .jobs import Run
    from .runcard import RunCard

__all__ = ["DOUBLE_CLICK_S", "GenerateForm"]

DOUBLE_CLICK_S = 1.5  # a second Generate this soon on an unchanged form is a double click


def _control(spec: InputSpec) -> widgets.Widget:
    """The control for one input, with no description of its own (the row's label column names it)."""
    import ipywidgets as widgets

    tooltip = spec.description or spec.hint or ""
    width = widgets.Layout(width=CONTROL_WIDTH)
    if spec.type in ("file", "file_array"):
        return widgets.FileUpload(
            accept="image/*",
            multiple=spec.type == "file_array",
            description="choose images" if spec.type == "file_array" else "choose an image",
            tooltip=tooltip,
            layout=width,
        )
    if spec.allowed_values:
        options = list(spec.allowed_values)
        value = spec.default if spec.default in options else options[0]
        return widgets.Dropdown(options=options, value=value, tooltip=tooltip, layout=width)
    if spec.type == "boolean":
        return widgets.Checkbox(value=bool(spec.default), description="", tooltip=tooltip, indent=False)
    if spec.type == "number":
        if spec.is_integer:
            low = int(spec.min) if spec.min is not None else 0
            start = int(spec.default) if isinstance(spec.default, (int, float)) else low
            # Not a BoundedIntText: it silently clamps 70000 to 65535, and the run would use a seed the
            # user did not type; out-of-range values are reported under the field instead.
            return widgets.IntText(value=start, tooltip=tooltip, layout=width)
        return widgets.FloatText(value=float(spec.default or 0.0), tooltip=tooltip, layout=width)
    if spec.raw.get("prompt") or spec.name == "prompt":
        return widgets.Textarea(
            value=str(spec.default or ""),
            placeholder=spec.raw.get("placeholder") or "",
            tooltip=tooltip,
            layout=widgets.Layout(width="480px", height="64px"),
        )
    return widgets.Text(value=str(spec.default or ""), tooltip=tooltip, layout=width)


class GenerateForm:
    """Widgets for every model input, plus Estimate and Generate buttons and the run's card.

    Attributes
    ----------
    fields : dict of the input controls by wire name.
    notes : dict of the line under each control (its problems in red, rules that apply in grey).
    random_seed : the "random seed" checkbox (the seed box is disabled while it is ticked).
    problems : the form-level line for problems no control owns; ``warnings``: notes on the request.
    message : what the last action said (an estimate, the run started, or the service's error).
    run : the last Run started from the form (None before the first click).
    card : the last run's :class:`~rodin_nb.runcard.RunCard` (the result area shows it).
    """

    def __init__(self, client: Client, **defaults: Any) -> None:
        import ipywidgets as widgets

        self.client = client
        self.schema = client.schema
        self.fields: dict[str, widgets.Widget] = {spec.name: _control(spec) for spec in self.schema.inputs}
        self.notes: dict[str, widgets.HTML] = {
            name: widgets.HTML(layout=widgets.Layout(display="none")) for name in self.fields
        }
        self.random_seed = widgets.Checkbox(value=True, description="random seed", indent=False)
        self.estimate_button = widgets.Button(description="Estimate", icon="calculator")
        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="cube")
        self.problems = widgets.HTML(layout=widgets.Layout(display="none"))
        self.warnings = widgets.HTML(layout=widgets.Layout(display="none"))
        self.message = widgets.HTML(layout=widgets.Layout(display="none"))
        self.result = widgets.Box(layout=widgets.Layout(flex_flow="column"))
        self.run: Run | None = None
        self.card: RunCard | None = None
        self.valid = False
        self._busy = False
        self._checking = False
        self._touched = False  # no edit yet: what the request still needs is shown grey, not red
        self._last_generate: tuple[float, dict[str, Any]] | None = None  # when, and the form's values
        self._hyper_wanted = False  # hyper was ticked when a tier that never uses it was chosen
        for name, value in defaults.items():
            self.set(name, value)
        self.estimate_button.on_click(lambda _: self.estimate())
        self.generate_button.on_click(lambda _: self.generate())
        # Every control re-checks the form on change, so rules and problems show as the user types.
        for control in [*self.fields.values(), self.random_seed]:
            control.observe(self._edited, names="value")
        rows = [self._row(spec) for spec in self.schema.inputs]
        buttons = widgets.HBox(
            [
                label_gap(),
                self.estimate_button,
                self.generate_button,
            ]
        )
        self.widget = widgets.VBox([*rows, buttons, self.problems, self.warnings, self.message, self.result])
        self.check()

    def _row(self, spec: InputSpec) -> widgets.Widget:
        """A fixed-width label, then the control ("random seed" beside the seed box), its note under it."""
        import ipywidgets as widgets

        control = self.fields[spec.name]
        line = widgets.HBox([control, self.random_seed]) if spec.name == "seed" else control
        return labelled(
            spec.label or spec.name, spec.description or spec.hint or "", line, self.notes[spec.name]
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
        from traitlets import TraitError

        control = self.fields[name]
        try:
            control.value = value
        except TraitError:
            allowed = getattr(control, "options", None)
            hint = f"allowed: {', '.join(map(str, allowed))}" if allowed else "see client.schema"
            raise ValidationError(
                [(name, f"{value!r} is not a valid value; {hint}")], context="form"
            ) from None

    def params(self) -> dict[str, Any]:
        """The form's values under their wire names.

        Blank fields, fields left at the schema's default and controls a rule has disabled (hyper mode at
        Sketch) are left out, so the request's own rules apply to them (Sketch, for one, then runs at its
        only quality instead of a default it ignores).
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
            if getattr(control, "disabled", False):
                continue
            blank = isinstance(control.value, str) and not control.value.strip()
            if not blank and not (spec.has_default and control.value == spec.default):
                out[spec.name] = control.value
        return out

    def request(self) -> RodinRequest:
        """The validated request (raises ValidationError listing every problem)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RodinWarning)
            request = self.client.request(**self.params())
        notes = [str(w.message) for w in caught if issubclass(w.category, RodinWarning)]
        if (
            forced_quality({**self.schema.defaults(), **self.params()}) is not None
            and "quality" in self.fields
        ):
            # The grey note under Quality already says it, where the user looks.
            notes = [n for n in notes if "forces quality" not in n]
        set_line(self.warnings, "<br>".join(f"note: {html.escape(n)}" for n in notes), AMBER)
        return request

    # --- live rules and problems ---------------------------------------------------------------------

    def _edited(self, _change: Any) -> None:
        self._touched = True  # from now on problems are the user's to fix: red, not grey
        self.check()

    def check(self) -> bool:
        """Apply the rules to the controls and show every problem under its field; True if valid.

        Runs on every change of a control (on the kernel's thread, as widget events are).
        """
        if self._checking:  # a rule below changes a control, whose event calls check() again
            return self.valid
        self._checking = True
        try:
            info = self._apply_rules()
            problems: list[tuple[str, str]] = []
            try:
                self.request()
            except ValidationError as exc:
                problems = exc.problems
                set_line(self.warnings, "", AMBER)
            self._show_problems(problems, info)
            self.valid = not problems
            self._set_buttons()
            return self.valid
        finally:
            self._checking = False

    def _apply_rules(self) -> dict[str, str]:
        """Rodin's rules (:mod:`rodin_nb.rules`) acted out on the controls; returns grey notes by field."""
        info: dict[str, str] = {}
        if "seed" in self.fields:
            self.fields["seed"].disabled = bool(self.random_seed.value)
        values = {**self.schema.defaults(), **self.params()}
        hyper = self.fields.get("useHyper")
        if hyper is not None:
            allowed = hyper_allowed(values)
            if not allowed:
                if hyper.value:
                    self._hyper_wanted = True  # given back when the tier allows it again
                hyper.value = False  # a ticked box that is ignored would tell the user otherwise
                info["useHyper"] = f"tier {values.get('tier')} never uses hyper mode"
            elif hyper.disabled and self._hyper_wanted:
                hyper.value, self._hyper_wanted = True, False
            hyper.disabled = not allowed
        forced = forced_quality(values)
        if forced is not None and "quality" in self.fields:
            info["quality"] = f"tier {values.get('tier')} runs at {forced} quality, whatever is chosen here"
        return info

    def _show_problems(self, problems: list[tuple[str, str]], info: dict[str, str]) -> None:
        """One line per problem: under the first field it names (in form order), else at form level.

        A problem about two fields ("give a prompt or an image") arrives once per field; it is shown once.
        """
        by_message: dict[str, list[str]] = {}
        for field, message in problems:
            by_message.setdefault(message, []).append(field)
        under: dict[str, list[str]] = {name: [] for name in self.fields}
        loose: list[str] = []
        for message, fields in by_message.items():
            owner = next((name for name in self.fields if name in fields), None)
            if owner is None:
                loose.append(f"{', '.join(fields)}: {message}")
            else:
                under[owner].append(message)
        for name, note in self.notes.items():
            # An untouched form is not wrong yet: what it still needs shows grey until the first edit.
            tone = RED if self._touched else GREY
            parts = [f"<span style='{tone}'>{html.escape(m)}</span>" for m in under[name]]
            if name in info:
                parts.append(f"<span style='{GREY}'>{html.escape(info[name])}</span>")
            note.value = "<br>".join(parts)
            note.layout.display = "" if parts else "none"
        set_line(self.problems, "<br>".join(html.escape(m) for m in loose), RED if self._touched else GREY)

    def _set_buttons(self) -> None:
        self.estimate_button.disabled = self.generate_button.disabled = self._busy or not self.valid

    # --- actions -------------------------------------------------------------------------------------

    def _show_problem(self, exc: Exception) -> None:
        if isinstance(exc, ValidationError):
            # Shown under the fields already (check() put them there): say where to look, once.
            noun = "problem" if len(exc.problems) == 1 else "problems"
            set_line(self.message, f"nothing sent: fix the {noun} marked above", RED)
            return
        self.message.layout.display = ""
        self.message.value = f'<pre style="{RED};white-space:pre-wrap">{html.escape(str(exc))}</pre>'

    def _start(self) -> bool:
        """Begin an action: clear the last action's message, and go on only if the form is valid."""
        set_line(self.message, "", GREY)
        if not self.check():
            set_line(self.message, "nothing sent: fix the problems marked above", RED)
            return False
        self._busy = True
        self._set_buttons()
        return True

    def _stop(self) -> None:
        self._busy = False
        self._set_buttons()

    def estimate(self) -> float | None:
        """Ask the service for the price of the current form (dry run); shown in the form."""
        if not self._start():
            return None
        try:
            request = self.request()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RodinWarning)  # the form shows them where they apply
                cost = self.client.estimate(request)
            logged = self.client.log.find_reusable(
                self.client.service, self.client.model_id, request.params_hash
            )
            free = (
                f"; the run log already has this request (run <code>{html.escape(logged['run_id'])}</code>): "
                "Generate answers it for free"
                if logged
                else ""
            )
            set_line(self.message, f"estimated cost: <b>{cost:g}</b> creative units{free}", "")
            return cost
        except RodinError as exc:
            self._show_problem(exc)
            return None
        finally:
            self._stop()

    def generate(self) -> Run | None:
        """Start a run from the form; its card (progress, then the model) replaces the last run's.

        With "random seed", a second click within ``DOUBLE_CLICK_S`` on an unchanged form is taken for
        a double click (a browser sends both before the button greys out) and starts nothing: it would
        otherwise pay for a second job with another seed.
        """
        params = self.params()
        last = self._last_generate
        if (
            self.run is not None
            and self.random_seed.value  # with a fixed seed a second click is answered from the log
            and last is not None
            and last[1] == params
            and time.monotonic() - last[0] < DOUBLE_CLICK_S
        ):
            set_line(
                self.message,
                f"run <code>{html.escape(self.run.run_id)}</code> was started a moment ago from this "
                "form: click Generate again to start another",
                GREY,
            )
            return self.run
        if not self._start():
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RodinWarning)  # the form shows them where they apply
                run = self.client.generate(self.request())
        except RodinError as exc:
            self._show_problem(exc)
            return None
        finally:
            self._stop()
        self._last_generate = (time.monotonic(), params)
        self.run = run
        if "seed" in self.fields and run.seed is not None:
            # The seed the run really uses (drawn when "random seed" is ticked): untick to reuse it.
            self.fields["seed"].value = run.seed
        reused = " answered from the run log: nothing paid" if run.done else ""
        set_line(self.message, f"run <code>{html.escape(run.run_id)}</code> (seed {run.seed}){reused}", "")
        self._show_card(run)
        return run

    def _show_card(self, run: Run) -> None:
        from .runcard import RunCard

        if self.card is not None:
            self.card.close()  # the old run's card stops following it (and builds no view)
        self.card = RunCard(run)
        self.result.children = (self.card.widget,)

    @property
    def result_view(self) -> Any:
        """The last run's 3D view (or its preview image when no view could be built); None before."""
        return self.card.result_view if self.card is not None else None

    def static_html(self) -> str:
        """The form for pages without a widget front end (nbconvert HTML, GitHub): its values as a table,
        then the last run's card (preview and stats) if it started one."""
        cell = "text-align:left;vertical-align:top;padding:2px 12px 2px 0;border:none"
        rows = []
        for spec in self.schema.inputs:
            control = self.fields[spec.name]
            if spec.type in ("file", "file_array"):
                value = f"{len(control.value)} image(s)" if control.value else ""
            elif spec.name == "seed" and self.random_seed.value:
                value = "random"
            else:
                value = str(control.value)
            label = html.escape(spec.label or spec.name)
            rows.append(
                f"<tr style='background:transparent'><th style='{cell};font-weight:600'>{label}</th>"
                f"<td style='{cell}'>{html.escape(value)}</td></tr>"
            )
        table = f'<table style="border-collapse:collapse;margin:0">{"".join(rows)}</table>'
        result = self.card.static_html() if self.card is not None else ""
        return (
            f'<div style="text-align:left"><b>GenerateForm</b> <span style="color:{GREY};font-size:12px">'
            f"(an interactive form: run the notebook to use it)</span>{table}{result}</div>"
        )

    def static_bundle(self) -> dict[str, Any]:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params().items() if k != "images")
        return {"text/plain": f"GenerateForm({params})", "text/html": self.static_html()}

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live form and its static copy in one output (IPython in a kernel uses
        ``_ipython_display_``: the form and a separate static output, :mod:`rodin_nb.statics`)."""
        data = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(data, dict):
            data.update(self.static_bundle())
        return data

    def _ipython_display_(self) -> None:
        from .statics import show

        show(self.widget, self.static_bundle, fallback=self._repr_mimebundle_)
