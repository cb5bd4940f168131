"""Run-log rows as pandas: the DataFrame, diffs, exports and the HTML views.

Kept apart from :mod:`rodin_nb.runlog` so that writing the log never imports pandas. Nothing here
wraps what pandas already does well: ``log.df`` is a plain DataFrame with proper dtypes, so
``pivot_table``, ``groupby`` and plotting work as usual.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .schema import ModelSchema

if TYPE_CHECKING:
    from .jobs import Run
    from .runlog import RunLog

__all__ = ["diff_rows", "export_frame", "log_html", "rows_to_frame", "run_html"]

# Column order of log.df; parameter columns are inserted after "model_id".
LEADING = ["run_id", "sweep_id", "backend", "model_id"]
TRAILING = [
    "status", "progress", "job_id", "cost", "submitted_at", "created_at", "started_at", "finished_at",
    "queue_s", "duration_s", "asset_ids", "files", "sha256", "faces", "vertices", "bbox", "textures",
    "error", "hint", "reuse", "params_hash", "service", "updated_at", "rodin_nb_version",
]  # fmt: skip
TIME_COLUMNS = ["submitted_at", "created_at", "started_at", "finished_at", "updated_at"]
MESH_FIELDS = ["faces", "vertices", "bbox", "textures"]
STATUS_COLOURS = {
    "success": "#1a7f37", "failure": "#cf222e", "canceled": "#6e7781", "lost": "#9a6700",
    "submitting": "#0969da", "pending": "#0969da", "queued": "#0969da", "warming-up": "#0969da",
    "in-progress": "#0969da", "finalizing": "#0969da",
}  # fmt: skip


def _param_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The snapshot's inputs in schema order, then any other parameter seen in the rows."""
    names = list(ModelSchema.snapshot().names)
    for row in rows:
        for name in row.get("params") or {}:
            if name not in names:
                names.append(name)
    return names


def rows_to_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    params = _param_names(rows)
    records = []
    for row in rows:
        record = {name: row.get(name) for name in LEADING}
        record.update({name: (row.get("params") or {}).get(name) for name in params})
        record.update({name: row.get(name) for name in TRAILING})
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=[*LEADING, *params, *TRAILING])
    for name in TIME_COLUMNS:
        frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
    schema = ModelSchema.snapshot()
    for name in ("tier", "quality", "material", "conditionMode"):
        allowed = list(schema[name].allowed_values or []) if name in schema else []
        seen = [value for value in frame[name].dropna().unique() if value not in allowed]
        frame[name] = pd.Categorical(frame[name], categories=[*allowed, *seen])
    for name in ("status", "backend"):
        frame[name] = frame[name].astype("category")
    for name in ("seed", "faces", "vertices"):
        frame[name] = frame[name].astype("Int64")
    for name in ("useHyper", "TAPose", "reuse"):
        frame[name] = frame[name].astype("boolean")
    for name in ("progress", "cost", "queue_s", "duration_s"):
        frame[name] = frame[name].astype("Float64")
    return frame.set_index("run_id", drop=False).rename_axis(None)


def diff_rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> pd.DataFrame:
    """Parameters and mesh statistics that differ between two runs, one row per field."""
    fields: list[tuple[str, Any, Any]] = []
    names = list(dict.fromkeys([*(a.get("params") or {}), *(b.get("params") or {})]))
    for name in names:
        fields.append((name, (a.get("params") or {}).get(name), (b.get("params") or {}).get(name)))
    for name in ["status", "cost", "queue_s", "duration_s", *MESH_FIELDS, "sha256", "error"]:
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


def export_frame(frame: pd.DataFrame, path: Path) -> Path:
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        # Parquet needs one type per column: lists/dicts become JSON text.
        flat = frame.copy()
        for name in ("asset_ids", "files", "sha256", "bbox", "textures", "images"):
            if name in flat:
                flat[name] = flat[name].map(lambda v: None if v is None else _json(v))
        flat.to_parquet(path, index=False)
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".json":
        frame.to_json(path, orient="records", date_format="iso", indent=1)
    else:
        raise ValueError(f"cannot export to {path.name!r}: use a .parquet, .csv or .json file name")
    return path


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)


# --- HTML -------------------------------------------------------------------------------------------


def _badge(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#57606a")
    return (
        f'<span style="background:{colour};color:white;border-radius:3px;padding:0 4px;'
        f'font-size:90%">{html.escape(status)}</span>'
    )


def _thumb(path: Path | None, size: int = 64) -> str:
    if path is None or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<img src="data:image/png;base64,{data}" width="{size}" height="{size}" style="object-fit:contain">'
    )


def run_html(run: Run) -> str:
    params = ", ".join(f"{k}={html.escape(repr(v))}" for k, v in run.params.items() if k != "images")
    cost = f"{run.cost:g} CU" if run.cost is not None else ""
    stats = run.mesh_stats or {}
    mesh = f"{stats['faces']:,} faces, {stats['vertices']:,} vertices" if stats.get("faces") else ""
    error = f"<br><b>{html.escape(run.error or '')}</b> {html.escape(run.hint or '')}" if run.error else ""
    progress = f" {run.progress:.0%}" if run.status not in ("success", "failure", "canceled", "lost") else ""
    return (
        f'<div style="display:flex;gap:8px;align-items:center">{_thumb(run.preview)}<div>'
        f"<code>{html.escape(run.run_id)}</code> {_badge(run.status)}{progress} {cost}<br>"
        f"<small>{params}</small><br><small>{mesh}</small>{error}</div></div>"
    )


def log_html(log: RunLog, limit: int = 50) -> str:
    rows = log.rows()[-limit:]
    lines = []
    for row in reversed(rows):
        files = row.get("files") or []
        preview = next((log.workspace / f for f in files if str(f).endswith(".png")), None)
        p = row.get("params") or {}
        cost = f"{row['cost']:g}" if row.get("cost") is not None else ""
        lines.append(
            f"<tr><td>{_thumb(preview, 40)}</td><td><code>{html.escape(row['run_id'])}</code></td>"
            f"<td>{_badge(row['status'])}</td><td>{html.escape(str(p.get('prompt') or ''))[:40]}</td>"
            f"<td>{p.get('seed', '')}</td><td>{html.escape(str(p.get('tier', '')))}</td>"
            f"<td>{html.escape(str(p.get('quality', '')))}</td><td>{cost}</td>"
            f"<td>{row.get('faces') or ''}</td></tr>"
        )
    head = (
        "<tr><th></th><th>run</th><th>status</th><th>prompt</th><th>seed</th><th>tier</th><th>quality</th>"
        "<th>cost</th><th>faces</th></tr>"
    )
    total = log.count()
    caption = f"RunLog {html.escape(str(log.workspace))}: {total} runs" + (
        f" (latest {limit} shown)" if total > limit else ""
    )
    return f"<table><caption>{caption}</caption>{head}{''.join(lines)}</table>"
