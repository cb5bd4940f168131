"""rn.SweepForm, headless (ipywidgets gives a dummy comm outside a kernel): driven through its controls
like a user, against the sandbox over real loopback HTTP."""

from __future__ import annotations

import html
import io
import itertools
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from PIL import Image

import rodin_nb as rn
from rodin_nb.sandbox import SandboxServer
from rodin_nb.sweepform import MAX_SEEDS, SweepForm, parse_seeds
from rodin_nb.widgetrows import LABEL_WIDTH

GENERATE = "POST /v1/generate/custom/{modelId}"  # dry runs and real jobs share the route


def posts(sandbox: SandboxServer) -> int:
    return int(sandbox.stats()["requests"].get(GENERATE, 0))


def text(widget: Any) -> str:
    """What an HTML widget shows (entities decoded)."""
    return html.unescape(str(widget.value))


def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``check`` until it is truthy (listeners run on the engine's threads)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not true after {timeout} s: {check}")


def picture(color: str) -> dict[str, Any]:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buffer, format="PNG")
    data = buffer.getvalue()
    return {
        "name": f"{color}.png",
        "type": "image/png",
        "size": len(data),
        "content": memoryview(data),
        "last_modified": datetime.now(timezone.utc),
    }


def sketch_form(client: rn.Client, seeds: str = "1-3", **kwargs: Any) -> SweepForm:
    """A form for a chair at the Sketch tier (fast, 10 CU a run in the sandbox), planned now."""
    form = SweepForm(client, **kwargs)
    form.axes["prompt"].control.value = "a chair"
    form.axes["tier"].control.value = ("Sketch",)
    form.axes["seed"].control.value = seeds
    form.refresh()  # what the debounce timer would do 0.4 s later
    return form


