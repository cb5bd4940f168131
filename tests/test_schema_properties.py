"""Property-based: the client's validator and the sandbox's independent checks agree.

Every request the validator accepts is accepted by the sandbox (checked with a dry run, which validates
like a real submission without creating a job); every one it rejects names the offending fields.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import rodin_nb as rn
from rodin_nb.sandbox import SandboxServer, serve


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[SandboxServer, str]]:
    with serve() as sb:
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), "green").save(buffer, format="PNG")
        image = base64.b64encode(buffer.getvalue()).decode()
        asset = requests.post(sb.url + "/assets", json={"name": "g.png", "image": image}, timeout=10).json()
        yield sb, asset["asset"]["id"]


def value_for(name: str, asset_id: str) -> st.SearchStrategy[Any]:
    """Mostly-valid values with a sprinkling of wrong ones, per input."""
    schema = rn.ModelSchema.snapshot()
    spec = schema[name]
    wrong = st.sampled_from([None, "", 3.5, -1, True, "nonsense", ["x"]])
    if spec.allowed_values:
        good: st.SearchStrategy[Any] = st.sampled_from(spec.allowed_values)
    elif spec.type == "boolean":
        good = st.booleans()
    elif name == "seed":
        good = st.integers(min_value=-5, max_value=65540)
    elif name == "images":
        good = st.lists(st.just(asset_id), min_size=0, max_size=6)
    else:
        good = st.text(min_size=0, max_size=30)
    return st.one_of(good, good, good, wrong)


@st.composite
def params(draw: st.DrawFn, asset_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in rn.ModelSchema.snapshot().names:
        if draw(st.booleans()):
            out[name] = draw(value_for(name, asset_id))
    if draw(st.integers(0, 9)) == 0:
        out[draw(st.sampled_from(["use_hyper", "Tier", "geometryFileFormat"]))] = "x"
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_validator_and_sandbox_agree(server: tuple[SandboxServer, str], data: st.DataObject) -> None:
    sb, asset_id = server
    raw = data.draw(params(asset_id))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rn.RodinWarning)  # warnings are tested in test_schema.py
            req = rn.RodinRequest(**raw)
    except rn.ValidationError as exc:
        assert exc.problems, "a rejection must list its problems"
        for field, message in exc.problems:
            assert field in raw or field in ("prompt", "images"), (field, message)
            assert message
        return
    response = requests.post(
        sb.url + "/generate/custom/model_rodin-hyper3d",
        params={"dryRun": "true"},
        json=req.to_body(),
        timeout=10,
    )
    assert response.status_code == 269, (req.to_body(), response.text)


def test_the_property_test_reached_the_sandbox(server: tuple[SandboxServer, str]) -> None:
    """Guard against a vacuous property: many generated requests must have been accepted and sent."""
    sb, _ = server
    sent = sb.stats()["requests"].get("POST /v1/generate/custom/{modelId}", 0)
    assert sent >= 20, f"only {sent} accepted requests reached the sandbox"
