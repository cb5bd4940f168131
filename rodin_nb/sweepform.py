"""``rn.SweepForm(client)``: build a sweep from the model's schema, price it, run it, compare the results.

One axis control per input of ``client.schema`` (generated, so a new input appears with no code change):
a multi-select for inputs with allowed values, false/true/both for booleans, one prompt per line, a
seeds box (``1-4, 7`` or ``4 random``), an upload box whose every picture is one value of the images
axis. The plan table and the estimate follow the axes, debounced: ``form.refresh()`` does the same work
at once (Run calls it first, so a click never starts a stale plan).

Threads: the debounce timer and the engine's listeners only set widget traits (ipykernel sends those
comm messages from any thread) and never print. The comparison grid is built by the "Show grid" click in
the caller's thread; when a sweep ends, a short-lived worker thread builds it once, so the engine's
thread never spends its time loading meshes.
"""

from __future__ import annotations

import html
import re
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import BudgetExceeded, RodinError, ValidationError
from .rules import SEED_MAX, SEED_MIN, draw_seed
from .schema import InputSpec, RodinWarning
from .widgetrows import CONTROL_WIDTH, label_gap, labelled

if TYPE_CHECKING:
    import ipywidgets as widgets
    import pandas as pd

    from .client import Client
    from .jobs import Run
    from .progress import SweepProgressWidget
    from .sweep import Sweep

__all__ = ["MAX_SEEDS", "SweepForm", "parse_seeds"]

#: More seeds than this in one box is almost surely a typo (``0-65535``), and a plan nobody can read.
MAX_SEEDS = 1000
#: Plan rows shown in the table; the rest are counted.
PLAN_ROWS_SHOWN = 40

_RANDOM_RE = re.compile(r"(?:(\d+)\s*)?random(?:\s+seeds?)?", re.IGNORECASE)
_RANGE_RE = re.compile(r"(\d+)-(\d+)")
_ROW_FIELD_RE = re.compile(r"^row \d+ (.+)$")

# --- the seeds box -----------------------------------------------------------------------------------


def parse_seeds(text: str, *, draw: Callable[[], int] = draw_seed) -> list[int]:
    """Seeds from the seeds box: ``"1-4, 7"`` -> ``[1, 2, 3, 4, 7]``; ``"3 random"`` -> three distinct.

    Commas or spaces separate items; ``a-b`` is an inclusive range; a repeated seed counts once (it is
    the same request). ``N random`` (or ``random`` for one) must be the whole text. Raises ValueError
    saying what was not understood.
    """
    text = text.strip()
    if not text:
        raise ValueError("no seeds: give seeds like 1-4, 7 or a count like 4 random")
    match = _RANDOM_RE.fullmatch(text)
    if match:
        return _random_seeds(int(match.group(1) or 1), draw)
    seeds: list[int] = []
    # "1 - 4" is one range: glue the hyphen first, then split on commas and spaces.
    for token in re.split(r"[,\s]+", re.sub(r"\s*-\s*", "-", text)):
        if token:
            seeds.extend(_seed_token(token))
        if len(seeds) > MAX_SEEDS:
            raise ValueError(f"more than {MAX_SEEDS} seeds; a sweep that large is a plan nobody can read")
    return list(dict.fromkeys(seeds))


def _seed_token(token: str) -> list[int]:
    if token.isdigit():
        return [_check_seed(int(token))]
    match = _RANGE_RE.fullmatch(token)
    if match is None:
        raise ValueError(
            f"{token!r} is not a seed; write seeds like 1-4, 7 or a count like 4 random "
            f"(seeds are integers {SEED_MIN}..{SEED_MAX})"
        )
    low, high = _check_seed(int(match.group(1))), _check_seed(int(match.group(2)))
    if low > high:
        raise ValueError(f"the range {token} runs backwards; write {high}-{low}")
    if high - low + 1 > MAX_SEEDS:
        raise ValueError(f"the range {token} has {high - low + 1} seeds; at most {MAX_SEEDS} in one sweep")
    return list(range(low, high + 1))


def _check_seed(seed: int) -> int:
    if not SEED_MIN <= seed <= SEED_MAX:
        raise ValueError(f"seed {seed} is out of range; seeds are integers {SEED_MIN}..{SEED_MAX}")
    return seed


