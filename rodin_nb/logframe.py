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
from functools import lru_cache
from itertools import pairwise
from operator import itemgetter
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
_TABLE_COLUMNS = frozenset((*FRAME_LEADING, *FRAME_TRAILING))
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

    A new frame (``frame`` itself is left as it was). Rows already there are replaced where they stand:
    a row's ``submitted_at`` never changes, so its place in log order does not either (moving it would
    misplace it among rows submitted in the same millisecond). New rows join at the end, and the frame
    is sorted again (stably, by ``submitted_at``) only when one of them was submitted before the last row
    already there. So a refresh costs about the changed rows, not the whole frame: no index-based drop,
    no concat or sort of every row in the common case.

    Categorical columns keep a categorical dtype: their categories are merged (concat alone would turn
    two categoricals with different categories, e.g. statuses seen so far, into plain objects).
    """
    if changed.empty:
        return frame
    if frame.empty:
        return changed
    positions = frame.index.get_indexer(changed.index)
    known = positions >= 0
    added = np.flatnonzero(~known)
    # Where each row of the result comes from, in [frame's rows, changed's rows]: the frame's own row,
    # or its replacement in changed; then the added rows. One take() per column does the rest.
    targets, replacing = positions[known], np.flatnonzero(known)
    source = np.arange(len(frame) + len(added))
    source[targets] = len(frame) + replacing
    source[len(frame) :] = len(frame) + added
    names = _union_columns(frame, changed)
    in_place = not len(added) and names == list(frame.columns)
    columns: dict[str, Any] = {}
    for name in names:
        before, after = _column(frame, name), _column(changed, name)
        if (
            in_place
            and before.dtype == after.dtype
            and _unchanged(before.array, after.array, targets, replacing)
        ):
            # What most of a refresh is (a status, a time, a few numbers changed): every other column
            # stays the frame's own (copied with it below).
            continue
        if isinstance(before.dtype, pd.CategoricalDtype):
            if (
                isinstance(after.dtype, pd.CategoricalDtype)
                and after.dtype.categories.isin(before.dtype.categories).all()
            ):
                dtype = before.dtype  # no new category: no new dtype to build and validate
            else:
                dtype = pd.CategoricalDtype(_merged_categories(name, before.dtype, after))
            codes = np.concatenate([_codes(before, dtype), _codes(after, dtype)])[source]
            columns[name] = _without_unseen(name, pd.Categorical.from_codes(codes, dtype=dtype))
        elif before.dtype == after.dtype:
            # The arrays themselves, not Series: pd.concat would build (and check) a joined index.
            joined = type(before.array)._concat_same_type([before.array, after.array])
            columns[name] = joined.take(source)
        else:
            # A column all missing on one side (None objects next to strings, NaN floats next to
            # lists): joined as objects, then inferred again, as reading the whole log would have.
            objects = np.concatenate([before.to_numpy(dtype=object), after.to_numpy(dtype=object)])
            objects = objects[source]
            if name in _TABLE_COLUMNS:
                objects[pd.isna(objects)] = None  # a table column's NULL is None, as read from SQLite
            columns[name] = pd.Series(objects, copy=False).infer_objects().array
    if in_place:
        # The same rows and columns: a copy of the frame (object cells and immutable Arrow text are not
        # duplicated, so it is cheap) with the changed columns swapped in; no frame built column by column.
        result = frame.copy()
        for name, values in columns.items():
            result[name] = values
        return result
    index = frame.index.append(changed.index[added]) if len(added) else frame.index
    result = pd.DataFrame(columns, index=index, copy=False)
    if len(added) and changed["submitted_at"].iloc[added].min() < frame["submitted_at"].iloc[-1]:
        # Stable: rows submitted in the same millisecond keep the order they had (new ones last).
        result = result.sort_values("submitted_at", kind="stable")
    return result


def _merged_categories(name: str, before: pd.CategoricalDtype, after: pd.Series) -> list[Any]:
    categories = list(before.categories)
    known = set(categories)
    extra = after.dtype.categories if isinstance(after.dtype, pd.CategoricalDtype) else after.dropna()
    categories += [c for c in dict.fromkeys(extra) if c not in known]
    if name in _SORTED_CATEGORIES:
        categories.sort()  # as log.df orders them
    return categories


def _without_unseen(name: str, values: pd.Categorical) -> pd.Categorical:
    """Categories as log.df has them: the schema's allowed values, and of the others only those seen
    (a status no row has any more is gone, as it would be from a full load)."""
    used = np.zeros(len(values.categories), dtype=bool)
    used[values.codes[values.codes >= 0]] = True
    if name in _SNAPSHOT and _SNAPSHOT[name].allowed_values:
        used |= values.categories.isin(list(_SNAPSHOT[name].allowed_values or ()))
    return values if used.all() else values.remove_categories(values.categories[~used])


def _codes(values: pd.Series, dtype: pd.CategoricalDtype) -> np.ndarray:
    """The codes of ``values`` under ``dtype`` (a remap of codes when they are categorical already)."""
    if isinstance(values.dtype, pd.CategoricalDtype) and values.dtype == dtype:
        return np.asarray(values.cat.codes, dtype=np.int64)
    if isinstance(values.dtype, pd.CategoricalDtype):
        return np.asarray(values.cat.set_categories(dtype.categories).cat.codes, dtype=np.int64)
    return np.asarray(pd.Categorical(values, dtype=dtype).codes, dtype=np.int64)


def _unchanged(before: Any, after: Any, targets: np.ndarray, replacing: np.ndarray) -> bool:
    """True only when ``after[replacing]`` holds the very values ``before[targets]`` has (same dtype).

    Categories by their codes, times by their integers, the rest by Python's list comparison (identity
    first, then ``==``; missing values as None). Anything it cannot compare counts as changed, which
    only costs the slower way.
    """
    if isinstance(before, pd.Categorical):
        # Equal unordered dtypes may list their categories in another order: codes compare only when
        # the lists are the same.
        same = before.categories.equals(after.categories)
        return same and bool(np.array_equal(before.codes[targets], after.codes[replacing]))
    if isinstance(before, pd.arrays.DatetimeArray):
        return bool(np.array_equal(before.asi8[targets], after.asi8[replacing]))
    try:
        old = before.take(targets).to_numpy(dtype=object, na_value=None).tolist()
        return bool(old == after.take(replacing).to_numpy(dtype=object, na_value=None).tolist())
    except (TypeError, ValueError):
        return False


def _union_columns(frame: pd.DataFrame, changed: pd.DataFrame) -> list[str]:
    """Both frames' columns in log.df's order: a parameter only one side has goes with the parameters."""
    if list(frame.columns) == list(changed.columns):
        return list(frame.columns)
    edges = {*FRAME_LEADING, *FRAME_TRAILING}
    middle = dict.fromkeys(name for name in [*frame.columns, *changed.columns] if name not in edges)
    return [*FRAME_LEADING, *middle, *FRAME_TRAILING]


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all NaN for a parameter these rows never had (as log.df shows a missing one)."""
    if name in frame.columns:
        return frame[name]
    return pd.Series(np.full(len(frame), np.nan), index=frame.index)


