"""The one model the sandbox serves, read from the bundled schema snapshot.

The sandbox shares only the schema with the client (STYLE.md): this snapshot, which each side reads
with its own code, so a misreading on one side shows up as a disagreement in the tests, and the few
rules between fields that both must apply alike (Sketch's forced quality, the seed range, canonical
JSON), which live once in :mod:`rodin_nb.rules`.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
from typing import Any

MODEL_ID = "model_rodin-hyper3d"

#: Sandbox price in creative units per tier (``tier`` is the only input with ``costImpact``).
TIER_PRICE_CU: dict[str, int] = {"Sketch": 10, "Regular": 20}


@functools.lru_cache(maxsize=1)
def _snapshot() -> dict[str, Any]:
    path = importlib.resources.files("rodin_nb") / "data" / f"{MODEL_ID}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    # The "_snapshot" note documents provenance for humans; the live API has no such key.
    data.pop("_snapshot", None)
    return data


def model_document() -> dict[str, Any]:
    """``{"model": {...}}`` exactly as ``GET /v1/models/{modelId}`` returns it (a fresh copy)."""
    return copy.deepcopy(_snapshot())


def model_inputs() -> list[dict[str, Any]]:
    """The model's ``inputs`` list (shared, read-only: do not mutate)."""
    inputs: list[dict[str, Any]] = _snapshot()["model"]["inputs"]
    return inputs


def input_defaults() -> dict[str, Any]:
    """``{name: default}`` for every input that declares a default."""
    return {i["name"]: i["default"] for i in model_inputs() if "default" in i}


def price_cu(body: dict[str, Any]) -> int:
    """Creative units a generate body costs in the sandbox."""
    tier = body.get("tier", input_defaults().get("tier", "Regular"))
    return TIER_PRICE_CU.get(str(tier), TIER_PRICE_CU["Regular"])
