"""The view widgets: :class:`View` (one model) and :class:`Grid` (a comparison with linked cameras).

Both are stock ipywidgets boxes around pythreejs ``Renderer``s, plus a toolbar (reset view, wireframe,
flat shading, textures, dark background), a title and a stats line per cell.

Browsers give a page about 8 live WebGL contexts, and pythreejs freezes the oldest renderer into a
snapshot when a ninth appears. A grid therefore owns at most ``max_live`` renderers (6 by default,
leaving room for a couple of other views on the page) and pages through its cells when it has more:
the renderers stay, the models inside them change. A cell without a model (a failed run, a missing
combination) says so in words, so no view is ever silently blank.

Cameras in a grid are linked in the front end (``jslink`` on position, orientation and orbit target):
orbit or zoom one cell and the others follow when the gesture ends, without a round trip to the kernel.

Without a widget front end (nbconvert HTML, GitHub) the display falls back to the preview image and
the stats: ``_repr_mimebundle_`` adds ``image/png`` and ``text/html`` next to the widget view.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import ipywidgets as w
import numpy as np
import pythreejs as p3

from ..errors import AssetError
from ..preview import preview_png
from ..status import TERMINAL
from ._load import Model, load_model
from ._three import FOV, Built, CameraPose, build, environment_texture, headlight, lights, pose_for

__all__ = ["Grid", "View"]

Background = Literal["light", "dark"]
_BACKGROUNDS = {"light": "#f3f4f6", "dark": "#1f2328"}
_TEXT = {"light": "#57606a", "dark": "#8b949e"}

#: Parameters shown in labels, in this order, when they differ between runs (wire names).
LABEL_PARAMS = ("seed", "tier", "quality", "material", "useHyper", "TAPose", "conditionMode", "prompt")

DEFAULT_MAX_LIVE = 6

# The static table's inline styles: notebook CSS centres tables, right-aligns and stripes their cells.
_TABLE = "border-collapse:collapse;margin:0;table-layout:auto;width:auto"
_TR = "background:transparent"
_TD = "text-align:left;vertical-align:top;padding:4px 8px 4px 0;border:none"
_STATS = "font-size:12px;color:#57606a;text-align:left"
_TH = "text-align:left;vertical-align:top;padding:4px 8px 4px 0;border:none;font-weight:600"


# --------------------------------------------------------------------------- items


def _is_run(target: Any) -> bool:
    return hasattr(target, "glb") and hasattr(target, "run_id") and hasattr(target, "params")


@dataclass(eq=False)
class _Item:
    """One thing to show: a run, a path or GLB bytes; loaded and built on first use."""

    target: Any
    label: str = ""
    model: Model | None = None
    built: Built | None = None
    error: str | None = None
    _preview: bytes | None = field(default=None, repr=False)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.target.params) if _is_run(self.target) else {}

    def source(self) -> bytes | Path:
        """The GLB to read; AssetError with the reason when there is none."""
        target = self.target
        if _is_run(target):
            glb = target.glb
            if glb is None:
                status = getattr(target, "status", "?")
                reason = f" ({target.error})" if getattr(target, "error", None) else ""
                hint = " wait for it with run.wait()" if status not in TERMINAL else ""
                raise AssetError(
                    f"run {target.run_id} has no GLB file: status {status}{reason};{hint}".rstrip(";")
                )
            return Path(glb)
        if isinstance(target, (bytes, bytearray, memoryview)):
            return bytes(target)
        return Path(target)

    def load(self) -> Model:
        if self.model is None:
            source = self.source()
            # Messages name a file by its path; GLB bytes by the label the user sees.
            self.model = load_model(source, name=None if isinstance(source, Path) else self.label or None)
        return self.model

    def preview(self, size: int) -> bytes | None:
        """The service's preview for a run, else an offline render; None when there is nothing to draw."""
        if self._preview is None:
            try:
                self._preview = preview_png(self.target if _is_run(self.target) else self.source(), size)
            except (AssetError, OSError, RuntimeError, ValueError):
                return None
        return self._preview