class TestParseSeeds:
    def test_ranges_and_lists(self) -> None:
        assert parse_seeds("1-4, 7") == [1, 2, 3, 4, 7]
        assert parse_seeds(" 3 1 - 2 ") == [3, 1, 2]
        assert parse_seeds("5, 5, 4-6") == [5, 4, 6]  # a repeated seed is one request
        assert parse_seeds("0, 65535") == [0, 65535]

    def test_random_seeds_are_distinct(self) -> None:
        repeating = itertools.cycle([9, 9, 4, 9, 2])
        assert parse_seeds("3 random", draw=lambda: next(repeating)) == [9, 4, 2]
        seeds = parse_seeds("4 random seeds")
        assert len(set(seeds)) == 4 and all(0 <= s <= 65535 for s in seeds)
        assert len(parse_seeds("random")) == 1

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("", "no seeds"),
            ("one, two", "'one' is not a seed"),
            ("-5", "'-5' is not a seed"),
            ("70000", "out of range"),
            ("7-3", "runs backwards; write 3-7"),
            ("0 random", "ask for 1 to"),
            ("1, 2 random", "is not a seed"),
            (f"0-{MAX_SEEDS + 5}", "at most"),
        ],
    )
    def test_garbage_says_what_is_wrong(self, text: str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            parse_seeds(text)


class TestAxes:
    def test_one_control_per_schema_input(self, client: rn.Client) -> None:
        form = SweepForm(client)
        assert list(form.axes) == client.schema.names
        kinds = {name: axis.kind for name, axis in form.axes.items()}
        assert kinds["tier"] == kinds["quality"] == kinds["material"] == kinds["conditionMode"] == "choices"
        assert kinds["useHyper"] == kinds["TAPose"] == "boolean" and kinds["seed"] == "seeds"
        assert kinds["prompt"] == "lines" and kinds["images"] == "images"
        assert form.axes["tier"].control.value == ("Regular",)  # the schema's default
        assert form.axes["useHyper"].control.options == ("false", "true", "both")
        assert form.axes["images"].control.multiple

    def test_every_control_starts_in_one_label_column(self, client: rn.Client) -> None:
        """Toggle buttons and the upload box line up with the multi-selects (they used to sit apart)."""
        form = SweepForm(client)
        for name, axis in form.axes.items():
            label, body = axis.row.children
            assert label.layout.width == LABEL_WIDTH and body.children[0] is axis.control, name
            if axis.kind != "images":  # an upload button's description is its caption, not a label
                assert not getattr(axis.control, "description", ""), f"{name} has its own label too"
        assert form.axes["prompt"].row.children[0].value == "Prompts"
        assert "one per line" in form.axes["prompt"].control.placeholder

    def test_a_new_schema_input_appears_without_code(self, client: rn.Client) -> None:
        body = rn.ModelSchema.snapshot().raw
        inputs = [*body["inputs"], {"name": "style", "type": "string", "allowedValues": ["a", "b"]}]
        client._schema = rn.ModelSchema.from_response({**body, "inputs": inputs})
        form = SweepForm(client)
        assert form.axes["style"].control.options == ("a", "b")

    def test_seeds_box_echoes_what_it_understood(self, client: rn.Client) -> None:
        form = sketch_form(client, seeds="1-4, 7")
        assert "5 seeds: 1, 2, 3, 4, 7" in form.axes["seed"].message.value
        assert [req.seed for req in form.sweep.requests] == [1, 2, 3, 4, 7]
        form.axes["seed"].control.value = "3 random"
        form.refresh()
        seeds = [req.seed for req in form.sweep.requests]
        assert len(set(seeds)) == 3
        form.refresh()  # drawn once: planning again does not draw new seeds
        assert [req.seed for req in form.sweep.requests] == seeds

    def test_garbage_seeds_show_next_to_the_box_and_block_run(
        self, client: rn.Client, sandbox: SandboxServer
    ) -> None:
        form = sketch_form(client, seeds="1-3, lots")
        assert "'lots' is not a seed" in text(form.axes["seed"].message)
        assert form.sweep is None and form.run_button.disabled
        assert "nothing will be submitted" in form.estimate_line.value
        assert form.run() is None and posts(sandbox) == 0

    def test_constructor_and_set_take_python_values(self, client: rn.Client) -> None:
        form = SweepForm(client, prompt=["a chair", "a vase"], tier=["Sketch", "Regular"], seed=[1, 2])
        assert form.axes["prompt"].control.value == "a chair\na vase"
        assert form.axes["seed"].control.value == "1, 2"
        form.set("useHyper", [True, False])
        assert form.axes["useHyper"].control.value == "both"
        with pytest.raises(rn.ValidationError, match="unknown parameter"):
            form.set("colour", "red")


class TestPlanAndEstimate:
    def test_plan_marks_runs_in_the_log_and_prices_once_per_class(
        self, client: rn.Client, sandbox: SandboxServer
    ) -> None:
        client.generate(prompt="a chair", seed=1, tier="Sketch").wait(timeout=30)
        before = posts(sandbox)
        form = sketch_form(client, seeds="1-3")
        table = form.plan_table.value
        assert table.count("<tr>") == 1 + 3  # header + one row per run
        assert table.count("in log (free)") == 1 and table.count(">new<") == 2
        assert "estimate <b>20</b> CU for 2 new runs (1 in log, free)" in form.estimate_line.value
        assert "tier=Sketch: 10 CU" in form.estimate_line.value
        assert posts(sandbox) - before == 1  # one dry run for the one price class

        form.axes["seed"].control.value = "1-6"
        form.refresh()
        assert "estimate <b>50</b> CU for 5 new runs" in form.estimate_line.value
        assert posts(sandbox) - before == 1  # seeds do not change the price: no new dry run

        form.axes["tier"].control.value = ("Sketch", "Regular")
        form.refresh()
        assert "estimate <b>170</b> CU" in form.estimate_line.value  # 5 x 10 + 6 x 20
        assert posts(sandbox) - before == 2  # Regular is a new price class
        assert form.plan_table.value.count("<tr>") == 1 + 12
        assert sandbox.stats()["jobs_created"] == 1  # only the generate() above

    def test_the_estimate_follows_the_axes_debounced(self, client: rn.Client) -> None:
        form = SweepForm(client, debounce_s=0.05, prompt="a chair", tier="Sketch", seed="1")
        assert "1 runs" in form.plan_table.value
        form.axes["seed"].control.value = "1-4"  # no refresh(): the timer plans again
        eventually(lambda: "4 runs" in form.plan_table.value)
        assert "estimate <b>40</b> CU" in form.estimate_line.value
        form.close()

    def test_invalid_plan_is_shown_inline_and_never_submitted(
        self, client: rn.Client, sandbox: SandboxServer
    ) -> None:
        form = SweepForm(client)  # no prompt, no image
        form.axes["seed"].control.value = "1-3"
        form.refresh()
        prompt_msg, images_msg = form.axes["prompt"].message.value, form.axes["images"].message.value
        # Three rows, and a problem naming two axes: shown once, under the first of them.
        assert prompt_msg.count("Give a prompt") == 1 and "Give a prompt" not in images_msg
        assert form.run_button.disabled and form.sweep is None
        form.run_button.disabled = False  # even a click that gets through sends nothing
        form.run_button.click()
        assert sandbox.stats()["jobs_created"] == 0 and posts(sandbox) == 0

    def test_a_bad_prompt_line_is_named(self, client: rn.Client, sandbox: SandboxServer) -> None:
        form = SweepForm(client, prompt="a chair")
        before = posts(sandbox)  # the first plan's price
        form.axes["prompt"].control.value = "a chair\n" + "x" * 2001 + "\na vase"
        form.axes["seed"].control.value = "1-2"
        form.refresh()
        message = form.axes["prompt"].message.value
        assert "line 2: has 2001 characters; at most 2000 allowed" in message
        assert form.run_button.disabled and form.sweep is None
        assert posts(sandbox) == before and sandbox.stats()["jobs_created"] == 0

    def test_cross_field_problem_lands_on_its_axis(self, client: rn.Client) -> None:
        form = sketch_form(client)
        form.axes["useHyper"].control.value = "true"
        form.refresh()
        assert "Sketch tier never uses hyper mode" in form.axes["useHyper"].message.value
        assert form.axes["seed"].message.value.count("cf222e") == 0  # the seeds are fine
        assert form.run_button.disabled

    def test_each_picture_is_one_value_of_the_images_axis(
        self, client: rn.Client, sandbox: SandboxServer
    ) -> None:
        form = SweepForm(client, tier="Sketch", seed="1")
        form.axes["images"].control.value = [picture("orange"), picture("teal")]
        form.refresh()
        assert form.sweep is not None and len(form.sweep.requests) == 2
        assert [len(req.images) for req in form.sweep.requests] == [1, 1]
        assert form.swept_axes() == ["images"]
        assert form.plan_table.value.count("image ") == 2

    def test_static_bundle_has_the_plan(self, client: rn.Client) -> None:
        form = sketch_form(client)
        bundle = form._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle
        assert "3 runs planned, estimate 30 CU" in bundle["text/plain"]
        assert "rodin-plan" in bundle["text/html"]


class TestRunning:
    def test_budget_too_low_submits_nothing(self, client: rn.Client, sandbox: SandboxServer) -> None:
        form = sketch_form(client)
        form.budget.value = 25
        form.refresh()
        assert "over the budget of 25" in form.estimate_line.value
        form.run_button.click()
        assert "nothing was submitted" in form.message.value and "Traceback" not in form.message.value
        assert sandbox.stats()["jobs_created"] == 0 and not form.run_button.disabled
        form.budget.value = 40  # an edit: the refusal was about the old values, it goes
        assert "nothing was submitted" not in form.message.value
        form.budget.value = -5
        form.refresh()
        assert "cannot be negative" in form.estimate_line.value and form.run_button.disabled

    def test_run_to_the_end_then_the_grid(self, client: rn.Client, sandbox: SandboxServer) -> None:
        form = sketch_form(client, seeds="1-2")
        form.axes["tier"].control.value = ("Sketch", "Regular")
        form.axes["quality"].control.value = ("extra-low",)
        form.axes["material"].control.value = ("PBR", "Shaded")
        form.budget.value = 1000
        form.refresh()
        dry_runs = posts(sandbox)
        form.run_button.click()
        sweep = form.sweep
        assert sweep is not None and form.active is sweep and "started" in form.message.value
        assert not form.cancel_button.disabled and form.axes["tier"].control.disabled
        sweep.wait(timeout=60)
        assert sandbox.stats()["jobs_created"] == 8 and posts(sandbox) - dry_runs == 8  # no new dry runs
        grid = eventually(lambda: form.grid)  # built once the sweep ended
        # Rows: the seeds; cols: the first other swept axis in the schema's order; a facet for the rest.
        assert (form.rows_axis.value, form.cols_axis.value) == ("seed", "material")
        assert grid._layout.row_headers == ["seed=1", "seed=2"]
        assert grid._layout.col_headers == ["material=PBR", "material=Shaded"]
        assert [label for label, _ in form.facet.options] == ["tier=Sketch", "tier=Regular"]
        assert form.facet.layout.display != "none"
        assert {cell.item.target.params["tier"] for cell in grid.cells} == {"Sketch"}

        form.rows_axis.value, form.cols_axis.value = "tier", "seed"
        assert [label for label, _ in form.facet.options] == ["material=PBR", "material=Shaded"]
        form.facet.value = form.facet.options[1][1]
        form.refresh()  # what the debounced re-plan after the sweep's end does: the choice stays
        assert form.facet.value == form.facet.options[1][1]
        form.show_grid_button.click()
        assert form.grid is not grid and form.grid._layout.row_headers == ["tier=Sketch", "tier=Regular"]
        assert {run.params["material"] for run in form.facet_runs()} == {"Shaded"}
        assert "100%" in form.progress_box.children[0].children[1].value
        assert not form.run_button.disabled and form.pause_button.disabled
        # The plan and estimate are redrawn after the end: every run is in the log now, free.
        eventually(lambda: "0 new runs" in form.estimate_line.value)
        assert "new</td>" not in form.plan_table.value and "in log (free)" in form.plan_table.value
        assert "success" in form._repr_mimebundle_()["text/html"]

    def test_pause_then_run_continues(self, client: rn.Client, sandbox: SandboxServer) -> None:
        form = sketch_form(client, seeds="1-6", concurrency=2)
        form.run_button.click()
        sweep = form.sweep
        assert sweep is not None
        form.pause_button.click()
        assert "paused" in form.message.value and not form.run_button.disabled
        sweep.wait(timeout=60)  # the jobs under way finish; nothing more is submitted
        assert sweep.counts().get("planned", 0) >= 4 and form.grid is None
        form.run_button.click()
        assert form.sweep is sweep  # the same plan continues
        sweep.wait(timeout=60)
        assert sweep.counts() == {"success": 6} and sandbox.stats()["jobs_created"] == 6

    def test_cancel(self, client: rn.Client, sandbox: SandboxServer) -> None:
        form = sketch_form(client, seeds="1-6", concurrency=2)
        form.run_button.click()
        form.cancel_button.click()
        assert "canceled" in form.message.value
        assert form.sweep is not None
        form.sweep.wait(timeout=60)
        assert sandbox.stats()["jobs_created"] <= 2 and form.sweep.counts().get("success", 0) < 6
        assert form.cancel_button.disabled and form.pause_button.disabled
        form.show_grid_button.click()  # a canceled sweep still compares what it has, or says why not
        assert form.grid is not None or "nothing to compare" in form.message.value
