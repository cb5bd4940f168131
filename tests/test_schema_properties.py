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


SCHEMA = rn.ModelSchema.snapshot()
WRONG_VALUES = ["", "   ", 3.5, -1, 70000, True, "nonsense", ["x"], {"a": 1}]
UNKNOWN_NAMES = ["use_hyper", "Tier", "geometryFileFormat"]


def good_value(name: str, asset_id: str) -> st.SearchStrategy[Any]:
    spec = SCHEMA[name]
    if spec.allowed_values:
        return st.sampled_from(spec.allowed_values)
    if spec.type == "boolean":
        return st.booleans()
    if name == "seed":
        return st.integers(min_value=0, max_value=65535)
    if name == "images":
        return st.lists(st.just(asset_id), min_size=1, max_size=5)
    return st.text(min_size=1, max_size=30).filter(str.strip)


@st.composite
def params(draw: st.DrawFn, asset_id: str) -> dict[str, Any]:
    """A valid request, then zero to two deliberate mistakes (bad values or unknown names)."""
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["prompt"] = draw(good_value("prompt", asset_id))
    if "prompt" not in out or draw(st.booleans()):
        out["images"] = draw(good_value("images", asset_id))
    for name in SCHEMA.names:
        if name not in ("prompt", "images") and draw(st.booleans()):
            out[name] = draw(good_value(name, asset_id))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        name = draw(st.sampled_from(SCHEMA.names + UNKNOWN_NAMES))
        out[name] = draw(st.sampled_from(WRONG_VALUES))
    return out


@pytest.mark.worker
def test_validator_and_sandbox_agree(server: tuple[SandboxServer, str]) -> None:
    sb, asset_id = server

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(data=st.data())
    def agree(data: st.DataObject) -> None:
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

    agree()
    # Guard against a vacuous property: many generated requests must have been accepted and sent.
    sent = sb.stats()["requests"].get("POST /v1/generate/custom/{modelId}", 0)
    assert sent >= 20, f"only {sent} accepted requests reached the sandbox"
