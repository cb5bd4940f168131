"""Run-log rows as pandas: the DataFrame, diffs, exports and the HTML views.

Kept apart from :mod:`rodin_nb.runlog` so that writing the log never imports pandas. Nothing here
wraps what pandas already does well: ``log.df`` is a plain DataFrame with proper dtypes, so
``pivot_table``, ``groupby`` and plotting work as usual.
"""

from __future__ import annotations

import gc
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._optional import require
from .columns import FRAME_LEADING, FRAME_TRAILING, JSON_COLUMNS, TIME_COLUMNS
from .meshstats import MESH_STAT_KEYS
from .schema import ModelSchema

__all__ = [
    "columns_to_frame",
    "diff_rows",
    "export_frame",
    "flat_frame",
    "load_changed",
    "load_frame",
    "upsert_frame",
]

_SNAPSHOT = ModelSchema.snapshot()
# JSON columns other than params, which is expanded into one column per parameter instead.
_RESULT_JSON_COLUMNS = [name for name in JSON_COLUMNS if name != "params"]
# Categorical columns whose categories are the values seen, sorted (the others list the allowed values).
_SORTED_CATEGORIES = ("status", "backend")


# Columns read from the table for log.df: the frame's own, plus params (expanded below). The table's
# seed copy and owner are not shown, so they are not read either.
_READ_COLUMNS = [*FRAME_LEADING, "params", *FRAME_TRAILING]
_SELECT = f"SELECT {', '.join(_READ_COLUMNS)} FROM runs"
_SUBMITTED = _READ_COLUMNS.index("submitted_at")
_CHANGED = " WHERE updated_at > ? ORDER BY submitted_at, rowid"  # a few rows: the index, then a sort
_CATEGORY_PARAMS = ("tier", "quality", "material", "conditionMode")
_INT_COLUMNS = ("faces", "vertices")
_BOOL_COLUMNS = ("reuse",)
_FLOAT_COLUMNS = ("progress", "cost", "queue_s", "duration_s")


def _read_columns(conn: sqlite3.Connection, since: str | None = None) -> dict[str, Any]:
    """The rows in log order (``submitted_at``, then ``rowid``) as one sequence per column.

    Why not ``pd.read_sql_query``: it makes a DataFrame of every column (strings and all) only for most
    of them to be decoded again (JSON, times, numbers), and the JSON columns then had to be walked back
    out of pandas' string arrays one element at a time. Plain tuples (no ``sqlite3.Row`` per row), one
    transpose, and each column decoded once from Python values is what is left of the cost.

    With ``since``, only the rows with ``updated_at > since``, found through the ``runs_updated`` index.
    The whole table is read in ``rowid`` order (the table's own order: no sort in SQLite, which would
    copy every whole row into a temporary b-tree) and put in ``submitted_at`` order here by a stable sort
    of that one column, only when it is not in that order already (rows are claimed in about the order
    they were submitted, so usually it is). Not so with ``since``: ``ORDER BY rowid`` there would make
    SQLite prefer scanning the whole table (in rowid order) over the index.
    """
    cursor = conn.cursor()
    cursor.row_factory = None  # the connection's sqlite3.Row costs an object per row
    try:
        if since is None:
            rows = cursor.execute(_SELECT + " ORDER BY rowid").fetchall()
        else:
            rows = cursor.execute(_SELECT + _CHANGED, (since,)).fetchall()
    finally:
        cursor.close()
    if not rows:
        return {name: () for name in _READ_COLUMNS}
    values = list(zip(*rows, strict=True))
    submitted = values[_SUBMITTED]
    if any(later < earlier for earlier, later in pairwise(submitted)):
        order = sorted(range(len(submitted)), key=submitted.__getitem__)  # stable: rowid breaks ties
        values = [tuple(column[i] for i in order) for column in values]
    return dict(zip(_READ_COLUMNS, values, strict=True))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a frame is built.

    Decoding a log makes tens of thousands of containers (a dict of parameters, lists of files per row)
    that all survive: each allocation threshold crossed starts a collection that walks them again, for
    nothing (they are all alive). On 10,000 runs that was a third of ``log.df``. The collector is only
    paused, and turned back on if it was on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _json_values(texts: Sequence[str | None]) -> list[Any]:
    """Decode a column of JSON texts with one ``json.loads`` call (one C scan instead of one per row)."""
    if not texts:
        return []
    if None in texts:
        texts = ["null" if text is None else text for text in texts]
    return list(json.loads("[" + ",".join(texts) + "]"))  # type: ignore[arg-type]


def _objects(values: list[Any]) -> np.ndarray:
    """A 1-d object array of ``values``: lists stay cells (numpy makes equal-length lists a 2-d array)."""
    out = np.empty(len(values), dtype=object)
    for position, value in enumerate(values):
        out[position] = value
    return out


def load_frame(conn: sqlite3.Connection) -> pd.DataFrame:
    """The run log as a DataFrame straight from SQLite (see :func:`columns_to_frame`)."""
    with _gc_paused():
        return columns_to_frame(_read_columns(conn))


def load_changed(conn: sqlite3.Connection, since: str | None) -> tuple[pd.DataFrame, str | None]:
    """Rows with ``updated_at > since`` (all rows when None), decoded like ``log.df``; and the newest
    ``updated_at`` among them (None when there are none). See ``RunLog.changed_since``."""
    with _gc_paused():
        columns = _read_columns(conn, since)
        stamps = columns["updated_at"]
        newest = max(stamps) if stamps else None
        return columns_to_frame(columns), newest


