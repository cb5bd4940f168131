"""The request schema and validator: every problem at once, named, with what is allowed."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest
from PIL import Image

import rodin_nb as rn
from rodin_nb.schema import ModelSchema, snapshot_response


def problems_of(**params: object) -> dict[str, list[str]]:
    with pytest.raises(rn.ValidationError) as info:
        rn.RodinRequest(**params)
    grouped: dict[str, list[str]] = {}
    for field, message in info.value.problems:
        grouped.setdefault(field, []).append(message)
    return grouped


class TestSnapshot:
    def test_snapshot_has_the_documented_inputs(self) -> None:
        schema = ModelSchema.snapshot()
        assert schema.model_id == "model_rodin-hyper3d"
        assert schema.source == "snapshot"
        assert schema.names == [
            "prompt",
            "images",
            "conditionMode",
            "material",
            "quality",
            "useHyper",
            "tier",
            "TAPose",
            "seed",
        ]
        assert schema["quality"].allowed_values == ("high", "medium", "low", "extra-low")
        assert schema["seed"].is_integer and schema["seed"].max == 65535
        assert schema.cost_inputs == ["tier"]

    def test_snapshot_response_is_the_wire_shape(self) -> None:
        body = snapshot_response()
        assert set(body) == {"model"}
        assert body["model"]["inputs"][0]["name"] == "prompt"

    def test_markdown_table_lists_every_input(self) -> None:
        text = ModelSchema.snapshot()._repr_markdown_()
        for name in ModelSchema.snapshot().names:
            assert f"`{name}`" in text


class TestRodinRequest:
    def test_defaults_are_explicit_and_a_seed_is_drawn(self) -> None:
        req = rn.RodinRequest(prompt="a carved wooden chair")
        body = req.to_body()
        assert body == {
            "prompt": "a carved wooden chair",
            "conditionMode": "concat",
            "material": "PBR",
            "quality": "high",
            "useHyper": False,
            "tier": "Regular",
            "TAPose": False,
            "seed": req.seed,
        }
        assert isinstance(req.seed, int) and 0 <= req.seed <= 65535
        assert req.seed_drawn

    def test_given_seed_is_kept_and_hash_is_stable(self) -> None:
        a = rn.RodinRequest(prompt="chair", seed=7, tier="Regular")
        b = rn.RodinRequest(tier="Regular", seed=7, prompt="chair")
        assert a.seed == 7 and not a.seed_drawn
        assert a.params_hash == b.params_hash and a == b
        assert a.params_hash != rn.RodinRequest(prompt="chair", seed=8).params_hash

    def test_sketch_records_medium_quality(self) -> None:
        assert rn.RodinRequest(prompt="chair", tier="Sketch", seed=1).params["quality"] == "medium"

    def test_sketch_with_explicit_quality_warns(self) -> None:
        with pytest.warns(rn.RodinWarning, match="forces quality='medium'"):
            req = rn.RodinRequest(prompt="chair", tier="Sketch", quality="high", seed=1)
        # Sent and logged as what the service will do, so it is the same request as the default.
        assert req.params["quality"] == "medium"
        assert req.params_hash == rn.RodinRequest(prompt="chair", tier="Sketch", seed=1).params_hash

    def test_sketch_refuses_hyper_mode(self) -> None:
        assert "useHyper" in problems_of(prompt="chair", tier="Sketch", useHyper=True)

    def test_every_problem_is_listed_with_what_is_allowed(self) -> None:
        found = problems_of(
            prompt="", tier="sketch", seed=70000, quality="ultra", use_hyper=True, material=3, TAPose="yes"
        )
        assert set(found) == {"prompt", "tier", "seed", "quality", "use_hyper", "material", "TAPose"}
        assert "did you mean 'Sketch'" in found["tier"][0] and "'Regular'" in found["tier"][0]
        assert "0..65535" in found["seed"][0]
        assert "'extra-low'" in found["quality"][0]
        assert "did you mean 'useHyper'" in found["use_hyper"][0]
        assert "must be a string" in found["material"][0] and "'Shaded'" in found["material"][0]
        assert "true or false" in found["TAPose"][0]

    @pytest.mark.parametrize("seed", [-1, 65536, 1.5, "7", True])
    def test_bad_seeds(self, seed: object) -> None:
        assert "seed" in problems_of(prompt="chair", seed=seed)

    def test_integral_seed_types_are_accepted(self) -> None:
        import numpy as np

        assert rn.RodinRequest(prompt="chair", seed=np.int64(12)).to_body()["seed"] == 12
        assert rn.RodinRequest(prompt="chair", seed=12.0).to_body()["seed"] == 12

    def test_neither_prompt_nor_images(self) -> None:
        found = problems_of(tier="Regular")
        assert "prompt" in found and "images" in found
        assert "at least one image" in found["prompt"][0]

    def test_too_many_images(self) -> None:
        found = problems_of(images=[f"asset_{i}" for i in range(6)])
        assert found == {"images": ["6 images given; at most 5 allowed"]}

    def test_images_accept_ids_paths_bytes_and_pil(self, tmp_path: Path) -> None:
        picture = Image.new("RGB", (8, 8), "red")
        path = tmp_path / "ref.png"
        picture.save(path)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        req = rn.RodinRequest(images=["asset_abc", path, str(path), buffer.getvalue(), picture], seed=3)
        assert len(req.local_images) == 4
        with pytest.raises(ValueError, match="must be uploaded first"):
            req.to_body()
        # The same picture gives the same identity whichever way it was passed.
        ident = req.identity()["images"]
        assert ident[0] == "asset_abc" and ident[1] == ident[2] == ident[3]

    def test_bad_image_items_are_named(self, tmp_path: Path) -> None:
        found = problems_of(images=[str(tmp_path / "missing.png"), b"", 42])
        assert len(found["images"]) == 3
        assert "[0]" in found["images"][0] and "[1]" in found["images"][1] and "[2]" in found["images"][2]

    def test_none_means_not_given(self) -> None:
        req = rn.RodinRequest(prompt="chair", quality=None, seed=None)
        assert req.params["quality"] == "high" and req.seed is not None

    def test_replace_keeps_seed_and_revalidates(self) -> None:
        req = rn.RodinRequest(prompt="chair", seed=9)
        other = req.replace(tier="Sketch")
        assert other.seed == 9 and other.params["quality"] == "medium"
        with pytest.raises(rn.ValidationError, match="quality"):
            req.replace(quality="best")

    def test_fuse_with_one_image_warns(self) -> None:
        with pytest.warns(rn.RodinWarning, match="two or more images"):
            rn.RodinRequest(images=["asset_a"], conditionMode="fuse", seed=1)

    def test_valid_requests_do_not_warn(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            rn.RodinRequest(prompt="chair", tier="Regular", quality="low", material="Shaded", seed=0)

    def test_validation_error_is_a_value_error(self) -> None:
        with pytest.raises(ValueError):
            rn.RodinRequest(prompt="")


def test_empty_image_list_means_no_images() -> None:
    req = rn.RodinRequest(prompt="chair", images=[], seed=1)
    assert "images" not in req.to_body()


@pytest.mark.parametrize(
    ("params", "field", "says"),
    [
        ({"prompt": "a chair", "seed": 10**400}, "seed", "about 400 digits is out of range"),
        ({"prompt": 10**5000}, "prompt", "must be a string"),
        ({"prompt": "a chair \ud800"}, "prompt", "lone surrogate"),
        ({"prompt": "a chair", "schema": 5}, "schema", "must be a ModelSchema"),
    ],
    ids=["huge-seed", "huge-int-prompt", "lone-surrogate", "not-a-schema"],
)
def test_hostile_values_are_validation_errors_naming_the_field(
    params: dict[str, object], field: str, says: str
) -> None:
    """Values that used to escape as OverflowError, ValueError (int digits) or UnicodeEncodeError."""
    with pytest.raises(rn.ValidationError) as info:
        rn.RodinRequest(**params)
    assert info.value.fields == [field] and says in info.value.problems[0][1]