def columns_to_frame(columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """``log.df`` from the table's columns (as :func:`_read_columns` gives them), decoded column by column.

    Each column goes from its Python values to its final dtype in one step: JSON with one ``json.loads``
    per column, times with one ``pd.to_datetime``, numbers straight into nullable arrays. Text columns are
    left to pandas' own inference (``str`` on pandas 3, ``object`` before; all-NULL columns ``object``),
    which is what ``pd.read_sql_query`` gave, so the frame is the one users always saw.
    """
    n = len(columns["run_id"])
    index = pd.RangeIndex(n)
    data: dict[str, Any] = {}
    for name in (*FRAME_LEADING, *FRAME_TRAILING):
        values = columns[name]
        if name in _RESULT_JSON_COLUMNS:
            # An empty log's list columns have always been float64 (pandas' dtype for an empty list).
            data[name] = _objects(_json_values(values)) if n else np.array([], dtype=float)
        elif name in TIME_COLUMNS:
            # cache=False: pandas' cache of unique strings costs more than it saves, at any size here.
            times = np.array(values, dtype=object)
            data[name] = pd.to_datetime(times, utc=True, format="ISO8601", cache=False).array
        elif name in _INT_COLUMNS:
            data[name] = pd.array(values, dtype="Int64") if n else pd.array([], dtype="Int64")
        elif name in _FLOAT_COLUMNS:
            data[name] = pd.array([None if v is None else float(v) for v in values], dtype="Float64")
        elif name in _BOOL_COLUMNS:
            data[name] = pd.array([None if v is None else bool(v) for v in values], dtype="boolean")
        elif name in _SORTED_CATEGORIES:
            # What .astype("category") makes: the values seen, sorted.
            data[name] = _categorical(values, tuple(sorted({v for v in values if v is not None})))
        else:
            data[name] = _inferred(values).array
    ordered = {name: data[name] for name in FRAME_LEADING}
    ordered.update(_param_columns(_json_values(columns["params"])))
    ordered.update((name, data[name]) for name in FRAME_TRAILING)
    frame = pd.DataFrame(ordered, index=index, copy=False)  # one frame, built once: no concat
    return frame.set_index("run_id", drop=False).rename_axis(None)


def _categorical(values: Sequence[Any], categories: tuple[Any, ...]) -> pd.Categorical:
    """``pd.Categorical(values, categories=categories)``, with codes from a dict and the dtype reused.

    A log has the same few categories at every read, so their (validated) dtype is made once; codes
    from a plain dict cost a lookup per row where ``pd.Categorical`` builds an index of its categories
    and matches every value against it, a fixed cost that dominated decoding a refresh's few rows.
    """
    dtype = _category_dtype(categories)
    positions = {category: code for code, category in enumerate(categories)}
    codes = np.fromiter((positions.get(v, -1) for v in values), dtype=np.int64, count=len(values))
    return pd.Categorical.from_codes(codes, dtype=dtype)


@lru_cache(maxsize=256)
def _category_dtype(categories: tuple[Any, ...]) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(list(categories))


def _inferred(values: Sequence[Any]) -> pd.Series:
    """A column of Python values with the dtype pandas infers for it (as its DataFrame constructor and
    ``read_sql_query`` do): ``str`` for text on pandas 3, ``object`` before and for lists or all-None."""
    return pd.Series(values, dtype=object).infer_objects()


def _param_columns(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """The request parameters, one column each: the schema's in its order, then any others in the order
    first seen; a parameter a request lacks is NaN (as ``pd.DataFrame(list_of_dicts)`` leaves it)."""
    shapes = dict.fromkeys(map(tuple, requests))  # their key sets: the requests share one or a few
    seen = dict.fromkeys(name for shape in shapes for name in shape)
    names = [*_SNAPSHOT.names, *(name for name in seen if name not in _SNAPSHOT.names)]
    picked: dict[str, Sequence[Any]]
    if len(shapes) == 1 and len(shape := next(iter(shapes))) > 1:
        # Every request has the same parameters (the usual log): one C-level itemgetter per row.
        picked = dict(zip(shape, zip(*map(itemgetter(*shape), requests), strict=True), strict=True))
    else:
        picked = {name: [request.get(name, np.nan) for request in requests] for name in names}
    missing = [np.nan] * len(requests)
    out: dict[str, Any] = {}
    for name in names:
        column = picked.get(name, missing)
        if name in _CATEGORY_PARAMS:
            # Straight from the Python values (pandas' own hashing of objects), not via a str column.
            allowed = list(_SNAPSHOT[name].allowed_values or []) if name in _SNAPSHOT else []
            known = set(allowed)
            found = [v for v in dict.fromkeys(column) if v is not None and v == v and v not in known]
            out[name] = _categorical(column, (*allowed, *found))
            continue
        # An empty log's parameter columns have always been float64 (all NaN).
        values = _inferred(column) if requests else pd.Series([], dtype=float)
        if name == "seed":
            out[name] = pd.to_numeric(values).astype("Int64").array
        elif name in ("useHyper", "TAPose"):
            out[name] = values.astype("boolean").array
        else:
            out[name] = values.array
    return out


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
