"""Hypothesis fuzz of sweep planning: ``client.sweep(...)`` and ``sweep.start(budget)`` against a sandbox.

Hypothesis draws plan arguments a notebook user could type: seed lists (huge, negative, bools, floats,
duplicates), tiers and qualities (bad strings, wrong types), prompts (lone surrogates, huge, empty),
``cases`` (good and malformed), ``concurrency`` and budgets. The properties:

- only :class:`rodin_nb.ValidationError` escapes planning (a refused budget: ``BudgetExceeded``);
- planning sends nothing at all, valid or not (the sandbox's request counters do not move), and an
  invalid budget is refused before even the estimate's dry run; no job is ever created;
- a plan is refused exactly when one of its rows, planned alone as a single request, is refused;
- a valid plan has one row per distinct request of its grid (a case repeating a grid point, Sketch at
  two qualities: one row), in first-seen order, and planning it again gives the same sweep id.

The property runs in a worker process (``@pytest.mark.worker``: memory-capped, killed on a hang; see
``tests/conftest.py``), with hypothesis deadlines off.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

import rodin_nb as rn
from rodin_nb.sandbox import SandboxServer, serve
from rodin_nb.schema import RodinRequest, RodinWarning

from .conftest import make_client

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


@pytest.fixture(scope="module")
def planner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxServer, rn.Client]]:
    with serve(job_seconds=0.3) as sb, make_client(sb, tmp_path_factory.mktemp("sweep-fuzz")) as client:
        client.schema  # noqa: B018  (read once per client; planning itself must send nothing)
        yield sb, client


# --------------------------------------------------------------------------- strategies


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly good values (about five times in six): plans are then valid often enough to check rows."""
    # (Not one_of(good, good, ..., bad): one_of drops repeated branches.)
    return st.integers(0, 5).flatmap(lambda i: bad if i == 5 else good)


seeds = mostly(
    st.integers(0, 65535),
    st.integers(-(2**70), 2**70)
    | st.sampled_from([65536, -1, 10**400, True, False, 1.0, 1.5, math.nan, math.inf, "7", b"7"]),
)
tiers = mostly(
    st.sampled_from(["Regular", "Sketch"]), st.sampled_from(["Detail", "sketch", "", " Regular", 1, "\ud800"])
)
qualities = mostly(
    st.sampled_from(["high", "medium", "low", "extra-low"]), st.sampled_from(["ultra", "", "HIGH", 3, None])
)
prompts = mostly(
    st.sampled_from(["a chair", "a mug", "a lamp", "x" * 2000]) | st.text(min_size=1, max_size=20),
    st.sampled_from(["", " ", "\ud800", "a \udfff chair", "\x00", "x" * 2001, "x" * 100_000, 5, None]),
)
others = {
    "material": mostly(st.sampled_from(["PBR", "Shaded"]), st.sampled_from(["pbr", "", None, 0])),
    "useHyper": mostly(st.booleans(), st.sampled_from(["true", 1, None])),
    "TAPose": mostly(st.booleans(), st.sampled_from(["false", 0])),
}


def axis(values: st.SearchStrategy[Any], max_size: int) -> st.SearchStrategy[Any]:
    """A fixed value, or a list (or tuple) to sweep over, duplicates allowed, sometimes empty."""
    return st.one_of(
        values,
        st.lists(values, min_size=1, max_size=max_size),
        st.lists(values, min_size=1, max_size=max_size).map(lambda v: v + v[:1]),  # a duplicate
        st.lists(values, max_size=2).map(tuple),
    )


grids = st.fixed_dictionaries(
    {"prompt": axis(prompts, 3), "seed": axis(seeds, 5)},
    optional={
        "tier": axis(tiers, 3),
        "quality": axis(qualities, 3),
        **{k: v | st.lists(v, min_size=1, max_size=2) for k, v in others.items()},
    },
)
#: Rarely, a name the grid should not have, or one that needs several images.
extras = mostly(
    st.just({}), st.sampled_from([{"bogus": 1}, {"conditionMode": "stack"}, {"conditionMode": "fuse"}])
)
grids = st.builds(lambda grid, extra: {**grid, **extra}, grids, extras)
case_dicts = st.fixed_dictionaries(
    {},
    optional={"seed": seeds, "tier": tiers, "quality": qualities, "prompt": prompts},
)
cases = mostly(
    st.none() | st.lists(case_dicts, max_size=3),
    st.sampled_from(
        [{"seed": 1}, "seed", [None], ["seed"], [{1: 2}], [("seed", 1)], 7, [[]], [{"bogus": 1}]]
    ),
)
concurrencies = mostly(
    st.none() | st.integers(1, 20), st.integers(-2, 0) | st.sampled_from([1.5, "3", True, math.inf])
)
budgets = st.one_of(
    st.none(),
    st.sampled_from([0, 0.0, 0.5, -1, -0.0, math.nan, -math.inf, "10", True, [1], b"1"]),
    st.floats(max_value=0.9),
)


