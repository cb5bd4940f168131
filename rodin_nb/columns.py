"""The run log's columns, described once: which hold JSON or times, and how ``log.df`` orders them.

The table itself is made by the migrations in :mod:`rodin_nb.runlog` (released migrations never change);
a test checks that these lists name exactly the migrated table's columns. Plain tuples and no imports,
so the writer (:mod:`rodin_nb.runlog`) and the pandas side (:mod:`rodin_nb.logframe`) both read them
without either paying for the other's imports.
"""

from __future__ import annotations

__all__ = ["FRAME_LEADING", "FRAME_TRAILING", "JSON_COLUMNS", "NOT_IN_FRAME", "TIME_COLUMNS"]

#: Columns stored as JSON text (lists and dicts).
JSON_COLUMNS = ("params", "asset_ids", "files", "sha256", "bbox", "textures")

#: Columns holding ISO-8601 UTC times.
TIME_COLUMNS = ("submitted_at", "created_at", "started_at", "finished_at", "updated_at")

#: ``log.df`` column order: these, then one column per request parameter, then :data:`FRAME_TRAILING`.
FRAME_LEADING = ("run_id", "sweep_id", "backend", "model_id")
FRAME_TRAILING = (
    "status", "progress", "job_id", "cost", "submitted_at", "created_at", "started_at", "finished_at",
    "queue_s", "duration_s", "asset_ids", "files", "sha256", "faces", "vertices", "bbox", "textures",
    "error", "hint", "reuse", "params_hash", "service", "updated_at", "rodin_nb_version",
)  # fmt: skip

#: Table columns ``log.df`` does not show as such: ``params`` becomes the parameter columns (``seed``
#: among them, so the table's own ``seed`` copy is not repeated); ``owner`` is the submitter's bookkeeping.
NOT_IN_FRAME = ("params", "seed", "owner")
