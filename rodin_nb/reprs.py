"""HTML reprs of runs and of the run log (no pandas, no widgets: cheap enough for every display)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING

from .status import TERMINAL, describe

if TYPE_CHECKING:
    from .jobs import Run
    from .runlog import RunLog

__all__ = ["log_html", "mesh_line", "run_html"]

STATUS_COLOURS = {
    "success": "#1a7f37", "failure": "#cf222e", "canceled": "#6e7781", "lost": "#9a6700",
    "submitting": "#0969da", "pending": "#0969da", "queued": "#0969da", "warming-up": "#0969da",
    "in-progress": "#0969da", "finalizing": "#0969da", "downloading": "#0969da", "not-submitted": "#6e7781",
}  # fmt: skip


def _badge(status: str) -> str:
    # Readable words on the badge; the API's own token in the tooltip, for whoever reads the run log.
    colour = STATUS_COLOURS.get(status, "#57606a")
    return (
        f'<span title="{html.escape(status)}" style="background:{colour};color:white;border-radius:3px;'
        f'padding:0 4px;font-size:90%">{html.escape(describe(status))}</span>'
    )


def _thumb(path: Path | None, size: int = 64) -> str:
    if path is None or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<img src="data:image/png;base64,{data}" alt="preview" width="{size}" height="{size}" '
        'style="object-fit:contain">'
    )


def mesh_line(run: Run) -> str:
    """The run's mesh statistics in a few words ("" before its files are in)."""
    stats = run.mesh_stats or {}
    return f"{stats['faces']:,} faces, {stats['vertices']:,} vertices" if stats.get("faces") else ""


def run_html(run: Run, *, thumb: int = 64) -> str:
    """A run in one block: preview image (``thumb`` pixels), status, cost, parameters, mesh stats, error."""
    params = ", ".join(f"{k}={html.escape(repr(v))}" for k, v in run.params.items() if k != "images")
    cost = f"{run.cost:g} CU" if run.cost is not None else ""
    mesh = mesh_line(run)
    hint = f" <small>hint: {html.escape(run.hint)}</small>" if run.hint else ""
    error = f"<br><b>{html.escape(run.error)}</b>{hint}" if run.error else ""
    progress = f" {run.progress:.0%}" if run.status not in TERMINAL else ""
    return (
        f'<div style="display:flex;gap:8px;align-items:center">{_thumb(run.preview, thumb)}<div>'
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
