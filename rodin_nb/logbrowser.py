"""``rn.LogBrowser(client.log)``: filter the run log, page through previews, open, diff, re-run, export.

Stock ipywidgets only. The browser keeps the log as a pandas frame (the very columns and dtypes of
``log.df``) and upserts the rows :meth:`RunLog.changed_since` reports, so a refresh reads only what
changed. Filters are vectorised boolean masks over that frame; a redraw only fills the 12 cards of the
current page, whose thumbnails (the run's preview PNG, base64 in an ``<img>``) are cached by content hash.

When it refreshes (the design, in short):

* on every filter change, on the Refresh button and on :meth:`LogBrowser.refresh`;
* after any run row *this process's* ``RunLog`` writes (a client's engine updating its runs, a new run
  claimed): ``RunLog.on_write`` calls back on the writer's thread, which only arms a short timer; the
  timer thread refreshes once for all the writes of the last moment (coalesced, so a sweep's progress
  ticks do not redraw a hundred times, and the engine never waits for a redraw). Background refreshes
  only set widget traits: they never print or ``display()``; their errors go to the message line.
* Writes by other processes (another kernel, the CLI) show at the next refresh of any kind.

Problems (a date range that ends before it starts, a missing file, an export that cannot be written)
show in the message line, never as a traceback; buttons re-enable in ``finally``.
"""

from __future__ import annotations

import base64
import html
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._optional import MissingExtra, install_hint
from .reprs import STATUS_COLOURS

if TYPE_CHECKING:
    import ipywidgets as widgets
    import numpy as np
    import pandas as pd

    from .client import Client
    from .runlog import LogStamp, RunLog

__all__ = ["LogBrowser"]

PAGE_SIZE = 12
THUMB_PX = 128
_CHOICE_FILTERS = ("status", "tier", "quality", "material")
_CARD_COLUMNS = ["run_id", "prompt", "seed", "tier", "quality", "status", "cost", "files", "sha256"]
_AUTO_REFRESH_S = 0.3  # writes within this long are shown by one refresh
_THUMB_CACHE = 512  # thumbnails kept (base64 <img> tags, ~40 kB each for a 256 px preview)
_IMAGES_NOTE = (
    "images are not carried over to the form (it cannot be pre-filled with images yet): "
    "upload them again in its upload box"
)
_PARQUET_HINT = f"Parquet export needs pyarrow: {install_hint('parquet')}, or export to .csv"


@dataclass
class _Criteria:
    """What the filter controls ask for (empty choices mean "any")."""

    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    prompt: str = ""
    sweep: str = ""
    start: date | None = None
    end: date | None = None


def filter_mask(frame: pd.DataFrame, criteria: _Criteria) -> np.ndarray:
    """Rows of ``frame`` matching ``criteria``, as a boolean array (vectorised: no Python loop per row)."""
    import numpy as np
    import pandas as pd

    mask = np.ones(len(frame), dtype=bool)
    for name, chosen in criteria.choices.items():
        if chosen and name in frame:
            mask &= frame[name].isin(chosen).to_numpy(dtype=bool)
    if criteria.prompt:
        prompts = frame["prompt"]
        if not pd.api.types.is_string_dtype(prompts.dtype):  # all missing (image-only runs): floats
            prompts = prompts.astype("string")
        found = prompts.str.contains(criteria.prompt, case=False, regex=False, na=False)
        mask &= found.to_numpy(dtype=bool)
    if criteria.sweep:
        mask &= (frame["sweep_id"] == criteria.sweep).to_numpy(dtype=bool)
    # Dates are whole UTC days (the log's times are UTC), both ends included.
    if criteria.start is not None:
        mask &= (frame["submitted_at"] >= pd.Timestamp(criteria.start, tz="UTC")).to_numpy(dtype=bool)
    if criteria.end is not None:
        end = pd.Timestamp(criteria.end + timedelta(days=1), tz="UTC")
        mask &= (frame["submitted_at"] < end).to_numpy(dtype=bool)
    return mask


