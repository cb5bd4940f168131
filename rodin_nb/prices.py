"""What runs cost: the service's dry-run price per price class, asked once per client.

Rodin's price depends only on the inputs the schema marks ``costImpact`` (tier, hyper, ...), so every
request with the same values of those costs the same. A sweep, a re-plan of it and the sweep builder's
live estimate all read one ``client.prices``; changing seeds or prompts never asks the service again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from .schema import ModelSchema, RodinRequest

__all__ = ["PriceBook"]


class PriceBook:
    """Dry-run prices by price class. ``price(req)`` asks the service the first time a class is seen."""

    def __init__(self, schema: Callable[[], ModelSchema], dry_run: Callable[[RodinRequest], float]) -> None:
        self._schema = schema  # a callable: the client loads its schema on first use
        self._dry_run = dry_run
        self._known: dict[tuple[Any, ...], float] = {}
        self._lock = threading.Lock()

    def class_of(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The values of the inputs that change the price (``costImpact``), in the schema's order."""
        return tuple(params.get(name) for name in self._schema().cost_inputs)

    def known(self, request: RodinRequest) -> float | None:
        """The price if this request's class was asked before, else None (nothing is sent)."""
        with self._lock:
            return self._known.get(self.class_of(request.params))

    def price(self, request: RodinRequest) -> float:
        """The price of one run of ``request``: one dry run per class, then from memory."""
        key = self.class_of(request.params)
        with self._lock:
            if key in self._known:
                return self._known[key]
        cost = self._dry_run(request)  # outside the lock: a slow service must not block readers
        with self._lock:
            return self._known.setdefault(key, cost)

    def classes(self) -> dict[tuple[Any, ...], float]:
        """Every price known so far, by class (for displays)."""
        with self._lock:
            return dict(self._known)