def upsert_frame(frame: pd.DataFrame, changed: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the rows of ``changed`` replacing or joining its own (by run id), in log order.

    Categorical columns keep a categorical dtype: their categories are merged (concat alone would turn
    two categoricals with different categories, e.g. statuses seen so far, into plain objects).
    """
    if changed.empty:
        return frame
    if frame.empty:
        return changed
    merged = pd.concat([frame.drop(index=changed.index, errors="ignore"), changed])
    for name in frame.columns:
        before, after = frame[name].dtype, changed[name].dtype if name in changed else None
        if isinstance(before, pd.CategoricalDtype):
            categories = list(before.categories)
            known = set(categories)
            extra = after.categories if isinstance(after, pd.CategoricalDtype) else merged[name].dropna()
            categories += [c for c in dict.fromkeys(extra) if c not in known]
            if name in _SORTED_CATEGORIES:
                categories.sort()  # as log.df orders them
            merged[name] = pd.Categorical(merged[name], categories=categories)
        elif after is not None and before != after and merged[name].dtype == object:
            # A column all missing on one side (None objects next to strings): infer again, as reading
            # the whole log would have.
            merged[name] = merged[name].infer_objects()
    # Stable: rows submitted in the same millisecond keep the order they had (new ones last).
    return merged.sort_values("submitted_at", kind="stable")


def columns_to_frame(columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """``log.df`` from the table's columns (as :func:`_read_columns` gives them), decoded column by column.

    Each column goes from its Python values to its final dtype in one step: JSON with one ``json.loads``
    per column, times with one ``pd.to_datetime``, numbers straight into nullable arrays. Text columns are
    left to pandas' own inference (``str`` on pandas 3, ``object`` before; all-NULL columns ``object``),
    which is what ``pd.read_sql_query`` gave, so the frame is the one users always saw.
    """
    n = len(columns["run_id"])
    index = pd.RangeIndex(n)
    # pd.DataFrame(list, index=...) rather than from_records: pandas 2.x reads an empty list with an
    # index argument as "no index columns" and fails on an empty log.
    params = pd.DataFrame(_json_values(columns["params"]), index=index)
    names = [*_SNAPSHOT.names, *(c for c in params.columns if c not in _SNAPSHOT.names)]
    params = params.reindex(columns=names)
    data: dict[str, Any] = {}
    for name in (*FRAME_LEADING, *FRAME_TRAILING):
        values = columns[name]
        if name in _RESULT_JSON_COLUMNS:
            # An empty log's list columns have always been float64 (pandas' dtype for an empty list).
            data[name] = _objects(_json_values(values)) if n else np.array([], dtype=float)
        elif name in TIME_COLUMNS:
            data[name] = pd.to_datetime(
                pd.Series(values, index=index, dtype=object).infer_objects(), utc=True, format="ISO8601"
            )
        elif name in _INT_COLUMNS:
            data[name] = pd.array(values, dtype="Int64") if n else pd.array([], dtype="Int64")
        elif name in _FLOAT_COLUMNS:
            data[name] = pd.array([None if v is None else float(v) for v in values], dtype="Float64")
        elif name in _BOOL_COLUMNS:
            data[name] = pd.array([None if v is None else bool(v) for v in values], dtype="boolean")
        else:
            data[name] = pd.Series(values, index=index, dtype=object).infer_objects()
    for name in _CATEGORY_PARAMS:
        allowed = list(_SNAPSHOT[name].allowed_values or []) if name in _SNAPSHOT else []
        seen = [value for value in params[name].dropna().unique() if value not in allowed]
        params[name] = pd.Categorical(params[name], categories=[*allowed, *seen])
    for name in _SORTED_CATEGORIES:
        data[name] = data[name].astype("category")
    params["seed"] = pd.to_numeric(params["seed"]).astype("Int64")
    for name in ("useHyper", "TAPose"):
        params[name] = params[name].astype("boolean")
    leading = pd.DataFrame({name: data[name] for name in FRAME_LEADING}, index=index)
    trailing = pd.DataFrame({name: data[name] for name in FRAME_TRAILING}, index=index)
    frame = pd.concat([leading, params, trailing], axis=1)
    return frame.set_index("run_id", drop=False).rename_axis(None)


def diff_rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> pd.DataFrame:
    """Parameters and mesh statistics that differ between two runs, one row per field."""
    fields: list[tuple[str, Any, Any]] = []
    names = list(dict.fromkeys([*(a.get("params") or {}), *(b.get("params") or {})]))
    for name in names:
        fields.append((name, (a.get("params") or {}).get(name), (b.get("params") or {}).get(name)))
    for name in ["status", "cost", "queue_s", "duration_s", *MESH_STAT_KEYS, "sha256", "error"]:
        fields.append((name, a.get(name), b.get(name)))
    differing = [(name, x, y) for name, x, y in fields if x != y]
    frame = pd.DataFrame(
        [(x, y) for _, x, y in differing],
        index=[name for name, _, _ in differing],
        columns=[a["run_id"], b["run_id"]],
        dtype=object,
    )
    frame.index.name = "field"
    return frame


def flat_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its list/dict columns as JSON text, for CSV and Parquet.

    Parquet needs one type per column, and CSV would otherwise hold Python reprs (``['a']``) that no
    other tool reads back; JSON export keeps them as real arrays and objects.
    """
    flat = frame.copy()
    for name in (*_RESULT_JSON_COLUMNS, "images"):
        if name in flat:
            flat[name] = flat[name].map(lambda v: None if v is None else _json(v))
    return flat


def export_frame(frame: pd.DataFrame, path: Path) -> Path:
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv", ".json"):
        raise ValueError(f"cannot export to {path.name!r}: use a .parquet, .csv or .json file name")
    if suffix == ".parquet":
        require("pyarrow", "parquet", "Parquet export")  # before anything is created
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        flat_frame(frame).to_parquet(path, index=False)
    elif suffix == ".csv":
        flat_frame(frame).to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", date_format="iso", indent=1)
    return path


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
