"""Inline 3D views of results with pythreejs: one model, or a comparison grid with linked cameras.

>>> view = rn.show(run)                          # or rn.show("any.glb"), run.show()
>>> grid = rn.compare([r1, r2, r3, r4])          # 2x2, cameras linked: orbit one, all follow
>>> grid = compare_runs(runs, rows="seed", cols="tier")

Modules: ``_load`` (file -> numpy buffers and material values, no widgets), ``_three`` (-> pythreejs
widgets, environment map, lights, camera framing), ``_widgets`` (the :class:`View` and :class:`Grid`
boxes, toolbar, paging, static fallback). Offline PNG previews live in :mod:`rodin_nb.preview`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ._load import Model, ModelStats, load_model
from ._widgets import (
    DEFAULT_MAX_LIVE,
    LABEL_PARAMS,
    Grid,
    View,
    _check_target,
    _Item,
    _Layout,
    auto_labels,
    shape_for,
    single_label,
)

__all__ = [
    "DEFAULT_MAX_LIVE",
    "Grid",
    "Model",
    "ModelStats",
    "View",
    "compare",
    "compare_runs",
    "load_model",
    "show",
]

Labels = Sequence[str] | Callable[[Any], str] | None


def show(target: Any, *, label: str | None = None, **options: Any) -> View:
    """An inline 3D view of a Run or of any GLB file (any format trimesh reads works too).

    Parameters
    ----------
    target : a finished ``Run``, a path, or GLB bytes.
    label : title above the view (default: the run's prompt and parameters, or the file name).
    width, height : canvas size in pixels (default 640 x 480).
    background : ``"light"`` (default) or ``"dark"``.
    wireframe, flat, textures : initial state of the toolbar toggles (False, False, True).
    static : add the preview image and stats to the display for front ends without widgets
        (nbconvert HTML, GitHub); default True. The preview is the service's image when the run has
        one, else rendered offline (:func:`rodin_nb.preview.render_png`).

    Raises
    ------
    AssetError : the file cannot be read (the message names it), or the run has no GLB yet.
    TypeError : ``target`` is not a run, path or bytes.
    """
    _check_target(target)
    item = _Item(target)
    item.label = label or single_label(item)
    item.load()  # raise here, naming the file, rather than show an empty view
    return View(item, **options)


def compare(
    targets: Sequence[Any],
    rows: int | str | None = None,
    cols: int | str | None = None,
    labels: Labels = None,
    **options: Any,
) -> Grid:
    """A grid of views with linked cameras: orbit, zoom or pan one and every cell follows.

    Parameters
    ----------
    targets : runs, paths or GLB bytes, laid out row by row.
    rows, cols : the grid's shape (default: near-square, e.g. 2x2 for four). Parameter names instead
        (``rows="seed", cols="tier"``) arrange runs by those parameters: see :func:`compare_runs`.
    labels : one title per target, or a function ``target -> str``; default: the parameters that differ
        between the runs (``seed=3 · tier=Regular``), else file names.
    width, height : size of each cell (default 320 x 260).
    max_live : live renderers at most (default 6; browsers allow about 8 WebGL views per page); a grid
        with more cells pages through them with ◀ ▶.
    scale : ``"each"`` (default: every model fills its cell) or ``"shared"`` (one scale, sizes compare).
    background, wireframe, flat, textures, static : as for :func:`show`.
    """
    if isinstance(rows, str) or isinstance(cols, str):
        return compare_runs(
            targets,
            rows=rows if isinstance(rows, str) else None,
            cols=cols if isinstance(cols, str) else None,
            labels=labels,
            **options,
        )
    items = _items(targets, labels)
    n_rows, n_cols = shape_for(len(items), rows, cols)
    table: list[list[int | None]] = [
        [r * n_cols + c if r * n_cols + c < len(items) else None for c in range(n_cols)]
        for r in range(n_rows)
    ]
    return Grid(items, _Layout(table), **options)


def compare_runs(
    runs: Sequence[Any],
    rows: str | None = "seed",
    cols: str | None = "tier",
    labels: Labels = None,
    facet: str | Sequence[str] = (),
    **options: Any,
) -> Grid:
    """Arrange runs in a table by two of their parameters (wire names), e.g. seeds down, tiers across.

    Each distinct value of ``rows`` makes a row and each value of ``cols`` a column, in the order the
    runs first show them (a sweep's order). ``facet`` names further parameters folded into the rows
    (small multiples: a row per ``prompt=… · seed=…``; the grid pages through them), for runs that
    differ in more than two parameters. A missing combination shows as an empty cell that says so; a
    failed run shows its error. Other options as for :func:`compare`.

    Raises
    ------
    ValueError : a name is not a parameter of these runs, or two runs fall in the same cell (they
        differ in another parameter: the message names it; pass it as ``facet=``, filter the runs or
        pick other axes).
    """
    if not runs:
        raise ValueError("compare_runs() needs at least one run")
    for run in runs:
        _check_target(run)
        if not hasattr(run, "params"):
            raise TypeError(f"compare_runs() arranges runs by their parameters; {run!r} is not a Run")
    params = [dict(run.params) for run in runs]
    known = sorted({key for p in params for key in p})
    facets = [facet] if isinstance(facet, str) else list(facet)
    for axis, name in (*(("facet", f) for f in facets), ("rows", rows), ("cols", cols)):
        if name is not None and not any(name in p for p in params):
            raise ValueError(
                f"{axis}={name!r} is not a parameter of these runs; they have: {', '.join(known)}"
            )

    row_names = [*facets, rows] if rows else facets

    def row_key(p: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(p.get(name) for name in row_names)

    def col_key(p: dict[str, Any]) -> Any:
        return p.get(cols) if cols else None

    row_values = _first_seen(row_key(p) for p in params)
    col_values = _first_seen(col_key(p) for p in params)
    table: list[list[int | None]] = [[None] * len(col_values) for _ in row_values]
    for index, p in enumerate(params):
        r, c = row_values.index(row_key(p)), col_values.index(col_key(p))
        other = table[r][c]
        if other is not None:
            taken = {rows, cols, *facets}
            differ = [k for k in known if params[other].get(k) != p.get(k) and k not in taken]
            cell = ", ".join(f"{name}={p.get(name)!r}" for name in (*facets, rows, cols) if name)
            raise ValueError(
                f"two runs share the cell {cell}"
                + (
                    f"; they differ in {', '.join(differ)}: pass facet={differ[0]!r} for a row per value"
                    if differ
                    else " (the same request twice)"
                )
                + ", filter the runs or choose other rows/cols"
            )
        table[r][c] = index
    items = _items(runs, labels)
    if labels is None:
        shown = {rows, cols, *facets}
        varying = [k for k in LABEL_PARAMS if k not in shown and len({repr(p.get(k)) for p in params}) > 1]
        for item, p in zip(items, params, strict=True):
            item.label = " · ".join(f"{k}={p.get(k)}" for k in varying) or item.target.run_id
    layout = _Layout(
        table,
        row_headers=[
            " · ".join(f"{name}={_short(v)}" for name, v in zip(row_names, key, strict=True))
            for key in row_values
        ]
        if row_names
        else None,
        col_headers=[f"{cols}={v}" for v in col_values] if cols else None,
    )
    return Grid(items, layout, **options)


def _first_seen(values: Iterable[Any]) -> list[Any]:
    """Distinct values in the order they first appear (a sweep's order); lists compare by value."""
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def _short(value: Any, width: int = 40) -> str:
    """A header value: long prompts end in an ellipsis (the cell labels and stats say the rest)."""
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _items(targets: Sequence[Any], labels: Labels) -> list[_Item]:
    if isinstance(targets, (str, bytes, os.PathLike)) or not isinstance(targets, Sequence):
        targets = list(targets) if not isinstance(targets, (str, bytes, os.PathLike)) else [targets]
    if not targets:
        raise ValueError("compare() needs at least one run or file")
    for target in targets:
        _check_target(target)
    items = [_Item(target) for target in targets]
    if labels is None:
        names = auto_labels(items)
    elif callable(labels):
        names = [str(labels(t)) for t in targets]
    else:
        names = [str(x) for x in labels]
        if len(names) != len(items):
            raise ValueError(f"labels has {len(names)} entries for {len(items)} models")
    for item, name in zip(items, names, strict=True):
        item.label = name
    return items