def _random_seeds(count: int, draw: Callable[[], int]) -> list[int]:
    if not 1 <= count <= MAX_SEEDS:
        raise ValueError(f"{count} random seeds: ask for 1 to {MAX_SEEDS}")
    seeds: dict[int, None] = {}
    while len(seeds) < count:  # distinct: two equal seeds would be one request
        seeds[draw()] = None
    return list(seeds)


def _split_lines(text: str) -> list[str]:
    """One value per non-blank line (prompts), surrounding spaces dropped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def _parse_numbers(text: str, spec: InputSpec) -> list[float | int]:
    values: list[float | int] = []
    for token in re.split(r"[,\s]+", text.strip()):
        if not token:
            continue
        try:
            number = float(token)
        except ValueError:
            raise ValueError(f"{token!r} is not a number; separate values with commas") from None
        values.append(int(number) if spec.is_integer and number.is_integer() else number)
    return values


# --- axis controls -----------------------------------------------------------------------------------


class _Axis:
    """One input's control, its inline message, and how its value becomes the values to sweep over."""

    BOOL_CHOICES: Mapping[str, list[bool]] = {"false": [False], "true": [True], "both": [False, True]}

    def __init__(self, spec: InputSpec) -> None:
        import ipywidgets as widgets

        self.spec = spec
        self.control = self._build(spec)
        self.message = widgets.HTML()
        self.row = labelled(self._label(), spec.description or spec.hint or "", self.control, self.message)
        self._memo: tuple[str, list[int]] | None = None  # random seeds stay put until the text changes

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        spec = self.spec
        if spec.name == "seed":
            return "seeds"
        if spec.type in ("file", "file_array"):
            return "images"
        if spec.allowed_values:
            return "choices"
        if spec.type == "boolean":
            return "boolean"
        if spec.type == "number":
            return "numbers"
        return "lines"

    def _label(self) -> str:
        """The row's label: says how several values are given where that is not obvious."""
        label = self.spec.label or self.spec.name
        return {"seeds": f"{label}s", "lines": f"{label}s"}.get(self.kind, label)  # one per line: placeholder

    def _build(self, spec: InputSpec) -> widgets.Widget:
        """The control, with no description of its own (the row's label column names it)."""
        import ipywidgets as widgets

        tooltip = spec.description or spec.hint or ""
        width = widgets.Layout(width=CONTROL_WIDTH)
        kind = self.kind
        if kind == "seeds":
            return widgets.Text(
                value="1 random",
                placeholder="1-4, 7  or  4 random",
                tooltip="seeds like 1-4, 7, or a count like 4 random",
                layout=width,
            )
        if kind == "images":
            return widgets.FileUpload(
                accept="image/*",
                multiple=True,
                description="choose images",
                tooltip="each picture is one value",
                layout=width,
            )
        if kind == "choices":
            options = list(spec.allowed_values or ())
            chosen = [spec.default] if spec.default in options else options[:1]
            return widgets.SelectMultiple(
                options=options,
                value=chosen,
                rows=min(len(options), 5),
                tooltip=tooltip or "ctrl/shift-click to sweep over several",
                layout=width,
            )
        if kind == "boolean":
            return widgets.ToggleButtons(
                options=list(self.BOOL_CHOICES),
                value="true" if spec.default is True else "false",
                tooltip=tooltip,
                style={"button_width": "60px"},
            )
        placeholder = str(spec.raw.get("placeholder") or "")
        if kind == "numbers":
            return widgets.Text(
                value="" if spec.default is None else str(spec.default),
                placeholder="values separated by commas",
                tooltip=tooltip,
                layout=width,
            )
        return widgets.Textarea(
            value="",
            placeholder=(placeholder + "\n" if placeholder else "") + "(one per line)",
            tooltip=tooltip,
            layout=widgets.Layout(width="480px", height="80px"),
        )

    def values(self) -> list[Any]:
        """The values to sweep over (empty: not given). Raises ValueError for text it cannot read."""
        control = self.control
        kind = self.kind
        if kind == "seeds":
            text = str(control.value)
            if self._memo is None or self._memo[0] != text:
                self._memo = (text, parse_seeds(text))
            return list(self._memo[1])
        if kind == "images":
            pictures = [bytes(item["content"]) for item in control.value]
            # Each picture is one value: a one-image request for a list input.
            return [[picture] for picture in pictures] if self.spec.is_array else pictures
        if kind == "choices":
            if not control.value:
                raise ValueError("select at least one value")
            return list(control.value)
        if kind == "boolean":
            return list(self.BOOL_CHOICES[control.value])
        if kind == "numbers":
            return _parse_numbers(str(control.value), self.spec)
        lines = _split_lines(str(control.value))
        # Checked here, line by line, so a problem says which line it is (the plan's errors name rows).
        bad = [
            f"line {number}: {'; '.join(problems)}"
            for number, line in enumerate(lines, 1)
            if (problems := self.spec.problems(line))
        ]
        if bad:
            raise ValueError("; ".join(bad))
        return lines

    def grid_value(self) -> Any:
        """What goes into ``client.sweep(**grid)``: a list sweeps, one value is fixed, None is not given.

        One value equal to the schema's default is left out, so the request's own rules apply to it
        (Sketch then runs at its only quality without a warning about a quality nobody chose).
        """
        values = self.values()
        if not values:
            return None
        if len(values) == 1:
            value = values[0]
            if self.spec.has_default and value == self.spec.default:
                return None
            return value
        return values

    def set(self, value: Any) -> None:
        """Set the control from Python values (a scalar or a list), for ``SweepForm(client, **axes)``."""
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        kind = self.kind
        if kind == "seeds":
            self.control.value = value if isinstance(value, str) else ", ".join(str(int(v)) for v in values)
        elif kind == "choices":
            self.control.value = tuple(values)
        elif kind == "boolean":
            flags = {bool(v) for v in values}
            self.control.value = "both" if len(flags) == 2 else ("true" if True in flags else "false")
        elif kind == "images":
            raise ValueError("images come from the upload box; or pass images= to client.sweep()")
        elif kind == "numbers":
            self.control.value = ", ".join(str(v) for v in values)
        else:
            self.control.value = "\n".join(str(v) for v in values)

    def show(self, problems: Sequence[str], note: str = "") -> None:
        if problems:
            shown = list(dict.fromkeys(problems))
            extra = f" (+{len(shown) - 4} more)" if len(shown) > 4 else ""
            text = "<br>".join(html.escape(p) for p in shown[:4]) + extra
            self.message.value = f'<span style="color:#cf222e">{text}</span>'
        else:
            self.message.value = f'<span style="color:#57606a">{html.escape(note)}</span>' if note else ""