def _badge(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#57606a")
    return (
        f'<span style="background:{colour};color:white;border-radius:3px;padding:0 4px;'
        f'font-size:90%">{html.escape(status)}</span>'
    )


def _short(text: Any, limit: int = 40) -> str:
    value = "" if text is None or text != text else str(text)  # NaN != NaN: a missing prompt
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _missing(value: Any) -> bool:
    try:
        return value is None or bool(value != value)
    except (TypeError, ValueError):  # pd.NA and arrays answer ambiguously
        return value is None or str(value) in ("<NA>", "nan")


def _placeholder(text: str, size: int = THUMB_PX) -> str:
    return (
        f'<div style="width:{size}px;height:{size}px;display:flex;align-items:center;'
        f"justify-content:center;background:#f6f8fa;color:#57606a;font-size:85%;border:1px dashed "
        f'#d0d7de">{html.escape(text)}</div>'
    )


class _Thumbnails:
    """Preview ``<img>`` tags by content hash (or path): each file is read and encoded once."""

    def __init__(self, workspace: Path, limit: int = _THUMB_CACHE) -> None:
        self.workspace = workspace
        self.limit = limit
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def tag(self, row: dict[str, Any], size: int = THUMB_PX) -> str:
        """The row's preview as an ``<img>``, or a placeholder saying why there is none."""
        preview = self.preview_of(row)
        if preview is None:
            return _placeholder(
                "no preview" if row.get("status") == "success" else str(row.get("status")), size
            )
        path, key = preview
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
        if cached is None:
            if not path.is_file():
                return _placeholder("preview file missing", size)
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            cached = f'<img src="data:image/png;base64,{data}" alt="preview" style="object-fit:contain"'
            with self._lock:
                self._cache[key] = cached
                while len(self._cache) > self.limit:
                    self._cache.popitem(last=False)
        return f'{cached} width="{size}" height="{size}">'

    def preview_of(self, row: dict[str, Any]) -> tuple[Path, str] | None:
        files = row.get("files")
        hashes = row.get("sha256")
        files = files if isinstance(files, list) else []
        hashes = hashes if isinstance(hashes, list) else []
        for index, name in enumerate(files):
            if str(name).lower().endswith(".png"):
                key = hashes[index] if index < len(hashes) else str(name)
                return self.workspace / str(name), str(key)
        return None


def _glb_of(workspace: Path, row: dict[str, Any]) -> Path | None:
    files = row.get("files") or []
    return next((workspace / str(f) for f in files if str(f).lower().endswith(".glb")), None)


class _Card:
    """One gallery slot: thumbnail, key parameters and a "select" box; refilled as pages change."""

    def __init__(self, on_select: Callable[[_Card], None]) -> None:
        import ipywidgets as widgets

        self.run_id: str | None = None
        self.thumb = widgets.HTML()
        self.caption = widgets.HTML()
        self.select = widgets.Checkbox(value=False, description="select", indent=False)
        self.select.observe(lambda _: on_select(self), names="value")
        self.box = widgets.VBox(
            [self.thumb, self.caption, self.select],
            layout=widgets.Layout(width=f"{THUMB_PX + 36}px", padding="4px", border="1px solid #d0d7de"),
        )


class LogBrowser:
    """Browse a run log: filters, a paged preview gallery, 3D view, diff of two runs, re-run, export.

    >>> browser = rn.LogBrowser(client.log)     # or rn.LogBrowser(rn.RunLog("rodin_runs"))
    >>> browser                                 # as a cell's output

    Parameters
    ----------
    log : the run log (``client.log``, or ``rn.RunLog(folder)`` without a client).
    client : the client to re-run and open runs with; default the log's own (``client.log``). Without
        one, views are built from the files on disk and "Re-run with changes" is disabled.
    page_size : cards per page (default 12).

    Attributes
    ----------
    frame : the whole log as ``log.df`` shows it, kept up to date by :meth:`refresh`.
    matches : the rows the filters select (log order); what Export writes.
    selected : run ids of the selected cards (at most two; a third selection drops the oldest).
    view : the 3D view of one selected run, or the linked comparison grid of two (None otherwise).
    diff_table : ``log.diff(a, b)`` of two selected runs (None otherwise).
    form : the ``GenerateForm`` opened by "Re-run with changes" (None before).
    widget : the whole browser as one ipywidgets box.
    """

    def __init__(self, log: RunLog, client: Client | None = None, *, page_size: int = PAGE_SIZE) -> None:
        import ipywidgets as widgets

        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.log = log
        self.client = client if client is not None else log.client
        self.page_size = page_size
        self.page = 0
        self.selected: list[str] = []
        self.view: Any = None
        self.diff_table: pd.DataFrame | None = None
        self.form: Any = None
        self._thumbs = _Thumbnails(log.workspace)
        self._lock = threading.RLock()  # one refresh at a time (the user's thread or the timer's)
        self._quiet = False  # set while the browser itself changes controls: their observers stay still
        self._filter_problem = False  # the message line shows a filter complaint (cleared once fixed)
        self._stamp: LogStamp | None = None
        self._positions: Any = None  # positions in self.frame of the matching rows, newest first
        self._timer: threading.Timer | None = None
        self._timer_lock = threading.Lock()
        self._closed = False
        self._build_controls(widgets)
        frame, self._stamp = log.changed_since(None)
        self.frame: pd.DataFrame = frame
        self._update_options()
        self._apply()
        self._listener = _write_listener(self)
        log.on_write(self._listener)

    # --- building ------------------------------------------------------------------------------------

    def _build_controls(self, widgets: Any) -> None:
        style = {"description_width": "70px"}
        self.filters: dict[str, widgets.Widget] = {
            name: widgets.SelectMultiple(
                options=[], rows=4, description=name, style=style, layout=widgets.Layout(width="200px")
            )
            for name in _CHOICE_FILTERS
        }
        self.prompt = widgets.Text(description="prompt", placeholder="text in the prompt", style=style)
        self.sweep = widgets.Dropdown(options=[("any sweep", "")], value="", description="sweep", style=style)
        self.start = widgets.DatePicker(description="from", style=style)
        self.end = widgets.DatePicker(description="to (UTC)", style=style)
        for control in (*self.filters.values(), self.prompt, self.sweep, self.start, self.end):
            control.observe(self._on_filter, names="value")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self._click(self.refresh_button, self.refresh))
        self.prev_button = widgets.Button(description="◀", layout=widgets.Layout(width="40px"))
        self.next_button = widgets.Button(description="▶", layout=widgets.Layout(width="40px"))
        self.prev_button.on_click(lambda _: self.go(self.page - 1))
        self.next_button.on_click(lambda _: self.go(self.page + 1))
        self.page_label = widgets.HTML()
        self.cards = [_Card(self._on_select) for _ in range(self.page_size)]
        self.gallery = widgets.GridBox(
            [card.box for card in self.cards],
            layout=widgets.Layout(grid_template_columns=f"repeat(auto-fill, {THUMB_PX + 44}px)"),
        )
        self.rerun_button = widgets.Button(
            description="Re-run with changes", icon="repeat", layout=widgets.Layout(width="auto")
        )
        self.rerun_button.on_click(lambda _: self._click(self.rerun_button, self.rerun))
        self.clear_button = widgets.Button(description="Clear selection")
        self.clear_button.on_click(lambda _: self.clear_selection())
        self.export_path = widgets.Text(value="runs.csv", description="export to", style=style)
        self.export_button = widgets.Button(description="Export", icon="download")
        self.export_button.tooltip = "write the matching runs; .csv or .parquet (chosen by the suffix)"
        self.export_button.on_click(lambda _: self._click(self.export_button, self.export))
        self.message = widgets.HTML()
        self.diff_html = widgets.HTML()
        self.detail = widgets.VBox()
        self.widget = widgets.VBox(
            [
                widgets.HBox(list(self.filters.values())),
                widgets.HBox([self.prompt, self.sweep]),
                widgets.HBox([self.start, self.end, self.refresh_button]),
                widgets.HBox([self.prev_button, self.page_label, self.next_button]),
                self.gallery,
                widgets.HBox([self.rerun_button, self.clear_button, self.export_path, self.export_button]),
                self.message,
                self.detail,
            ]
        )

    # --- refreshing ----------------------------------------------------------------------------------

    def refresh(self) -> int:
        """Read the rows changed since the last refresh, then filter and redraw; returns how many changed."""
        with self._lock:
            changed, self._stamp = self.log.changed_since(self._stamp)
            if len(changed):
                from .logframe import upsert_frame

                self.frame = upsert_frame(self.frame, changed)
                self._update_options()
            self._apply()
            return len(changed)

    def _auto_refresh(self) -> None:
        """On the timer's thread: refresh, and report a problem in the message line (never raise)."""
        with self._timer_lock:
            self._timer = None
        if self._closed:
            return
        try:
            self.refresh()
        except Exception as exc:  # nobody would see a traceback on this thread
            self._say(f"automatic refresh failed: {exc}", error=True)

    def _heard_write(self) -> None:
        """After a write by this process's log (any thread): refresh soon, once for a burst of writes."""
        if self._closed:
            return
        with self._timer_lock:
            if self._timer is None:
                self._timer = threading.Timer(_AUTO_REFRESH_S, self._auto_refresh)
                self._timer.daemon = True
                self._timer.start()

    def close(self) -> None:
        """Stop following the log's writes (the widgets stay as they are)."""
        self._closed = True
        self.log.off_write(self._listener)
        with self._timer_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _update_options(self) -> None:
        """Filter choices from the values in the log (keeping what is selected)."""
        with self._quietly():
            for name, control in self.filters.items():
                column = self.frame.get(name)
                if column is None:
                    values: list[str] = []
                elif hasattr(column, "cat") and name != "status":
                    values = [str(v) for v in column.cat.categories]  # every allowed value
                else:
                    values = sorted(str(v) for v in column.dropna().unique())
                if tuple(values) != tuple(control.options):
                    kept = tuple(v for v in control.value if v in values)
                    control.options = values
                    control.value = kept
            counts = self.frame["sweep_id"].value_counts(sort=False) if len(self.frame) else {}
            sweeps = [("any sweep", "")] + [(f"{sid} ({n})", str(sid)) for sid, n in dict(counts).items()]
            if sweeps != list(self.sweep.options):
                value = self.sweep.value if self.sweep.value in {v for _, v in sweeps} else ""
                self.sweep.options = sweeps
                self.sweep.value = value

    @contextmanager
    def _quietly(self) -> Iterator[None]:
        self._quiet, before = True, self._quiet
        try:
            yield
        finally:
            self._quiet = before

    # --- filtering and paging ------------------------------------------------------------------------

    def criteria(self) -> _Criteria:
        """The filters as set in the controls; ValueError for a date range that ends before it starts."""
        start, end = self.start.value, self.end.value
        if start is not None and end is not None and end < start:
            raise ValueError(f"the date range ends ({end}) before it starts ({start}): no run can match")
        return _Criteria(
            choices={name: tuple(control.value) for name, control in self.filters.items()},
            prompt=self.prompt.value.strip(),
            sweep=self.sweep.value or "",
            start=start,
            end=end,
        )

    def _on_filter(self, _change: Any) -> None:
        with self._lock:  # see _on_select
            if self._quiet:
                return
            self.page = 0
            try:
                self.refresh()
            except Exception as exc:  # shown in the widget, never a traceback
                self._say(str(exc), error=True)

    def _apply(self) -> None:
        """Filter (vectorised) and redraw the current page."""
        import numpy as np

        try:
            mask = filter_mask(self.frame, self.criteria())
        except ValueError as exc:
            mask = np.zeros(len(self.frame), dtype=bool)
            self._say(str(exc), error=True)
            self._filter_problem = True
        else:
            if self._filter_problem:  # the filters are fine again: their old complaint goes
                self._say("")
                self._filter_problem = False
        self._positions = np.flatnonzero(mask)[::-1]  # newest first
        self.page = min(self.page, self.pages - 1)
        self._draw()

    @property
    def count(self) -> int:
        """How many runs match the filters."""
        return 0 if self._positions is None else len(self._positions)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.count / self.page_size))

    @property
    def matches(self) -> pd.DataFrame:
        """The matching rows in log order, with ``log.df``'s columns (what Export writes)."""
        return self.frame.iloc[self._positions[::-1]]

    def go(self, page: int) -> None:
        """Show page ``page`` (counted from 0; clamped to the pages there are)."""
        with self._lock:
            self.page = min(max(page, 0), self.pages - 1)
            self._draw()

    def _page_rows(self) -> list[dict[str, Any]]:
        start = self.page * self.page_size
        positions = self._positions[start : start + self.page_size]
        if not len(positions):
            return []
        columns = [c for c in _CARD_COLUMNS if c in self.frame]
        return list(self.frame.iloc[positions][columns].to_dict("records"))

    def _draw(self) -> None:
        """Fill the cards of the current page (only these: the redraw costs the same for any log size)."""
        rows = self._page_rows()
        with self._quietly():
            for index, card in enumerate(self.cards):
                if index < len(rows):
                    row = rows[index]
                    card.run_id = row["run_id"]
                    card.thumb.value = self._thumbs.tag(row)
                    card.caption.value = _caption(row)
                    card.select.value = row["run_id"] in self.selected
                    card.box.layout.display = None
                else:
                    card.run_id = None
                    card.box.layout.display = "none"
        self.page_label.value = (
            f"&nbsp;page {self.page + 1} of {self.pages}, {self.count} run{'s' * (self.count != 1)} match"
            f"{'es' * (self.count == 1)}&nbsp;"
        )
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= self.pages - 1
        self._update_rerun_button()

    # --- selection: one opens its 3D view, two their diff and a linked comparison --------------------

    def _on_select(self, card: _Card) -> None:
        # Under the lock: a background refresh redrawing the cards (quietly) finishes first, so a user's
        # tick is never mistaken for the browser's own.
        with self._lock:
            if self._quiet or card.run_id is None:
                return
            chosen = list(self.selected)
            if card.select.value and card.run_id not in chosen:
                chosen = [*chosen, card.run_id][-2:]  # a third selection drops the oldest
            elif not card.select.value and card.run_id in chosen:
                chosen.remove(card.run_id)
            self.select(*chosen)

    def select(self, *run_ids: str) -> None:
        """Select runs by id (as ticking their cards does; the last two count), then open them."""
        with self._lock:
            self.selected = list(dict.fromkeys(run_ids))[-2:]
            with self._quietly():
                for card in self.cards:
                    if card.run_id is not None:
                        card.select.value = card.run_id in self.selected
            self._update_rerun_button()
            try:
                self.open_selected()
            except Exception as exc:  # a missing or unreadable file: say so, keep the browser usable
                self._say(str(exc), error=True)

    def clear_selection(self) -> None:
        self.select()

    def open_selected(self) -> None:
        """One selected run: its 3D view. Two: the diff table and a side-by-side view, cameras linked."""
        from .viewer import compare, show

        self.view, self.diff_table = None, None
        self.diff_html.value = ""
        self.detail.children = []
        if not self.selected:
            self._say("")
            return
        if len(self.selected) == 1:
            self.view = show(self._target(self.selected[0]))
            self.detail.children = [self.view]
            self._say(f"run <code>{html.escape(self.selected[0])}</code>", escape=False)
            return
        a, b = self.selected
        self.diff_table = self.log.diff(a, b)
        self.diff_html.value = _diff_html(self.diff_table)
        self.detail.children = [self.diff_html]
        labels = [f"{run_id} · {self._label(run_id)}" for run_id in self.selected]
        self.view = compare([self._target(a), self._target(b)], labels=labels)
        self.detail.children = [self.diff_html, self.view]
        self._say("")

    def _row(self, run_id: str) -> dict[str, Any]:
        return self.log.get(run_id)

    def _label(self, run_id: str) -> str:
        params = self._row(run_id).get("params") or {}
        return " · ".join(f"{k}={params[k]}" for k in ("seed", "tier", "quality") if k in params)

    def _target(self, run_id: str) -> Any:
        """What the viewer opens: the client's Run when there is a client, else the GLB on disk."""
        from .errors import AssetError

        if self.client is not None:
            return self.client.run(run_id)
        row = self._row(run_id)
        glb = _glb_of(self.log.workspace, row)
        if glb is None:
            reason = f": {row['error']}" if row.get("error") else ""
            raise AssetError(f"run {run_id} has no GLB file (status {row['status']}{reason})")
        return glb

    # --- re-run ----------------------------------------------------------------------------------------

    def _update_rerun_button(self) -> None:
        if self.client is None:
            self.rerun_button.disabled = True
            self.rerun_button.tooltip = (
                "re-running needs a client: open the browser as rn.LogBrowser(client.log) "
                "(this log was opened without one)"
            )
        elif len(self.selected) != 1:
            self.rerun_button.disabled = True
            self.rerun_button.tooltip = "select one run to re-run it with changes"
        else:
            self.rerun_button.disabled = False
            self.rerun_button.tooltip = "open a form filled from this run (" + _IMAGES_NOTE + ")"

    def rerun(self) -> Any:
        """Open a ``GenerateForm`` filled from the selected run's parameters (images aside)."""
        import ipywidgets as widgets

        from .form import GenerateForm

        if self.client is None or len(self.selected) != 1:
            raise ValueError(self.rerun_button.tooltip)
        row = self._row(self.selected[0])
        names = set(self.client.schema.names)
        params = {k: v for k, v in (row.get("params") or {}).items() if k in names and k != "images"}
        self.form = GenerateForm(self.client, **params)
        form_widget = getattr(self.form, "widget", self.form)
        head = widgets.HTML(f"re-run of <code>{html.escape(row['run_id'])}</code>: change and Generate")
        self.detail.children = [head, form_widget] if isinstance(form_widget, widgets.Widget) else [head]
        used = (row.get("params") or {}).get("images")
        note = f"this run used {len(used) if isinstance(used, list) else 1} image(s); " if used else ""
        self._say(f"note: {note}{_IMAGES_NOTE}")
        return self.form

    # --- export ----------------------------------------------------------------------------------------

    def export(self, path: str | None = None) -> Path:
        """Write the matching rows to ``path`` (default: the export box), CSV or Parquet by the suffix."""
        from .logframe import export_frame

        name = (path if path is not None else self.export_path.value).strip()
        if not name:
            raise ValueError("type a file name ending in .csv or .parquet to export to")
        target = Path(name).expanduser()
        if target.suffix.lower() not in (".csv", ".parquet"):
            raise ValueError(f"cannot export to {target.name!r}: use a .csv or .parquet file name")
        rows = self.matches
        try:
            export_frame(rows, target)
        except MissingExtra as exc:
            raise ImportError(f"{exc}, or export to .csv") from None
        except ImportError as exc:  # pyarrow is there but pandas cannot use it (a version mismatch)
            if target.suffix.lower() == ".parquet":
                raise ImportError(f"{_PARQUET_HINT} ({exc})") from None
            raise
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(target) else ""
            raise OSError(f"cannot write {target}: {exc.strerror or exc}{where}") from exc
        plural = "s" * (len(rows) != 1)
        self._say(f"wrote {len(rows)} run{plural} to <code>{html.escape(str(target))}</code>", escape=False)
        return target

    # --- messages and displays -------------------------------------------------------------------------

    def _click(self, button: Any, action: Callable[[], Any]) -> None:
        """Run a button's action: disabled while it works, problems in the message line."""
        button.disabled = True
        try:
            action()
        except Exception as exc:  # shown to the user in the widget instead of a traceback
            self._say(str(exc), error=True)
        finally:
            button.disabled = False
            if button is self.rerun_button:
                self._update_rerun_button()

    def _say(self, text: str, *, error: bool = False, escape: bool = True) -> None:
        body = html.escape(text) if escape else text
        self.message.value = f'<span style="color:#cf222e">{body}</span>' if error and text else body

    def static_html(self) -> str:
        """The current page as a plain table with thumbnails (nbconvert, GitHub: no widgets there)."""
        cells = []
        for row in self._page_rows():
            cost = "" if _missing(row.get("cost")) else f"{row['cost']:g}"
            seed = "" if _missing(row.get("seed")) else str(row["seed"])
            cells.append(
                f"<tr><td>{self._thumbs.tag(row, 64)}</td><td><code>{html.escape(row['run_id'])}</code></td>"
                f"<td>{_badge(str(row['status']))}</td><td>{html.escape(_short(row.get('prompt')))}</td>"
                f"<td>{seed}</td><td>{html.escape(str(row.get('tier') or ''))}</td>"
                f"<td>{html.escape(str(row.get('quality') or ''))}</td><td>{cost}</td></tr>"
            )
        head = (
            "<tr><th></th><th>run</th><th>status</th><th>prompt</th><th>seed</th><th>tier</th>"
            "<th>quality</th><th>cost</th></tr>"
        )
        caption = html.escape(f"LogBrowser {self.log.workspace}: {self._summary()}")
        return f"<table><caption>{caption}</caption>{head}{''.join(cells)}</table>"

    def _summary(self) -> str:
        return f"page {self.page + 1} of {self.pages}, {self.count} of {len(self.frame)} runs match"

    def __repr__(self) -> str:
        return f"LogBrowser({str(self.log.workspace)!r}: {self._summary()})"

    def static_bundle(self) -> dict[str, Any]:
        return {"text/plain": repr(self), "text/html": self.static_html()}

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The live browser and its static copy in one output (IPython in a kernel uses
        ``_ipython_display_``: the browser and a separate static output, :mod:`rodin_nb.statics`)."""
        data = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        data.update(self.static_bundle())
        return data

    def _ipython_display_(self) -> None:
        from .statics import show

        show(self.widget, self.static_bundle, fallback=self._repr_mimebundle_)


def _caption(row: dict[str, Any]) -> str:
    seed = "" if _missing(row.get("seed")) else f"seed {row['seed']}"
    cost = "" if _missing(row.get("cost")) else f"{row['cost']:g} CU"
    tier = "" if _missing(row.get("tier")) else str(row["tier"])
    quality = "" if _missing(row.get("quality")) else str(row["quality"])
    return (
        f'<div style="font-size:85%;line-height:1.3" title="{html.escape(str(row["run_id"]))}">'
        f"{html.escape(_short(row.get('prompt'), 32))}<br>{seed} · {html.escape(tier)} · "
        f"{html.escape(quality)}<br>{_badge(str(row['status']))} {cost}</div>"
    )


def _diff_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<i>the two runs have the same parameters and results</i>"
    return str(frame.to_html(escape=True, na_rep="", border=0))


def _write_listener(browser: LogBrowser) -> Callable[[str], None]:
    """The log's write callback, holding the browser weakly (a browser nobody keeps does no work)."""
    ref = weakref.ref(browser)

    def heard(_run_id: str) -> None:
        target = ref()
        if target is not None:
            target._heard_write()

    return heard
