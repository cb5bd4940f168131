"""Run-log rows as pandas: the DataFrame, diffs, exports and the HTML views.

Kept apart from :mod:`rodin_nb.runlog` so that writing the log never imports pandas. Nothing here
wraps what pandas already does well: ``log.df`` is a plain DataFrame with proper dtypes, so
``pivot_table``, ``groupby`` and plotting work as usual.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ._optional import require
from .columns import FRAME_LEADING, FRAME_TRAILING, JSON_COLUMNS, TIME_COLUMNS
from .meshstats import MESH_STAT_KEYS
from .schema import ModelSchema

__all__ = [
    "diff_rows",
    "export_frame",
    "flat_frame",
    "load_changed",
    "load_frame",
    "raw_to_frame",
    "upsert_frame",
]

_SNAPSHOT = ModelSchema.snapshot()
# JSON columns other than params, which is expanded into one column per parameter instead.
_RESULT_JSON_COLUMNS = [name for name in JSON_COLUMNS if name != "params"]
# Categorical columns whose categories are the values seen, sorted (the others list the allowed values).
_SORTED_CATEGORIES = ("status", "backend")


def _parse_json_column(values: pd.Series) -> list[Any]:
    """Decode a column of JSON texts with one ``json.loads`` call (one C scan instead of one per row)."""
    if values.empty:
        return []
    return list(json.loads("[" + ",".join(values.fillna("null").astype(str)) + "]"))


def load_frame(conn: sqlite3.Connection) -> pd.DataFrame:
    """The run log as a DataFrame straight from SQLite (see :func:`raw_to_frame`)."""
    raw = pd.read_sql_query("SELECT * FROM runs ORDER BY submitted_at, rowid", conn)
    return raw_to_frame(raw)


def load_changed(conn: sqlite3.Connection, since: str | None) -> tuple[pd.DataFrame, str | None]:
    """Rows with ``updated_at > since`` (all rows when None), decoded like ``log.df``; and the newest
    ``updated_at`` among them (None when there are none). See ``RunLog.changed_since``."""
    if since is None:
        raw = pd.read_sql_query("SELECT * FROM runs ORDER BY submitted_at, rowid", conn)
    else:
        raw = pd.read_sql_query(
            "SELECT * FROM runs WHERE updated_at > ? ORDER BY submitted_at, rowid", conn, params=(since,)
        )
    newest = str(raw["updated_at"].max()) if len(raw) else None
    return raw_to_frame(raw), newest


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


def raw_to_frame(raw: pd.DataFrame) -> pd.DataFrame:
    # pd.DataFrame(list, index=...) rather than from_records: pandas 2.x reads an empty list with an
    # index argument as "no index columns" and fails on an empty log.
    params = pd.DataFrame(_parse_json_column(raw["params"]), index=raw.index)
    names = [*_SNAPSHOT.names, *(c for c in params.columns if c not in _SNAPSHOT.names)]
    params = params.reindex(columns=names)
    trailing = [c for c in FRAME_TRAILING if c in raw]
    frame = pd.concat([raw[list(FRAME_LEADING)], params, raw[trailing].copy()], axis=1)
    for name in _RESULT_JSON_COLUMNS:
        frame[name] = _parse_json_column(raw[name]) if len(raw) else []
    for name in TIME_COLUMNS:
        frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
    for name in ("tier", "quality", "material", "conditionMode"):
        allowed = list(_SNAPSHOT[name].allowed_values or []) if name in _SNAPSHOT else []
        seen = [value for value in frame[name].dropna().unique() if value not in allowed]
        frame[name] = pd.Categorical(frame[name], categories=[*allowed, *seen])
    for name in _SORTED_CATEGORIES:
        frame[name] = frame[name].astype("category")
    for name in ("seed", "faces", "vertices"):
        frame[name] = pd.to_numeric(frame[name]).astype("Int64")
    for name in ("useHyper", "TAPose", "reuse"):
        frame[name] = frame[name].astype("boolean")
    for name in ("progress", "cost", "queue_s", "duration_s"):
        frame[name] = pd.to_numeric(frame[name]).astype("Float64")
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
