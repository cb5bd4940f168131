"""rn.GenerateForm, headless (ipywidgets gives a dummy comm outside a kernel): the form a user clicks."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image

import rodin_nb as rn
from rodin_nb.sandbox import SandboxServer
from rodin_nb.schema import InputSpec, ModelSchema
from rodin_nb.widgetrows import LABEL_WIDTH

GENERATE = "POST /v1/generate/custom/{modelId}"


def test_one_control_per_schema_input_with_defaults(client: rn.Client) -> None:
    form = rn.GenerateForm(client)
    assert list(form.fields) == client.schema.names
    assert form.fields["tier"].options == ("Sketch", "Regular") and form.fields["tier"].value == "Regular"
    assert form.fields["quality"].value == "high" and form.fields["useHyper"].value is False
    assert form.fields["seed"].value == 0 and form.random_seed.value is True  # unbounded: see below


def test_estimate_button_shows_the_price(client: rn.Client, sandbox: SandboxServer) -> None:
    form = rn.GenerateForm(client, prompt="a carved wooden chair", tier="Sketch")
    form.estimate_button.click()
    assert "estimated cost: <b>10</b>" in form.message.value
    assert not form.estimate_button.disabled and sandbox.stats()["jobs_created"] == 0


def test_bad_input_is_shown_once_next_to_its_field_and_nothing_is_sent(
    client: rn.Client, sandbox: SandboxServer
) -> None:
    form = rn.GenerateForm(client)  # no prompt, no image
    # Shown as soon as the form is, without a click: once (under prompt), not again under images.
    text = "Give a prompt"
    assert text in form.notes["prompt"].value and text not in form.notes["images"].value
    assert _visible(form).count(text) == 1
    assert form.generate_button.disabled and form.estimate_button.disabled
    form.generate_button.click()  # a click that gets through anyway (click() ignores disabled)
    assert form.run is None and "fix the problem" in form.message.value
    assert sandbox.stats()["requests"].get(GENERATE, 0) == 0
    form.set("prompt", "a chair")  # fixed as the user types: the note goes, Generate comes back
    assert text not in _visible(form) and not form.generate_button.disabled


def test_a_fresh_form_says_what_it_needs_quietly_then_plainly(client: rn.Client) -> None:
    """Untouched, the missing prompt is a grey hint; once the user has edited, a red problem."""
    form = rn.GenerateForm(client)
    assert "#57606a" in form.notes["prompt"].value and "#cf222e" not in form.notes["prompt"].value
    form.fields["prompt"].value = "a chair"
    form.fields["prompt"].value = ""
    assert "Give a prompt" in form.notes["prompt"].value and "#cf222e" in form.notes["prompt"].value


def _visible(form: rn.GenerateForm) -> str:
    """Every message line the form shows (notes under fields, form-level lines, the last action's)."""
    lines = [*form.notes.values(), form.problems, form.warnings, form.message]
    return "\n".join(line.value for line in lines if line.layout.display != "none")


def _wait_for(predicate: Callable[[], object], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_generate_runs_and_progress_follows(client: rn.Client) -> None:
    form = rn.GenerateForm(client, prompt="a ceramic teapot", quality="extra-low", seed=42)
    form.generate_button.click()
    run = form.run
    assert run is not None and run.seed == 42 and run.params["quality"] == "extra-low"
    run.wait(timeout=30)
    assert form.card is not None and form.card.run is run
    assert form.card.bar.value == 1.0 and form.card.percent.value == "100%"
    assert "succeeded" in form.card.status.value
    _wait_for(lambda: form.result_view is not None)  # built by the listener right after the run ends
    assert form.result.children == (form.card.widget,)


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
    form.set("quality", "low")  # the rule shows as soon as the value changes, once, under Quality
    assert "runs at medium quality" in form.notes["quality"].value
    form.estimate()
    shown = _visible(form)
    assert shown.count("runs at medium quality") == 1 and "forces quality" not in shown


def test_a_second_run_replaces_the_first_runs_card(client: rn.Client) -> None:
    form = rn.GenerateForm(client, prompt="a ceramic teapot", quality="extra-low", seed=1)
    first = form.generate()
    assert first is not None
    first.wait(timeout=30)
    _wait_for(lambda: form.result_view is not None)
    first_card = form.card
    form.set("seed", 2)
    second = form.generate()
    assert second is not None and second is not first
    assert form.card is not first_card and form.card is not None and form.card.run is second
    assert form.result.children == (form.card.widget,)  # the first run's model is gone from the form
    assert first.run_id not in form.message.value and second.run_id in form.message.value
    second.wait(timeout=30)
    _wait_for(lambda: form.result_view is not None)
    assert "succeeded" in form.card.status.value and form.result.children == (form.card.widget,)


def test_a_new_action_clears_the_last_message(client: rn.Client) -> None:
    form = rn.GenerateForm(client, prompt="a stool", quality="extra-low", seed=5)
    form.estimate_button.click()
    assert "estimated cost" in form.message.value
    run = form.generate()
    assert run is not None and "estimated cost" not in form.message.value
    form.estimate_button.click()
    assert "(seed 5)" not in form.message.value and "estimated cost" in form.message.value
    run.wait(timeout=30)


def test_sketch_disables_hyper_and_says_quality_runs_as_medium(client: rn.Client) -> None:
    form = rn.GenerateForm(client, prompt="a chair")
    form.fields["useHyper"].value = True
    assert not form.fields["useHyper"].disabled and "medium" not in form.notes["quality"].value
    form.fields["tier"].value = "Sketch"  # no click: the rules apply as the value changes
    assert form.fields["useHyper"].disabled and form.fields["useHyper"].value is False
    assert "medium" in form.notes["quality"].value and "hyper" in form.notes["useHyper"].value
    assert not form.generate_button.disabled  # a rule acted out, not a problem
    assert "useHyper" not in form.params()
    form.fields["tier"].value = "Regular"
    assert not form.fields["useHyper"].disabled and form.notes["quality"].layout.display == "none"


def test_random_seed_disables_the_box_which_then_shows_the_drawn_seed(client: rn.Client) -> None:
    form = rn.GenerateForm(client, prompt="a lamp", quality="extra-low")
    assert form.random_seed.value and form.fields["seed"].disabled
    run = form.generate()
    assert run is not None and run.seed is not None
    assert form.fields["seed"].value == run.seed and form.fields["seed"].disabled
    form.random_seed.value = False  # reuse the drawn seed
    assert not form.fields["seed"].disabled and form.params()["seed"] == run.seed
    run.wait(timeout=30)


def test_controls_share_one_label_column(client: rn.Client) -> None:
    form = rn.GenerateForm(client)
    rows = form.widget.children[: len(form.fields)]
    for row, (name, control) in zip(rows, form.fields.items(), strict=True):
        label = row.children[0]
        assert label.layout.width == LABEL_WIDTH and label.value == (client.schema[name].label or name)
        if not hasattr(control, "accept"):  # FileUpload's description is its button's caption
            assert control.description == "", name  # a description would push the control out of line


def test_a_new_schema_input_appears_with_no_code_change(client: rn.Client) -> None:
    base = client.schema
    extra = InputSpec.from_wire({"name": "negativePrompt", "type": "string", "label": "Avoid"})
    client._schema = ModelSchema(base.model_id, base.name, (*base.inputs, extra), source="live")
    form = rn.GenerateForm(client, prompt="a chair")
    assert "negativePrompt" in form.fields and "negativePrompt" in form.notes
    form.fields["negativePrompt"].value = "no legs"
    assert form.params()["negativePrompt"] == "no legs"


def test_a_double_click_on_generate_starts_one_job(client: rn.Client, sandbox: SandboxServer) -> None:
    """A browser sends both clicks before the button greys out; with random seed that was two jobs."""
    form = rn.GenerateForm(client, prompt="a chair", quality="extra-low")
    form.generate_button.click()
    first = form.run
    form.generate_button.click()
    assert form.run is first and "a moment ago" in form.message.value
    assert first is not None and first.wait(timeout=30)
    assert sandbox.stats()["jobs_created"] == 1


def test_an_out_of_range_seed_is_reported_not_clamped(client: rn.Client, sandbox: SandboxServer) -> None:
    form = rn.GenerateForm(client, prompt="a chair")
    form.random_seed.value = False
    form.fields["seed"].value = 70000
    assert form.fields["seed"].value == 70000  # what the user typed stays
    assert "65535" in form.notes["seed"].value and form.generate_button.disabled
    form.generate_button.click()
    assert form.run is None and sandbox.stats()["requests"].get(GENERATE, 0) == 0


def test_a_bad_default_names_its_field(client: rn.Client) -> None:
    with pytest.raises(rn.ValidationError, match=r"material.*allowed: PBR, Shaded"):
        rn.GenerateForm(client, prompt="a chair", material="Foo")


def test_the_estimate_says_when_the_log_answers_for_free(client: rn.Client) -> None:
    client.generate(prompt="a chair", seed=3, tier="Sketch").wait(timeout=30)
    form = rn.GenerateForm(client, prompt="a chair", seed=3, tier="Sketch")
    form.estimate_button.click()
    assert "estimated cost: <b>10</b>" in form.message.value and "for free" in form.message.value


def test_hyper_comes_back_after_a_detour_through_sketch(client: rn.Client) -> None:
    form = rn.GenerateForm(client, prompt="a chair")
    form.fields["useHyper"].value = True
    form.fields["tier"].value = "Sketch"
    assert form.fields["useHyper"].value is False and form.fields["useHyper"].disabled
    form.fields["tier"].value = "Regular"
    assert form.fields["useHyper"].value is True and not form.fields["useHyper"].disabled
