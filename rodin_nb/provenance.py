"""``rn.manifest(client)``: the environment a set of results came from, for a run log exported with a paper.

A run log row already says what was asked (parameters, seed), of which model and service, and which
files came back (sha256). What it cannot say is the environment around it: the packages that read,
rendered and analysed the files, and the exact input schema the requests were validated against. The
manifest adds those, as one JSON-ready dict. It never holds a secret or an expiring URL; the embedded
sandbox's loopback address (a new port each time) is left out too.

(The module is not named ``manifest``: importing ``rodin_nb.manifest`` would then set the package's
``manifest`` attribute to the module, hiding the function.)
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .rules import canonical_json

if TYPE_CHECKING:
    from .client import Client

__all__ = ["PACKAGES", "manifest", "schema_sha256"]

#: Distributions whose versions the manifest records (None when not installed).
PACKAGES = (
    "requests",
    "numpy",
    "pandas",
    "pyarrow",
    "trimesh",
    "pillow",
    "ipywidgets",
    "pythreejs",
    "vtk",
    "scipy",
    "matplotlib",
)


def schema_sha256(inputs: Any) -> str:
    """sha256 of the model's inputs (names, types, allowed values, defaults, rules) as canonical JSON.

    Only the inputs: the request contract. The model record's other fields (``updatedAt``, tags, ...)
    change without changing what a request means.
    """
    return hashlib.sha256(canonical_json(inputs).encode("utf-8")).hexdigest()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def manifest(
    client: Client,
    path: str | os.PathLike[str] | None = None,
    *,
    packages: tuple[str, ...] = PACKAGES,
) -> dict[str, Any]:
    """The environment of ``client``'s results: versions, service, model schema hash, run-log summary.

    Parameters
    ----------
    client : the :class:`~rodin_nb.Client` whose workspace is being published.
    path : also write the manifest there as JSON (sorted keys); folders are created.
    packages : distributions whose versions to record.

    Returns
    -------
    dict
        ``created_at`` (UTC), ``rodin_nb``, ``python``, ``platform``, ``packages`` (name -> version or
        None), ``backend`` ("sandbox" or "scenario"), ``service`` ("sandbox" or the API host),
        ``model_id``, ``schema`` (``source``: "live" or "snapshot"; ``sha256`` of its inputs, see
        :func:`schema_sha256`) and ``run_log`` (``runs``, ``sweeps``, and the ``backends`` and
        ``rodin_nb_versions`` its rows were made with).
    """
    schema = client.schema
    rows = client.log.rows()
    data: dict[str, Any] = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rodin_nb": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in packages},
        "backend": client.backend,
        "service": client.service,
        "model_id": client.model_id,
        "schema": {
            "source": schema.source,
            "sha256": schema_sha256(schema.raw.get("inputs", [])),
        },
        "run_log": {
            "runs": len(rows),
            "sweeps": [entry["sweep_id"] for entry in client.log.sweeps()],
            "backends": sorted({str(row["backend"]) for row in rows if row.get("backend")}),
            "rodin_nb_versions": sorted(
                {str(row["rodin_nb_version"]) for row in rows if row.get("rodin_nb_version")}
            ),
        },
    }
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return data
