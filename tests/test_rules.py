"""Rules the client and the sandbox share (rodin_nb.rules): both sides act on them alike."""

from __future__ import annotations

import random

import pytest

import rodin_nb as rn
from rodin_nb.rules import SEED_MAX, SEED_MIN, canonical_json, draw_seed
from rodin_nb.sandbox import meshgen
from rodin_nb.sandbox.faults import FaultConfig, FaultInjector
from rodin_nb.sandbox.state import SandboxState
from rodin_nb.schema import ModelSchema, RodinRequest


class TestSketchQuality:
    def test_the_sandbox_builds_the_quality_the_client_sends_and_logs(self) -> None:
        """Sketch with quality=high is sent as medium, and the sandbox makes a medium mesh of it."""
        with pytest.warns(rn.RodinWarning, match="forces quality='medium'"):
            sent = RodinRequest(prompt="a chair", tier="Sketch", quality="high", seed=3).to_body()
        assert sent["quality"] == "medium"
        # The request as asked (what a caller posting directly sends) makes the very same file.
        assert meshgen.make_glb({**sent, "quality": "high"}) == meshgen.make_glb(sent)

    def test_sandbox_running_time_ignores_what_sketch_ignores(self) -> None:
        state = SandboxState(
            speed=1.0, job_seconds=None, parallel_jobs=1, faults=FaultInjector(FaultConfig())
        )
        plain = state.running_seconds({"prompt": "p", "tier": "Sketch"})
        assert (
            state.running_seconds({"prompt": "p", "tier": "Sketch", "quality": "high", "useHyper": True})
            == plain
        )
        assert state.running_seconds({"prompt": "p", "tier": "Regular", "quality": "high"}) > plain

    def test_the_client_refuses_sketch_with_hyper(self) -> None:
        with pytest.raises(rn.ValidationError, match="never uses hyper"):
            RodinRequest(prompt="a chair", tier="Sketch", useHyper=True)


class TestSeeds:
    def test_the_range_is_the_schemas(self) -> None:
        spec = ModelSchema.snapshot()["seed"]
        assert (spec.min, spec.max) == (SEED_MIN, SEED_MAX)

    def test_a_drawn_seed_is_one_the_schema_accepts(self) -> None:
        seed = RodinRequest(prompt="a chair").seed
        assert seed is not None and SEED_MIN <= seed <= SEED_MAX

    def test_seeded_draws_are_the_sandboxs_earlier_ones(self) -> None:
        """A sandbox with faults={'seed': ...} keeps drawing the job seeds it drew before."""
        ours, before = random.Random("5/job-seed"), random.Random("5/job-seed")
        assert [draw_seed(ours) for _ in range(20)] == [before.randrange(0, 65536) for _ in range(20)]


class TestCanonicalJson:
    def test_request_hashes_are_unchanged(self) -> None:
        """Run logs look requests up by these hashes: they must never change."""
        assert RodinRequest(prompt="a carved wooden chair", seed=7).params_hash == "bf3647ba8a2d1ee1"
        sketch = RodinRequest(prompt="une chaise sculptée · 椅子", tier="Sketch", quality="medium", seed=7)
        assert sketch.params_hash == "35c673dc767fc8de"

    def test_text_is_kept_as_is(self) -> None:
        assert canonical_json({"b": "é", "a": [1, 2]}) == '{"a":[1,2],"b":"é"}'