# --------------------------------------------------------------------------- the expectation


def rows_of(grid: Mapping[str, Any], cases: Any) -> list[dict[str, Any]]:
    """The grid's rows, written out here as the docs describe them (lists sweep, scalars are fixed)."""
    axes = {k: list(v) for k, v in grid.items() if isinstance(v, (list, tuple))}
    fixed = {k: v for k, v in grid.items() if k not in axes}

    def product(names: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*names.values())]

    rows = [{**fixed, **combo} for combo in product(axes)] if axes or not cases else []
    for case in cases or []:
        rows += [
            {**fixed, **combo, **case} for combo in product({k: v for k, v in axes.items() if k not in case})
        ]
    return rows


def alone(row: Mapping[str, Any]) -> RodinRequest | None:
    """The row planned as a single request, or None when that is refused."""
    try:
        return RodinRequest(schema=rn.ModelSchema.snapshot(), **row)
    except rn.ValidationError:
        return None


def well_formed(grid: Mapping[str, Any], cases: Any, concurrency: Any) -> bool:
    """Whether the arguments themselves (not the rows' values) are what ``sweep()`` accepts."""
    if any(isinstance(v, (list, tuple)) and not v for v in grid.values()):
        return False
    if cases is not None and not (
        isinstance(cases, list)
        and all(isinstance(c, dict) and all(isinstance(k, str) for k in c) for c in cases)
    ):
        return False
    return concurrency is None or (type(concurrency) is int and concurrency >= 1)


def a_budget(budget: Any) -> bool:
    """A number of creative units >= 0 (what ``start(budget=...)`` accepts besides None)."""
    return type(budget) in (int, float) and not math.isnan(budget) and budget >= 0


# --------------------------------------------------------------------------- the property


@pytest.mark.worker
@FUZZ
@given(grid=grids, cases=cases, concurrency=concurrencies, budget=budgets)
def test_sweep_planning(
    planner: tuple[SandboxServer, rn.Client], grid: dict[str, Any], cases: Any, concurrency: Any, budget: Any
) -> None:
    sb, client = planner
    assume(math.prod(len(v) for v in grid.values() if isinstance(v, (list, tuple))) <= 300)
    before = sb.stats()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RodinWarning)  # Sketch forcing medium quality: a note, not an error
        try:
            sweep = client.sweep(cases=cases, concurrency=concurrency, **grid)
        except rn.ValidationError as exc:
            sweep = None
            refusal: rn.ValidationError | None = exc
        else:
            refusal = None
        assert sb.stats()["requests"] == before["requests"], "planning sent a request"

        wanted = rows_of(grid, cases) if well_formed(grid, cases, concurrency) else None
        singles = [alone(row) for row in wanted] if wanted is not None else None
        if singles is None or any(req is None for req in singles):
            assert refusal is not None, "a plan with a refused row (or bad arguments) was accepted"
            assert refusal.problems and all(field and message for field, message in refusal.problems)
            return
        assert sweep is not None, f"a plan of valid rows was refused: {refusal}"

        # One plan row per distinct request, first-seen order: exactly the rows' requests.
        hashes = [req.params_hash for req in sweep.requests]
        assert len(hashes) == len(set(hashes)) == len(sweep.plan)
        assert hashes == list(dict.fromkeys(req.params_hash for req in singles if req is not None))
        assert list(sweep.plan["params_hash"]) == hashes
        assert client.sweep(cases=cases, concurrency=concurrency, **grid).sweep_id == sweep.sweep_id
        assert sb.stats()["requests"] == before["requests"]

        if budget is None:
            return  # it would run: budgets that stop it before any job are the ones tried
        try:
            sweep.start(budget)
        except rn.ValidationError:
            assert not a_budget(budget), f"a good budget was refused: {budget!r}"
            assert sb.stats()["requests"] == before["requests"], "a bad budget was refused after a request"
        except rn.BudgetExceeded:
            assert a_budget(budget) and budget < sweep.estimate()
        else:
            sweep.cancel()
            pytest.fail(f"a sweep started with a budget below any price: {budget!r}")
        assert sb.stats()["jobs_created"] == before["jobs_created"]
