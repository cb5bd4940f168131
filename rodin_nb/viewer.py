"""Inline 3D views of results with pythreejs (being built: issue 5)."""

from __future__ import annotations

from typing import Any

__all__ = ["compare", "show"]


def show(target: Any, **options: Any) -> Any:
    """An inline 3D view of a Run or any GLB file."""
    raise NotImplementedError("the viewer is being built (issue 5)")


def compare(runs: Any, **options: Any) -> Any:
    """A grid of views with linked cameras."""
    raise NotImplementedError("the viewer is being built (issue 5)")


def compare_runs(runs: Any, *, rows: str = "seed", cols: str = "tier", **options: Any) -> Any:
    """A grid of views arranged by two run parameters."""
    raise NotImplementedError("the viewer is being built (issue 5)")