# --- the form ----------------------------------------------------------------------------------------


class SweepForm:
    """A sweep builder: axes from the schema, the plan and its price, budget, Run/Pause/Cancel, a grid.

    Parameters
    ----------
    client : the :class:`~rodin_nb.Client` to plan and run on.
    debounce_s : seconds after the last change before the plan and estimate are recomputed.
    concurrency : passed to ``client.sweep`` (jobs in flight at most).
    **axes : starting values by wire name, a value or a list (``tier=["Sketch", "Regular"]``,
        ``seed="1-4"``, ``prompt=["a chair", "a vase"]``).

    Attributes
    ----------
    sweep : the planned :class:`~rodin_nb.Sweep` (None while the plan is invalid); Run starts it.
    axes : the axis controls by wire name (``form.axes["tier"].control``).
    grid : the last comparison grid built (None before).
    """

    def __init__(
        self, client: Client, *, debounce_s: float = 0.4, concurrency: int | None = None, **axes: Any
    ) -> None:
        import ipywidgets as widgets

        self.client = client
        self.schema = client.schema
        self.debounce_s = debounce_s
        self.concurrency = concurrency
        self.axes: dict[str, _Axis] = {spec.name: _Axis(spec) for spec in self.schema.inputs}
        for name, value in axes.items():
            self.set(name, value)
        self.sweep: Sweep | None = None
        self.active: Sweep | None = None  # the sweep started last: progress, Pause, Cancel, grid
        self.grid: Any = None
        self.estimate: float | None = None
        self._notes: list[str] = []
        self._plan_problem = ""
        self._swept: dict[str, list[str]] = {}  # sweep id -> the axes given several values
        self._frame: pd.DataFrame | None = None  # the plan table of self.sweep, as last read
        self._paused = False
        self._lock = threading.RLock()  # one refresh at a time (the timer's or a click's)
        # Its own lock: a keystroke must never wait behind a refresh that is asking for a price.
        self._timer_lock = threading.Lock()
        self._grid_lock = threading.Lock()
        self._grid_signature: Any = None
        self._timer: threading.Timer | None = None
        self._listening: set[str] = set()
        self._progress: dict[str, SweepProgressWidget] = {}

        self.budget = widgets.FloatText(
            value=0.0,
            tooltip="creative units at most; 0 means no budget",
            layout=widgets.Layout(width="120px"),
        )
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.pause_button = widgets.Button(description="Pause", icon="pause", disabled=True)
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.run_button.on_click(lambda _: self.run())
        self.pause_button.on_click(lambda _: self.pause())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.message = widgets.HTML()
        self.estimate_line = widgets.HTML()
        self.plan_table = widgets.HTML()
        self.progress_box = widgets.VBox()
        self.rows_axis = widgets.Dropdown(description="rows", options=[], style={"description_width": "40px"})
        self.cols_axis = widgets.Dropdown(description="cols", options=[], style={"description_width": "40px"})
        self.facet = widgets.Dropdown(description="facet", options=[], style={"description_width": "40px"})
        self.facet.layout.display = "none"
        self.show_grid_button = widgets.Button(description="Show grid", icon="th", disabled=True)
        self.show_grid_button.on_click(lambda _: self.show_grid())
        self.rows_axis.observe(self._grid_axes_changed, names="value")
        self.cols_axis.observe(self._grid_axes_changed, names="value")
        self.grid_box = widgets.VBox()

        for axis in self.axes.values():
            axis.control.observe(self._edited, names="value")
        self.budget.observe(self._edited, names="value")
        buttons = labelled(
            "Budget (CU)",
            "creative units at most; 0 means no budget",
            widgets.HBox([self.budget, self.run_button, self.pause_button, self.cancel_button]),
        )
        grid_controls = widgets.HBox(
            [label_gap(), self.rows_axis, self.cols_axis, self.facet, self.show_grid_button]
        )
        self.widget = widgets.VBox(
            [
                *(axis.row for axis in self.axes.values()),
                buttons,
                self.message,
                self.estimate_line,
                self.plan_table,
                self.progress_box,
                grid_controls,
                self.grid_box,
            ]
        )
        self.refresh()

    # --- reading the axes ----------------------------------------------------------------------------

    def set(self, name: str, value: Any) -> None:
        """Set an axis by wire name, from a value or a list of values."""
        if name not in self.axes:
            raise ValidationError(
                [(name, f"unknown parameter; allowed: {', '.join(self.axes)}")], context="sweep form"
            )
        self.axes[name].set(value)

    def grid_params(self) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """The ``client.sweep(**grid)`` arguments, and the problems of axes whose text cannot be read."""
        grid: dict[str, Any] = {}
        problems: dict[str, list[str]] = {}
        for name, axis in self.axes.items():
            try:
                value = axis.grid_value()
            except ValueError as exc:
                problems[name] = [str(exc)]
                continue
            if value is not None:
                grid[name] = value
        return grid, problems

    # --- planning ------------------------------------------------------------------------------------

    def _edited(self, _: Any = None) -> None:
        """The user changed an axis or the budget: the last action's message (a refusal, "done") is
        about the old plan, so it goes, unless a sweep is running (its news stays)."""
        if not self._running():
            self.message.value = ""
        self._changed()

    def _changed(self, _: Any = None) -> None:
        """Any axis or the budget changed: plan again once the user pauses typing (debounced)."""
        with self._timer_lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.debounce_s, self._refresh_quietly)
            self._timer.daemon = True
            self._timer.start()

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # a timer thread: show it in the form, never a traceback
            self._show_error(exc)

    def refresh(self) -> Sweep | None:
        """Plan and price the axes now (what the debounce timer does later); returns the plan or None."""
        with self._lock:
            self.close()  # flush: the newest values are planned now, no later timer repeats it
            try:
                sweep = self._plan()
            except Exception as exc:  # an unexpected failure (the log, the service): in the form
                self._show_error(exc)
                sweep = None
            self.sweep = sweep
            self._frame = None
            if sweep is not None:
                try:
                    self._frame = sweep.plan  # read once: each read asks the run log
                    self._price(sweep, self._frame)
                    if not self._running():  # the grid's axes belong to the running sweep meanwhile
                        self._update_grid_axes(sweep)
                except Exception as exc:
                    self._show_error(exc)
            self._render_plan()
            self._sync()
            return sweep

    def _plan(self) -> Sweep | None:
        """The sweep for the current axes (the same object while the plan is unchanged), or None."""
        grid, problems = self.grid_params()
        self._notes = []
        if not problems:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", RodinWarning)
                    sweep = self.client.sweep(concurrency=self.concurrency, **grid)
                self._notes = list(dict.fromkeys(str(w.message) for w in caught))
            except ValidationError as exc:
                problems = self._problems_by_axis(exc)
            else:
                self._show_problems({})
                sweep = self._same_or(sweep)
                swept = [name for name, value in grid.items() if _is_list(value, self.schema[name])]
                self._swept[sweep.sweep_id] = sorted(swept, key=lambda name: name != "seed")
                return sweep
        self._show_problems(problems)
        return None

    def _same_or(self, sweep: Sweep) -> Sweep:
        """Keep the current sweep while it plans the same requests: a paused sweep continues on Run,
        and ``form.sweep`` stays the object a user already holds."""
        for old in (self.sweep, self.active):
            if old is not None and [r.params_hash for r in old.requests] == [
                r.params_hash for r in sweep.requests
            ]:
                return old
        return sweep

    def _problems_by_axis(self, exc: ValidationError) -> dict[str, list[str]]:
        """``row 3 prompt`` -> ``prompt``: each problem once, next to the control it names."""
        problems: dict[str, list[str]] = {}
        placed: set[str] = set()  # a problem naming two axes ("a prompt or an image") is shown once
        for field, message in sorted(exc.problems, key=lambda p: self._axis_order(p[0])):
            match = _ROW_FIELD_RE.match(field)
            name = match.group(1) if match else field
            text = message if name in self.axes else f"{field}: {message}"
            if text in placed:
                continue
            placed.add(text)
            problems.setdefault(name if name in self.axes else "", []).append(text)
        return problems

    def _axis_order(self, field: str) -> int:
        """Where a problem's field sits in the form (so a shared problem lands under the first axis)."""
        match = _ROW_FIELD_RE.match(field)
        name = match.group(1) if match else field
        return list(self.axes).index(name) if name in self.axes else len(self.axes)

    def _show_problems(self, problems: Mapping[str, list[str]]) -> None:
        for name, axis in self.axes.items():
            axis.show(problems.get(name, []), note=self._axis_note(axis) if not problems.get(name) else "")
        general = "; ".join(problems.get("", []))
        self._plan_problem = (
            (general + "; " if general else "")
            + "the plan has problems (shown next to the axes); nothing will be submitted"
            if problems
            else ""
        )

    def _axis_note(self, axis: _Axis) -> str:
        """A quiet echo of what the seeds box understood (random seeds are drawn once, shown here)."""
        if axis.kind != "seeds":
            return ""
        try:
            seeds = axis.values()
        except ValueError:
            return ""
        shown = ", ".join(map(str, seeds[:12])) + (" …" if len(seeds) > 12 else "")
        return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}: {shown}"

    def _price(self, sweep: Sweep, plan: pd.DataFrame) -> None:
        """One dry run per price class not yet known to the form; the sweep gets the known prices."""
        try:
            to_pay = {
                req.params_hash: req
                for req, free in zip(sweep.requests, plan["in_log"], strict=True)
                if not free
            }
            # client.prices asks once per price class and client, so sweep.start(budget=...) and
            # its pacing read the same prices without asking the service again.
            self.estimate = sum(self.client.prices.price(req) for req in to_pay.values())
        except RodinError as exc:
            self.estimate = None
            self._set_message(f"no estimate: {exc}", error=True)

    # --- rendering -----------------------------------------------------------------------------------

    def swept_axes(self, sweep: Sweep | None = None) -> list[str]:
        """The axes given several values (seed first): the choices for the grid's rows, cols and facet.

        Not every input that differs between runs: Sketch's forced quality follows the tier.
        """
        sweep = sweep or self.sweep
        return list(self._swept.get(sweep.sweep_id, [])) if sweep is not None else []

    def _differing(self, sweep: Sweep) -> list[str]:
        """Inputs whose value differs between the planned runs, seed first: the plan table's columns."""
        names = [
            name
            for name in self.schema.names
            if len({repr(req.identity().get(name)) for req in sweep.requests}) > 1
        ]
        return sorted(names, key=lambda name: name != "seed")

    def _render_plan(self) -> None:
        sweep, frame = self.sweep, self._frame
        if sweep is None or frame is None:
            self.plan_table.value = ""
            self.estimate_line.value = f'<span style="color:#cf222e">{html.escape(self._plan_problem)}</span>'
            return
        self.plan_table.value = self.plan_html(sweep, frame)
        self.estimate_line.value = self._estimate_html(sweep, frame)

    def plan_html(self, sweep: Sweep, plan: pd.DataFrame | None = None) -> str:
        """The plan as an HTML table: swept values per run, and which runs the log already has."""
        plan = sweep.plan if plan is None else plan
        swept = self._differing(sweep) or ["seed"]
        fixed = {
            name: value
            for name, value in sweep.requests[0].identity().items()
            if name not in swept and name in sweep.requests[0].given
        }
        head = "".join(f"<th>{html.escape(name)}</th>" for name in ["#", *swept, "cost", "log"])
        rows = []
        for index, (req, in_log, status) in enumerate(
            zip(sweep.requests, plan["in_log"], plan["logged_status"], strict=True)
        ):
            if index >= PLAN_ROWS_SHOWN:
                break
            identity = req.identity()
            cells = [str(index), *(_cell(identity.get(name)) for name in swept)]
            price = self.client.prices.known(req)
            cells.append("free" if in_log else (f"{price:g}" if price is not None else "?"))
            mark = "in log (free)" if status == "success" else f"in log ({status}, free)"
            cells.append(mark if in_log else "new")
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        more = len(sweep.requests) - PLAN_ROWS_SHOWN
        tail = f"<tr><td colspan='{len(swept) + 3}'>… {more} more runs</td></tr>" if more > 0 else ""
        fixed_line = ", ".join(f"{k}={_cell(v)}" for k, v in fixed.items())
        # A line above, not a <caption>: a caption wraps at the width of a narrow table.
        title = f"<div><b>plan</b>: {len(sweep.requests)} runs" + (
            f"; fixed: {html.escape(fixed_line)}" if fixed_line else ""
        )
        return f"{title}</div><table class='rodin-plan'><tr>{head}</tr>{''.join(rows)}{tail}</table>"

    def _estimate_html(self, sweep: Sweep, plan: pd.DataFrame) -> str:
        in_log = int(plan["in_log"].sum())
        new = len({h for h, free in zip(plan["params_hash"], plan["in_log"], strict=True) if not free})
        cost = "estimate unknown" if self.estimate is None else f"estimate <b>{self.estimate:g}</b> CU"
        known = self.client.prices.classes()
        book = self.client.prices
        classes = sorted({book.class_of(req.params) for req in sweep.requests} & set(known), key=repr)
        prices = "; ".join(
            ", ".join(f"{n}={v}" for n, v in zip(self.schema.cost_inputs, key, strict=True))
            + f": {known[key]:g} CU"
            for key in classes
        )
        budget = self._budget()
        over = ""
        if self.budget.value < 0:
            over = ' <span style="color:#cf222e">a budget cannot be negative (0 means no budget)</span>'
        elif budget is not None and self.estimate is not None and self.estimate > budget:
            over = f' <span style="color:#cf222e">over the budget of {budget:g}: Run will refuse</span>'
        notes = "".join(f'<br><span style="color:#9a6700">note: {html.escape(n)}</span>' for n in self._notes)
        price_text = f" · per run: {html.escape(prices)} (one dry run per price class)" if prices else ""
        runs = f"{new} new run{'s' if new != 1 else ''} ({in_log} in log, free)"
        return f"{cost} for {runs}{price_text}{over}{notes}"

    def _set_message(self, text: str, *, error: bool = False) -> None:
        color = "#cf222e" if error else "#57606a"
        self.message.value = f'<span style="color:{color};white-space:pre-wrap">{html.escape(text)}</span>'

    def _show_error(self, exc: BaseException) -> None:
        self.message.value = (
            f'<pre style="color:#cf222e;white-space:pre-wrap">{html.escape(type(exc).__name__)}: '
            f"{html.escape(str(exc))}</pre>"
        )

    def _budget(self) -> float | None:
        value = float(self.budget.value or 0.0)
        return value if value > 0 else None  # 0 (or blank) means no budget

    # --- buttons -------------------------------------------------------------------------------------

    def _running(self) -> bool:
        return self.active is not None and not self.active.done

    def _sync(self) -> None:
        """Enable exactly the buttons that can act now (called after every change of state)."""
        running = self._running()
        self.run_button.disabled = (
            self.sweep is None or (running and not self._paused) or self.budget.value < 0
        )
        self.pause_button.disabled = not running or self._paused
        self.cancel_button.disabled = not running
        self.show_grid_button.disabled = self.active is None or not self.active.runs
        locked = running and not self._paused  # the plan of a running sweep is not edited under it
        for axis in self.axes.values():
            axis.control.disabled = locked

    def run(self) -> Sweep | None:
        """Run: plan now, then start the sweep within the budget (continues a paused one)."""
        self.run_button.disabled = True
        try:
            sweep = self.refresh()
            if sweep is None:
                return None
            self._start(sweep)
            return sweep
        except BudgetExceeded as exc:
            self._set_message(str(exc), error=True)
            return None
        except Exception as exc:  # never a traceback from a button
            self._show_error(exc)
            return None
        finally:
            self._sync()

    def _start(self, sweep: Sweep) -> None:
        """Start (or continue) ``sweep``; it is the active one only once it has started."""
        self._watch(sweep)
        previous, self.active = self.active, sweep  # set first: its end may be heard during start()
        try:
            sweep.start(budget=self._budget())
        except BaseException:
            self.active = previous
            raise
        self._paused = False
        self._set_message(f"sweep {sweep.sweep_id} started: {len(sweep.requests)} runs")
        self._attach_progress(sweep)
        if sweep.done:  # e.g. every run was in the log: it may have ended before we listened
            self._sweep_changed(sweep)

    def pause(self) -> None:
        """Stop submitting new runs; jobs already submitted finish. Run continues the plan."""
        self.pause_button.disabled = True
        try:
            if self.active is not None:
                self.active.pause()
                self._paused = True
                self._set_message("paused: jobs under way finish; Run continues the sweep")
        except Exception as exc:
            self._show_error(exc)
        finally:
            self._sync()

    def cancel(self) -> None:
        """Stop submitting and cancel this sweep's running jobs."""
        self.cancel_button.disabled = True
        try:
            if self.active is not None:
                canceled = self.active.cancel()
                self._paused = False
                self._set_message(f"canceled: {canceled} running job{'s' if canceled != 1 else ''} stopped")
        except Exception as exc:
            self._show_error(exc)
        finally:
            self._sync()

    def _watch(self, sweep: Sweep) -> None:
        if sweep.sweep_id not in self._listening:
            self._listening.add(sweep.sweep_id)
            sweep.on_change(self._sweep_changed)

    def _attach_progress(self, sweep: Sweep) -> None:
        from .progress import SweepProgressWidget

        view = self._progress.get(sweep.sweep_id)
        if view is None:
            view = self._progress[sweep.sweep_id] = SweepProgressWidget(sweep)
        view.refresh()
        self.progress_box.children = (view.widget,)

    def _sweep_changed(self, sweep: Sweep) -> None:
        """From the engine's threads: only sets traits; at the end, the grid is built off that thread."""
        if sweep is not self.active or not sweep.done:
            return
        if sweep.error is not None:
            self._set_message(f"sweep {sweep.sweep_id} stopped: {sweep.error}", error=True)
        elif "planned" not in sweep.counts():
            self._set_message(f"sweep {sweep.sweep_id} done")
        self._paused = False
        self._sync()
        self._update_grid_axes(sweep)
        self._changed()  # the plan table and estimate again: its runs are in the log now, free
        if sweep.error is None and "planned" not in sweep.counts():
            # Only a whole sweep gets its grid unasked (a paused or canceled one: "Show grid").
            threading.Thread(target=self._grid_quietly, name="sweepform-grid", daemon=True).start()

    # --- the comparison grid -------------------------------------------------------------------------

    def _update_grid_axes(self, sweep: Sweep) -> None:
        """Rows and cols list the swept axes: rows=seed if swept, cols=the next swept axis."""
        options = self.swept_axes(sweep) or ["seed"]
        if list(self.rows_axis.options) != options:
            self.rows_axis.options = options
            self.cols_axis.options = [*((o, o) for o in options), ("(none)", None)]
            self.rows_axis.value = options[0]
            self.cols_axis.value = options[1] if len(options) > 1 else None
        self._update_facets()

    def _grid_axes_changed(self, _: Any = None) -> None:
        self._update_facets()

    def _remaining_axes(self) -> list[str]:
        shown = {self.rows_axis.value, self.cols_axis.value}
        return [name for name in self.rows_axis.options if name not in shown]

    def _update_facets(self) -> None:
        """The facet lists each combination of the swept axes that are neither rows nor cols."""
        remaining = self._remaining_axes()
        runs = _distinct(self.active.runs) if self.active is not None else []
        combos: list[tuple[str, tuple[str, ...]]] = []
        for run in runs:
            key = tuple(repr(run.params.get(name)) for name in remaining)
            label = " · ".join(f"{n}={_cell(run.params.get(n))}" for n in remaining)
            if (label, key) not in combos:
                combos.append((label, key))
        self.facet.layout.display = "" if remaining else "none"
        if list(self.facet.options) == combos:
            return  # unchanged (the sweep's end re-plans in the background): the user's choice stays
        chosen = self.facet.value
        self.facet.options = combos
        if combos:
            self.facet.value = chosen if chosen in [key for _, key in combos] else combos[0][1]

    def _grid_quietly(self) -> None:
        """Build the grid once per end state (a paused sweep run again ends again, with more runs)."""
        sweep = self.active
        if sweep is None:
            return
        signature = (sweep.sweep_id, tuple((run.run_id, run.status) for run in sweep.runs))
        with self._grid_lock:
            if signature == self._grid_signature:
                return
            self._grid_signature = signature
        self.show_grid()

    def show_grid(self) -> Any:
        """Build the comparison grid of the last sweep with the chosen rows, cols and facet."""
        self.show_grid_button.disabled = True
        try:
            with self._grid_lock:
                sweep = self.active
                if sweep is None or not sweep.runs:
                    self._set_message("nothing to compare yet: run the sweep first")
                    return None
                if not self.rows_axis.options:
                    self._update_grid_axes(sweep)
                runs = self.facet_runs()
                from .viewer import compare_runs

                self.grid = compare_runs(runs, rows=self.rows_axis.value, cols=self.cols_axis.value)
                self.grid_box.children = (self.grid,)
                return self.grid
        except Exception as exc:  # e.g. two runs in one cell: say which axes to pick
            self._show_error(exc)
            return None
        finally:
            self._sync()

    def facet_runs(self) -> list[Run]:
        """The last sweep's runs (each once) that match the facet's values of the remaining axes."""
        runs = _distinct(self.active.runs) if self.active is not None else []
        remaining = self._remaining_axes()
        if not remaining or self.facet.value is None:
            return runs
        want = tuple(self.facet.value)
        return [run for run in runs if tuple(repr(run.params.get(n)) for n in remaining) == want]

    # --- display -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the pending debounce timer (the sweep itself keeps running)."""
        with self._timer_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def summary(self) -> str:
        """One line: the plan and its estimate, or where the running sweep stands."""
        from .progress import progress_line

        if self.active is not None:
            return f"{self.active.sweep_id}: {progress_line(self.active)}"
        if self.sweep is None:
            return "SweepForm: the plan has problems"
        cost = f"{self.estimate:g} CU" if self.estimate is not None else "unknown cost"
        return f"SweepForm: {len(self.sweep.requests)} runs planned, estimate {cost}"

    def static_bundle(self) -> dict[str, Any]:
        """The plan and progress (or results) as HTML and text, for pages with no widget front end."""
        parts = [f"<p><code>{html.escape(self.summary())}</code></p>"]
        if self.active is not None and self.active.runs:
            parts.append(f"<pre>{html.escape(self.active.table())}</pre>")
        elif self.sweep is not None:
            parts.append(self.plan_html(self.sweep))
        return {
            "text/plain": self.summary(),
            "text/html": '<div style="text-align:left">' + "".join(parts) + "</div>",
        }

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live widget, plus the plan and progress (or results) as HTML and text, in one output
        (IPython in a kernel uses ``_ipython_display_``: the widget and a separate static output)."""
        data = self.widget._repr_mimebundle_(**kwargs)
        if not isinstance(data, dict):
            return data
        data.update(self.static_bundle())
        return data

    def _ipython_display_(self) -> None:
        from .statics import show

        show(self.widget, self.static_bundle, fallback=self._repr_mimebundle_)


def _is_list(value: Any, spec: InputSpec) -> bool:
    """Whether a grid value sweeps (several values) rather than fixes one; images: a list of lists."""
    if spec.is_array:
        return isinstance(value, list) and bool(value) and isinstance(value[0], list)
    return isinstance(value, list)


def _distinct(runs: Sequence[Run]) -> list[Run]:
    """Each run once (two plan rows asking for one request, e.g. Sketch at two qualities, share a run)."""
    return list({run.run_id: run for run in runs}.values())


def _cell(value: Any, width: int = 32) -> str:
    """A value shortened for a table cell: images by a short fingerprint, long prompts with an ellipsis."""
    if isinstance(value, (list, tuple)):
        text = ", ".join(_cell(item, 16) for item in value)
    elif isinstance(value, str) and value.startswith("sha256:"):
        text = "image " + value[7:15]
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"
