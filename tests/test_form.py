"""rn.GenerateForm, headless (ipywidgets gives a dummy comm outside a kernel): the form a user clicks."""

from __future__ import annotations

import io
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image

import rodin_nb as rn
from rodin_nb.sandbox import SandboxServer

GENERATE = "POST /v1/generate/custom/{modelId}"


def test_one_control_per_schema_input_with_defaults(client: rn.Client) -> None:
    form = rn.GenerateForm(client)
    assert list(form.fields) == client.schema.names
    assert form.fields["tier"].options == ("Sketch", "Regular") and form.fields["tier"].value == "Regular"
    assert form.fields["quality"].value == "high" and form.fields["useHyper"].value is False
    assert form.fields["seed"].max == 65535 and form.random_seed.value is True


def test_estimate_button_shows_the_price(client: rn.Client, sandbox: SandboxServer) -> None:
    form = rn.GenerateForm(client, prompt="a carved wooden chair", tier="Sketch")
    form.estimate_button.click()
    assert "estimated cost: <b>10</b>" in form.message.value
    assert not form.estimate_button.disabled and sandbox.stats()["jobs_created"] == 0


def test_bad_input_is_shown_in_the_form_and_nothing_is_sent(
    client: rn.Client, sandbox: SandboxServer
) -> None:
    form = rn.GenerateForm(client)  # no prompt, no image
    form.generate_button.click()
    assert "prompt" in form.message.value and "image" in form.message.value
    assert form.run is None and not form.generate_button.disabled
    assert sandbox.stats()["requests"].get(GENERATE, 0) == 0


def test_generate_runs_and_progress_follows(client: rn.Client) -> None:
    form = rn.GenerateForm(client, prompt="a ceramic teapot", quality="extra-low", seed=42)
    form.generate_button.click()
    run = form.run
    assert run is not None and run.seed == 42 and run.params["quality"] == "extra-low"
    run.wait(timeout=30)
    assert form.progress.value == 1.0 and "success" in form.status.value
    deadline = time.monotonic() + 20  # the view is built by the listener right after the run ends
    while form.result_view is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert form.result_view is not None  # the result (a view, or its preview image) goes under the form


def test_random_seed_draws_a_new_seed_each_time(client: rn.Client) -> None:
    form = rn.GenerateForm(client, prompt="a stool", quality="extra-low")
    assert "seed" not in form.params()
    form.set("seed", 7)
    assert form.params()["seed"] == 7 and not form.random_seed.value


def test_uploaded_pictures_become_images(client: rn.Client, sandbox: SandboxServer) -> None:
    form = rn.GenerateForm(client, quality="extra-low", seed=1)
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "orange").save(buffer, format="PNG")
    form.fields["images"].value = [
        {
            "name": "ref.png",
            "type": "image/png",
            "size": len(buffer.getvalue()),
            "content": memoryview(buffer.getvalue()),
            "last_modified": datetime.now(timezone.utc),
        }
    ]
    run = form.generate()
    assert run is not None and run.params["images"][0].startswith("asset_")
    run.wait(timeout=30)
    assert sandbox.stats()["requests"]["POST /v1/assets"] == 1


def test_unknown_field_is_refused(client: rn.Client) -> None:
    with pytest.raises(rn.ValidationError, match="allowed"):
        rn.GenerateForm(client, use_hyper=True)


def test_repeated_request_is_answered_from_the_log(
    client: rn.Client, sandbox: SandboxServer, tmp_path: Path
) -> None:
    form = rn.GenerateForm(client, prompt="a vase", quality="extra-low", seed=3)
    first = form.generate()
    assert first is not None
    first.wait(timeout=30)
    second = form.generate()
    assert second is first and "nothing paid" in form.message.value
    assert sandbox.stats()["jobs_created"] == 1


def test_sketch_needs_no_quality_and_notes_are_shown(client: rn.Client) -> None:
    form = rn.GenerateForm(client, prompt="a chair", tier="Sketch")
    assert "quality" not in form.params() and form.request().params["quality"] == "medium"
    form.set("quality", "low")
    form.estimate()
    assert "note:" in form.message.value and "forces quality" in form.message.value
