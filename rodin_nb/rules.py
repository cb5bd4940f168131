"""Rodin's request rules that both the client and the embedded sandbox act on, each written once.

The client applies them before sending (validation, the body it sends and logs); the sandbox applies
them to what it generates and how long it takes. One definition keeps the two from drifting apart: a
Sketch request the client logs as ``quality='medium'`` is one the sandbox also builds at medium.

Standard library only, so the sandbox can import it without the client's HTTP or run-log code.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

__all__ = [
    "SEED_MAX",
    "SEED_MIN",
    "SKETCH_QUALITY",
    "canonical_json",
    "draw_seed",
    "effective_quality",
    "forced_quality",
    "hyper_allowed",
    "uses_hyper",
]

#: Seeds Rodin accepts, inclusive (API_CONTRACT.md §6; the bundled schema's ``seed`` min/max).
SEED_MIN = 0
SEED_MAX = 65535

#: The one quality the Sketch tier runs at, whatever was asked (API_CONTRACT.md §6.1).
SKETCH_QUALITY = "medium"
_SKETCH = "Sketch"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the basis of every hash rodin_nb stores.

    Non-ASCII text is kept as is (``ensure_ascii=False``): stored request hashes depend on these exact
    bytes, so this must not change.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def draw_seed(rng: random.Random | None = None) -> int:
    """A seed for a request that gave none, from ``rng`` (a fresh system RNG by default)."""
    return (rng or random.SystemRandom()).randint(SEED_MIN, SEED_MAX)


def forced_quality(params: Mapping[str, Any]) -> str | None:
    """The quality the service runs ``params`` at regardless of the asked one, or None if it follows it.

    Sketch forces ``medium`` (API_CONTRACT.md §6.1).
    """
    return SKETCH_QUALITY if params.get("tier") == _SKETCH else None


def effective_quality(params: Mapping[str, Any], default: Any = None) -> Any:
    """The quality a request really runs at: the forced one, else the asked one (``default`` if none)."""
    forced = forced_quality(params)
    return forced if forced is not None else params.get("quality", default)


def hyper_allowed(params: Mapping[str, Any]) -> bool:
    """Whether hyper mode can apply at this tier (Sketch never uses it)."""
    return params.get("tier") != _SKETCH


def uses_hyper(params: Mapping[str, Any]) -> bool:
    """Whether a request really runs in hyper mode: asked for, at a tier that has it."""
    return bool(params.get("useHyper")) and hyper_allowed(params)
