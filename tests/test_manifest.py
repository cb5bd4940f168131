"""``rn.manifest(client)``: the environment beside an exported run log (versions, schema hash, backend)."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import rodin_nb as rn
from rodin_nb.provenance import schema_sha256
from rodin_nb.sandbox import SandboxServer
from rodin_nb.schema import ModelSchema

from .conftest import make_client


def test_manifest_describes_the_environment_and_the_log(sandbox: SandboxServer, tmp_path: Path) -> None:
    with make_client(sandbox, tmp_path / "ws", api_key="key-never-written", api_secret="secret-xyz") as c:
        sweep = c.sweep(prompt="a carved wooden chair", seed=[1, 2], tier="Sketch")
        sweep.run(progress=False)
        data = rn.manifest(c, tmp_path / "out" / "manifest.json")

        assert data["rodin_nb"] == rn.__version__
        assert data["packages"]["pandas"] == metadata.version("pandas")
        assert data["packages"]["pillow"] == metadata.version("pillow")
        assert (data["backend"], data["service"], data["model_id"]) == (
            "sandbox",
            "sandbox",
            "model_rodin-hyper3d",
        )
        assert data["schema"]["source"] == "live"
        assert len(data["schema"]["sha256"]) == 64
        assert data["run_log"] == {
            "runs": 2,
            "sweeps": [sweep.sweep_id],
            "backends": ["sandbox"],
            "rodin_nb_versions": [rn.__version__],
        }
        written = (tmp_path / "out" / "manifest.json").read_text(encoding="utf-8")
        assert json.loads(written) == data
        # Never a secret, never the sandbox's throwaway loopback address.
        for text in (written, repr(data)):
            assert "key-never-written" not in text and "secret-xyz" not in text
            assert "127.0.0.1" not in text


def test_schema_hash_is_the_inputs_only() -> None:
    """The sandbox serves the bundled schema: live and snapshot hash the same; any input change shows."""
    snapshot = ModelSchema.snapshot()
    inputs = list(snapshot.raw["inputs"])
    assert schema_sha256(inputs) == schema_sha256(json.loads(json.dumps(inputs)))
    changed = [{**inputs[0], "maxLength": 1}, *inputs[1:]]
    assert schema_sha256(changed) != schema_sha256(inputs)


def test_unknown_package_is_none(sandbox: SandboxServer, tmp_path: Path) -> None:
    with make_client(sandbox, tmp_path / "ws") as c:
        data = rn.manifest(c, packages=("numpy", "surely-not-installed-pkg"))
    assert data["packages"] == {"numpy": metadata.version("numpy"), "surely-not-installed-pkg": None}
    assert data["run_log"]["runs"] == 0