def _check_target(target: Any) -> None:
    if _is_run(target) or isinstance(target, (bytes, bytearray, memoryview, str, os.PathLike)):
        return
    raise TypeError(
        f"cannot show {type(target).__name__!r}: pass a rodin_nb Run, a path to a GLB/glTF (or any "
        "format trimesh reads), or GLB bytes"
    )


def _fmt(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def auto_labels(items: Sequence[_Item]) -> list[str]:
    """Labels from the parameters that differ between runs (seed, tier, ...), else file or run names."""
    params = [item.params for item in items]
    varying = [
        key
        for key in LABEL_PARAMS
        if len({repr(p.get(key)) for p in params}) > 1 and any(key in p for p in params)
    ]
    labels = []
    for number, (item, p) in enumerate(zip(items, params, strict=True), start=1):
        if varying and p:
            labels.append(" · ".join(f"{key}={_fmt(p.get(key))}" for key in varying))
        elif _is_run(item.target):
            labels.append(f"{item.target.run_id}" + (f" · seed={p['seed']}" if "seed" in p else ""))
        elif isinstance(item.target, (str, os.PathLike)):
            labels.append(Path(item.target).name)
        else:
            labels.append(f"model {number}")
    return labels


def single_label(item: _Item) -> str:
    if _is_run(item.target):
        p = item.params
        bits = [f"{key}={_fmt(p[key])}" for key in ("seed", "tier", "quality", "material") if key in p]
        prompt = p.get("prompt")
        head = f"“{_fmt(prompt)}”" if prompt else item.target.run_id
        return " · ".join([head, *bits])
    if isinstance(item.target, (str, os.PathLike)):
        return Path(item.target).name
    return "GLB"


# --------------------------------------------------------------------------- one cell


class _Cell:
    """One renderer slot: scene with lights and camera, orbit controls, title, stats and a message."""

    def __init__(self, width: int, height: int, background: Background) -> None:
        self.width, self.height = width, height
        self.camera = p3.PerspectiveCamera(
            fov=FOV, aspect=width / height, near=0.01, far=100.0, children=[headlight()]
        )
        self.slot = p3.Group(name="model")
        # The scene's background is what three.js clears to (pythreejs defaults it to white).
        self.scene = p3.Scene(
            children=[self.camera, *lights(), self.slot], background=_BACKGROUNDS[background]
        )
        self.controls = p3.OrbitControls(
            controlling=self.camera, target=(0.0, 0.0, 0.0), minDistance=0.05, maxDistance=60.0
        )
        self.renderer = p3.Renderer(
            camera=self.camera,
            scene=self.scene,
            controls=[self.controls],
            width=width,
            height=height,
            antialias=True,
            gammaOutput=True,
            gammaFactor=2.2,
        )
        self.title = w.HTML(layout=w.Layout(width=f"{width}px", overflow="hidden"))
        self.stats = w.HTML(layout=w.Layout(width=f"{width}px", overflow="hidden"))
        self.message = w.HTML(
            layout=w.Layout(
                width=f"{width}px",
                height=f"{height}px",
                display="none",
                border="1px dashed #d0d7de",
                align_items="center",
                justify_content="center",
            )
        )
        self.box = w.VBox(
            [self.title, self.renderer, self.message, self.stats], layout=w.Layout(margin="2px")
        )
        self.item: _Item | None = None

    def show(self, item: _Item | None, title: str, background: Background, note: str = "") -> None:
        self.item = item
        colour = _TEXT[background]
        safe = html.escape(title)
        self.title.value = f'<div style="font-weight:600;white-space:nowrap" title="{safe}">{safe}</div>'
        built = item.built if item is not None else None
        if built is not None and item is not None and item.model is not None:
            self.slot.children = (built.group,)
            self.renderer.layout.display = None
            self.message.layout.display = "none"
            stats = item.model.stats
            detail = html.escape(f"bbox min {_vec(stats.bounds[0])} max {_vec(stats.bounds[1])}")
            self.stats.value = (
                f'<div style="font-size:12px;color:{colour};line-height:1.3" title="{detail}">'
                f"{html.escape(stats.line())}</div>"
            )
        else:
            self.slot.children = ()
            self.renderer.layout.display = "none"
            self.message.layout.display = "flex"
            text = note or (item.error if item is not None and item.error else "nothing to show")
            style = f"padding:12px;color:{colour};font-size:13px;text-align:center"
            self.message.value = f'<div style="{style}">{html.escape(text)}</div>'
            self.stats.value = ""

    def hide(self) -> None:
        self.item = None
        self.slot.children = ()
        self.box.layout.display = "none"

    def unhide(self) -> None:
        self.box.layout.display = None

    def apply(self, pose: CameraPose) -> None:
        with self.camera.hold_sync():
            self.camera.position = pose.position
            self.camera.quaternion = pose.quaternion
            self.camera.near = pose.near
            self.camera.far = pose.far
            self.camera.zoom = 1.0
        self.controls.target = pose.target


def _vec(v: Sequence[float]) -> str:
    return "(" + ", ".join(f"{x:.4g}" for x in v) + ")"


# --------------------------------------------------------------------------- grid


@dataclass
class _Layout:
    """Where each item sits: a rows x cols table of item indices (None: empty), with optional headers."""

    table: list[list[int | None]]
    row_headers: list[str] | None = None
    col_headers: list[str] | None = None

    @property
    def rows(self) -> int:
        return len(self.table)

    @property
    def cols(self) -> int:
        return len(self.table[0]) if self.table else 0


def shape_for(n: int, rows: int | None, cols: int | None) -> tuple[int, int]:
    """A rows x cols shape for n cells: as asked, else near-square (2x2 for four, one row up to three)."""
    if (rows is not None and rows < 1) or (cols is not None and cols < 1):
        raise ValueError(f"rows and cols must be positive, got rows={rows}, cols={cols}")
    if rows and cols:
        if rows * cols < n:
            raise ValueError(f"a {rows}x{cols} grid has {rows * cols} cells, fewer than the {n} models given")
        return rows, cols
    if cols:
        return math.ceil(n / cols), cols
    if rows:
        return rows, math.ceil(n / rows)
    c = n if n <= 3 else (2 if n == 4 else min(4, math.ceil(math.sqrt(n))))
    return math.ceil(n / c), c


class Grid(w.VBox):
    """Several 3D views side by side with linked cameras: orbit one, all follow.

    Build it with :func:`rodin_nb.compare` (or :func:`rodin_nb.viewer.compare_runs` to arrange runs by
    two parameters). Attributes: ``cells`` (the live renderer slots), ``page`` (current page, counted
    from 0 like any Python index, settable; the pager shows it counted from 1), ``pages``, ``toolbar``
    (the controls), ``items_built()`` (models built so far).
    """

    def __init__(
        self,
        items: list[_Item],
        layout: _Layout,
        *,
        width: int = 320,
        height: int = 260,
        background: Background = "light",
        wireframe: bool = False,
        flat: bool = False,
        textures: bool = True,
        max_live: int = DEFAULT_MAX_LIVE,
        scale: Literal["each", "shared"] = "each",
        static: bool = True,
        title: str | None = None,
    ) -> None:
        if background not in _BACKGROUNDS:
            raise ValueError(f"background must be 'light' or 'dark', got {background!r}")
        if scale not in ("each", "shared"):
            raise ValueError(f"scale must be 'each' or 'shared', got {scale!r}")
        if not 1 <= max_live <= 8:
            raise ValueError(
                f"max_live must be between 1 and 8 (browsers allow about 8 WebGL views), got {max_live}"
            )
        for size, name in ((width, "width"), (height, "height")):
            if not 64 <= size <= 4096:
                raise ValueError(f"{name} must be between 64 and 4096 pixels, got {size}")
        self._items = items
        self._layout = layout
        self._background: Background = background
        self._state = {"wireframe": wireframe, "flat": flat, "textures": textures}
        self._scale = scale
        self._static = static
        self._size = (width, height)
        self._env = environment_texture()
        self._pose: CameraPose | None = None

        # Pages: blocks of whole rows (and of columns when one row alone is too wide).
        cols_shown = min(layout.cols, max_live)
        rows_shown = max(1, min(layout.rows, max_live // cols_shown))
        self._window = (rows_shown, cols_shown)
        self._pages = [
            (r, c) for r in range(0, layout.rows, rows_shown) for c in range(0, layout.cols, cols_shown)
        ]
        self.cells = [_Cell(width, height, background) for _ in range(rows_shown * cols_shown)]
        self._links = self._link_cameras()

        self.toolbar = self._make_toolbar(wireframe, flat, textures, background)
        self._errors = w.Output()
        self._status = w.HTML()
        self._prev = w.Button(description="◀", tooltip="previous page", layout=w.Layout(width="36px"))
        self._next = w.Button(description="▶", tooltip="next page", layout=w.Layout(width="36px"))
        self._prev.on_click(lambda _: self._turn(-1))
        self._next.on_click(lambda _: self._turn(+1))
        pager = w.HBox([self._prev, self._next, self._status], layout=w.Layout(align_items="center"))
        if len(self._pages) == 1:
            pager.layout.display = "none"
        self._row_heads = [w.HTML() for _ in range(rows_shown)] if layout.row_headers else []
        self._col_heads = [w.HTML() for _ in range(cols_shown)] if layout.col_headers else []
        heading = [w.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        super().__init__([*heading, self.toolbar, pager, self._grid_box(), self._errors])
        self._page = -1
        self.page = 0

    # --- structure -----------------------------------------------------------------------------

    def _grid_box(self) -> w.GridBox:
        rows_shown, cols_shown = self._window
        children: list[w.Widget] = []
        template_cols = " ".join([f"{self._size[0] + 4}px"] * cols_shown)  # cells keep their size
        if self._row_heads:
            template_cols = "max-content " + template_cols
        if self._col_heads:
            if self._row_heads:
                children.append(w.HTML(""))
            children.extend(self._col_heads)
        for r in range(rows_shown):
            if self._row_heads:
                children.append(self._row_heads[r])
            children.extend(cell.box for cell in self.cells[r * cols_shown : (r + 1) * cols_shown])
        return w.GridBox(
            children,
            layout=w.Layout(grid_template_columns=template_cols, grid_gap="4px", align_items="center"),
        )

    def _link_cameras(self) -> list[Any]:
        """Front-end links between neighbouring cells' cameras and orbit targets (a chain reaches all)."""
        links = []
        for a, b in zip(self.cells, self.cells[1:], strict=False):
            for attr in ("position", "quaternion", "zoom"):
                links.append(w.jslink((a.camera, attr), (b.camera, attr)))
            links.append(w.jslink((a.controls, "target"), (b.controls, "target")))
        return links

    def _make_toolbar(self, wireframe: bool, flat: bool, textures: bool, background: Background) -> w.HBox:
        def toggle(description: str, value: bool, tooltip: str, icon: str) -> w.ToggleButton:
            return w.ToggleButton(
                value=value,
                description=description,
                tooltip=tooltip,
                icon=icon,
                layout=w.Layout(width="auto"),
            )

        self.reset_button = w.Button(
            description="Reset view",
            icon="home",
            tooltip="back to the initial camera",
            layout=w.Layout(width="auto"),
        )
        self.wireframe_button = toggle("Wireframe", wireframe, "draw triangle edges only", "cube")
        self.flat_button = toggle("Flat", flat, "flat shading (facets) instead of smooth normals", "square-o")
        self.textures_button = toggle(
            "Textures", textures, "texture maps on/off (off: material colours only)", "image"
        )
        self.dark_button = toggle("Dark", background == "dark", "dark background", "moon-o")
        self.reset_button.on_click(lambda _: self._guarded(self.reset_button, self.reset_view))
        self.wireframe_button.observe(
            lambda ch: self._toggle("wireframe", ch["new"], self.wireframe_button), "value"
        )
        self.flat_button.observe(lambda ch: self._toggle("flat", ch["new"], self.flat_button), "value")
        self.textures_button.observe(
            lambda ch: self._toggle("textures", ch["new"], self.textures_button), "value"
        )
        self.dark_button.observe(
            lambda ch: self._guarded(
                self.dark_button, lambda: self.set_background("dark" if ch["new"] else "light")
            ),
            "value",
        )
        hint = w.HTML(
            '<span style="font-size:12px;color:#6e7781">drag: orbit · wheel: zoom · right-drag: pan</span>',
            layout=w.Layout(margin="0 0 0 8px"),
        )
        return w.HBox(
            [
                self.reset_button,
                self.wireframe_button,
                self.flat_button,
                self.textures_button,
                self.dark_button,
                hint,
            ],
            layout=w.Layout(align_items="center", flex_flow="row wrap"),
        )

    # --- callbacks -------------------------------------------------------------------------------

    def _guarded(self, button: w.Widget, action: Callable[[], None]) -> None:
        """Run a toolbar action with its button disabled; errors go to the output area, not the log."""
        button.disabled = True
        try:
            with self._errors:
                action()
        finally:
            button.disabled = False

    def _toggle(self, name: str, value: bool, button: w.Widget) -> None:
        self._guarded(button, lambda: self._set_state(name, value))

    def _set_state(self, name: str, value: bool) -> None:
        self._state[name] = value
        for built in self.items_built():
            self._apply_state(built, only=name)

    def _apply_state(self, built: Built, only: str | None = None) -> None:
        if only in (None, "wireframe"):
            built.set_wireframe(self._state["wireframe"])
        if only in (None, "flat") and (only or self._state["flat"]):
            built.set_flat(self._state["flat"])
        if only in (None, "textures") and (only or not self._state["textures"]):
            built.set_textures(self._state["textures"])

    # --- public API ------------------------------------------------------------------------------

    @property
    def pages(self) -> int:
        return len(self._pages)

    @property
    def page(self) -> int:
        return self._page

    @page.setter
    def page(self, number: int) -> None:
        if not 0 <= number < len(self._pages):
            raise ValueError(f"page must be between 0 and {len(self._pages) - 1}, got {number}")
        if number == self._page:
            return
        self._page = number
        self._show_page()

    def items_built(self) -> list[Built]:
        return [item.built for item in self._items if item.built is not None]

    def reset_view(self) -> None:
        """Put every camera back to the initial three-quarter view."""
        if self._pose is not None:
            for cell in self.cells:
                cell.apply(self._pose)

    def set_background(self, background: Background) -> None:
        if background not in _BACKGROUNDS:
            raise ValueError(f"background must be 'light' or 'dark', got {background!r}")
        self._background = background
        for cell in self.cells:
            cell.scene.background = _BACKGROUNDS[background]
        self._show_page(keep_camera=True)

    @property
    def state(self) -> dict[str, Any]:
        """Current toggles: wireframe, flat, textures, background."""
        return {**self._state, "background": self._background}

    # --- pages -----------------------------------------------------------------------------------

    def _turn(self, step: int) -> None:
        self._guarded(
            self._next if step > 0 else self._prev,
            lambda: setattr(self, "page", (self._page + step) % len(self._pages)),
        )

    def _build(self, item: _Item) -> None:
        if item.built is not None or item.error is not None:
            return
        try:
            model = item.load()
        except AssetError as exc:
            item.error = str(exc)
            return
        built = build(model, self._env)
        if self._scale == "shared":
            _rescale(built, self._shared_radius())
        self._apply_state(built)
        item.built = built

    def _shared_radius(self) -> float:
        radii = []
        for item in self._items:
            try:
                model = item.load()
            except AssetError:
                continue
            lo, hi = model.bounds
            radii.append(float(np.linalg.norm(hi - lo)) / 2)
        return max(radii, default=1.0)

    def _show_page(self, keep_camera: bool = False) -> None:
        r0, c0 = self._pages[self._page]
        rows_shown, cols_shown = self._window
        layout = self._layout
        boxes: list[np.ndarray] = []
        for k, cell in enumerate(self.cells):
            r, c = r0 + k // cols_shown, c0 + k % cols_shown
            if r >= layout.rows or c >= layout.cols:
                cell.hide()
                continue
            cell.unhide()
            index = layout.table[r][c]
            if index is None:
                where = _where(layout, r, c)
                if where:  # a missing combination in a parameter table says so
                    cell.show(None, "", self._background, note=f"no run for {where}")
                else:  # the unused tail of a plain grid
                    cell.hide()
                continue
            item = self._items[index]
            self._build(item)
            cell.show(item, item.label, self._background)
            if item.built is not None:
                boxes.append(item.built.bounds_unit)
        _show_heads(self._col_heads, layout.col_headers, c0, layout.cols, "text-align:center;font-weight:600")
        _show_heads(self._row_heads, layout.row_headers, r0, layout.rows, "font-weight:600;padding-right:6px")
        if not keep_camera:
            self._pose = pose_for(boxes, self._size[0] / self._size[1])
            self.reset_view()
        self._status.value = (
            f'<span style="font-size:12px;color:#57606a">page {self._page + 1} of {len(self._pages)}: '
            f"rows {r0 + 1}-{min(r0 + rows_shown, layout.rows)} of {layout.rows}"
            + (
                f", columns {c0 + 1}-{min(c0 + cols_shown, layout.cols)} of {layout.cols}"
                if layout.cols > cols_shown
                else ""
            )
            + f" (at most {len(self.cells)} live 3D views at once: browsers allow about 8 per page)</span>"
        )

    # --- static fallback -------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """One output holding everything: the widget view, ``text/html`` and ``image/png``.

        IPython in a kernel uses ``_ipython_display_`` instead (the widget and a separate static
        output, see :mod:`rodin_nb.statics`); this bundle is for other callers.
        """
        data = super()._repr_mimebundle_(**kwargs)
        if not self._static or not isinstance(data, dict):
            return data
        data.update(self.static_bundle())
        return data

    def _ipython_display_(self) -> None:
        from ..statics import show

        show(self, self.static_bundle if self._static else None, fallback=self._repr_mimebundle_)

    def static_bundle(self) -> dict[str, Any]:
        """The display without a widget front end: ``text/html`` (previews, labels, stats for every
        cell), ``image/png`` (the preview, or a contact sheet for grids) and ``text/plain``."""
        data: dict[str, Any] = {"text/html": self.static_html(), "text/plain": self._static_text()}
        sheet = self.static_png()
        if sheet is not None:
            data["image/png"] = base64.b64encode(sheet).decode("ascii")
        return data

    def _static_text(self) -> str:
        kind = "3D view" if len(self._items) == 1 else f"comparison grid of {len(self._items)} models"
        return f"rodin_nb {kind}: " + "; ".join(item.label for item in self._items)

    def _preview_size(self) -> int:
        return 200 if len(self._items) > 1 else 320

    def static_html(self) -> str:
        """The display without a widget front end: preview images, labels and stats (a table for grids).

        Inline styles pin everything to the left: notebook front ends centre tables and right-align
        their cells (JupyterLab's and nbconvert's CSS), which pushed the previews away from their titles.
        Front ends that strip styles (GitHub) still get a plain table.
        """
        size = self._preview_size()
        note = (
            '<div style="font-size:11px;color:#6e7781;margin-top:4px">static preview: run the notebook with '
            "ipywidgets and pythreejs for the interactive 3D view</div>"
        )
        if len(self._items) == 1 and self._layout.rows == 1 and self._layout.cols == 1:
            return f'<div style="text-align:left">{self._static_cell(self._items[0], size)}</div>{note}'
        layout = self._layout
        th = f"<th style='{_TH}'>"
        head = ""
        if layout.col_headers:
            corner = f"{th}</th>" if layout.row_headers else ""
            head = (
                "<tr>" + corner + "".join(f"{th}{html.escape(h)}</th>" for h in layout.col_headers) + "</tr>"
            )
        rows = []
        for r, row in enumerate(layout.table):
            cells = [f"{th}{html.escape(layout.row_headers[r])}</th>"] if layout.row_headers else []
            for c, index in enumerate(row):
                if index is None:
                    where = _where(layout, r, c)
                    cells.append(
                        f"<td style='{_TD}'><i>{html.escape('no run for ' + where if where else '')}</i></td>"
                    )
                    continue
                cells.append(f"<td style='{_TD}'>{self._static_cell(self._items[index], size)}</td>")
            rows.append(f"<tr style='{_TR}'>" + "".join(cells) + "</tr>")
        return (
            f'<table class="rodin-nb-static-grid" style="{_TABLE}">'
            + head
            + "".join(rows)
            + "</table>"
            + note
        )

    def _static_cell(self, item: _Item, size: int) -> str:
        png = item.preview(size)
        img = (
            f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" width="{size}" '
            f'height="{size}" alt="{html.escape(item.label)}" style="display:block;margin:0">'
            if png
            else ""
        )
        try:
            stats = item.load().stats.line()
        except AssetError as exc:
            item.error = item.error or str(exc)
            stats = ""
        text = html.escape(stats or item.error or "")
        return (
            f'<div style="font-weight:600;text-align:left">{html.escape(item.label)}</div>{img}'
            f'<div style="{_STATS};max-width:{max(size, 320)}px">{text}</div>'
        )

    def static_png(self) -> bytes | None:
        """A contact sheet of the previews (one image, for front ends that only show images)."""
        from PIL import Image, ImageDraw

        size = self._preview_size()
        if len(self._items) == 1:
            return self._items[0].preview(size)  # the preview itself: the service's image for a run
        layout = self._layout
        pad = 18
        sheet = Image.new("RGB", (layout.cols * size, layout.rows * (size + pad)), "white")
        draw = ImageDraw.Draw(sheet)
        any_image = False
        for r, row in enumerate(layout.table):
            for c, index in enumerate(row):
                if index is None:
                    continue
                item = self._items[index]
                x, y = c * size, r * (size + pad)
                # The cell's place in the grid (e.g. "seed=1, tier=Sketch") says more than a run id.
                label = _where(layout, r, c) or item.label
                draw.text((x + 4, y + 3), label[: size // 6], fill=(40, 40, 40))
                png = item.preview(size)
                if png is None:
                    draw.text(
                        (x + 4, y + pad + size // 2),
                        (item.error or "no preview")[: size // 6],
                        fill=(150, 30, 30),
                    )
                    continue
                with Image.open(io.BytesIO(png)) as image:
                    sheet.paste(image.convert("RGB").resize((size, size)), (x, y + pad))
                any_image = True
        if not any_image:
            return None
        buf = io.BytesIO()
        sheet.save(buf, format="PNG")
        return buf.getvalue()


def _show_heads(heads: list[w.HTML], labels: list[str] | None, first: int, count: int, style: str) -> None:
    """Put ``labels[first:]`` in the header widgets, one each; blank past ``count`` or without labels."""
    for k, head in enumerate(heads):
        i = first + k
        head.value = f'<div style="{style}">{html.escape(labels[i])}</div>' if labels and i < count else ""


def _where(layout: _Layout, r: int, c: int) -> str:
    parts = []
    if layout.row_headers:
        parts.append(layout.row_headers[r])
    if layout.col_headers:
        parts.append(layout.col_headers[c])
    return ", ".join(parts)


def _rescale(built: Built, radius: float) -> None:
    """Use one scale for every model (``scale="shared"``): sizes compare, each model stays centred."""
    from ._three import column_major

    fit = built.fit.copy()
    own = 1.0 / fit[0, 0] if fit[0, 0] else 1.0  # this model's half-diagonal
    factor = own / radius if radius > 0 else 1.0
    fit[:3, :] *= factor
    built.fit = fit
    built.bounds_unit = built.bounds_unit * factor
    built.group.matrix = column_major(fit)


class View(Grid):
    """An inline 3D view of one model: orbit/zoom/pan, reset view, wireframe, flat shading, textures,
    background, and a stats line. Made by :func:`rodin_nb.show` and ``Run.show()``."""

    def __init__(self, item: _Item, **options: Any) -> None:
        options.setdefault("width", 640)
        options.setdefault("height", 480)
        super().__init__([item], _Layout([[0]]), max_live=1, **options)

    @property
    def cell(self) -> _Cell:
        return self.cells[0]

    @property
    def model(self) -> Model | None:
        return self._items[0].model

    @property
    def built(self) -> Built | None:
        return self._items[0].built
