"""The run card, headless: a Run shown as a cell's output follows the run to its model (or its error)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

import rodin_nb as rn
from rodin_nb import progress
from rodin_nb.jobs import Run
from rodin_nb.runcard import RunCard
from rodin_nb.sandbox import serve
from rodin_nb.schema import RodinRequest
from rodin_nb.status import describe
from rodin_nb.viewer import View

from .conftest import make_client

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _wait_for(predicate: Callable[[], object], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_status_words_are_readable() -> None:
    assert describe("warming-up") == "warming up" and describe("in-progress") == "in progress"
    assert describe("downloading") == "downloading files" and describe("success") == "succeeded"
    assert describe("not-submitted") == "not submitted (nothing billed)"
    assert describe("some-new-word") == "some new word"  # a newer row still reads as words


def test_progress_shows_a_percentage_and_words_not_wire_tokens() -> None:
    run = Run(None, RodinRequest(prompt="a chair", seed=1))
    card = RunCard(run)
    run._apply_job({"jobId": "job_1", "status": "in-progress", "progress": 0.42})
    assert card.percent.value == "42%" and card.bar.value == pytest.approx(0.42)
    shown = card.status.value.split(">", 1)[1]  # the visible text (the raw token is only its tooltip)
    assert "in progress" in shown and "in-progress" not in shown
    run._apply_job({"jobId": "job_1", "status": "warming_up"})
    assert "warming up" in card.status.value.split(">", 1)[1]


def test_a_card_follows_a_run_to_success_then_holds_a_view(client: rn.Client) -> None:
    run = client.generate(prompt="a ceramic teapot", seed=11, quality="extra-low")
    card = RunCard(run)  # made while the run is on its way
    run.wait(timeout=30)
    _wait_for(lambda: card.result_view is not None)  # built by the listener as the run ends
    assert "succeeded" in card.status.value and card.percent.value == "100%"
    assert card.bar.bar_style == "success" and card.error.layout.display == "none"
    assert card.result.children == (card.result_view,)
    assert isinstance(card.result_view, View)


def test_a_card_for_a_finished_run_builds_its_view_at_once(client: rn.Client) -> None:
    run = client.generate(prompt="a stool", seed=12, quality="extra-low").wait(timeout=30)
    card = RunCard(run)
    assert card.result_view is not None and "succeeded" in card.status.value


def test_without_a_viewer_the_card_shows_the_preview_and_stats(
    client: rn.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = client.generate(prompt="a vase", seed=13, quality="extra-low").wait(timeout=30)

    def no_view(self: Run, **options: object) -> None:
        raise ImportError("No module named 'pythreejs'")

    monkeypatch.setattr(Run, "show", no_view)
    card = RunCard(run)
    image, stats = card.result.children
    assert image is card.result_view and image.value == run.preview.read_bytes()  # type: ignore[union-attr]
    assert "faces" in stats.value and "no 3D view" in stats.value and "pythreejs" in stats.value


def test_a_failed_run_shows_its_error_and_hint(tmp_path: Path) -> None:
    with serve(job_seconds=0.3, faults={"fail_rate": 1.0}) as sb, make_client(sb, tmp_path) as client:
        run = client.generate(prompt="a chair", seed=1, quality="extra-low")
        card = RunCard(run)
        with pytest.raises(rn.JobFailed):
            run.wait(timeout=30)
    assert run.status == "failure" and run.error
    assert "failed" in card.status.value and card.bar.bar_style == "danger"
    assert card.error.layout.display == "" and run.error in card.error.value
    assert run.hint and f"hint: {run.hint}" in card.error.value
    assert card.result.children == () and card.result_view is None


def test_the_bundle_has_the_widget_and_a_static_fallback(
    client: rn.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = client.generate(prompt="a teapot", seed=14, quality="extra-low").wait(timeout=30)
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    bundle = run._repr_mimebundle_()
    assert WIDGET_VIEW in bundle and bundle["text/plain"] == repr(run)
    page = bundle["text/html"]
    assert "data:image/png;base64," in page and "faces" in page and "succeeded" in page


def test_outside_a_kernel_no_widget_and_no_listener(client: rn.Client) -> None:
    run = client.generate(prompt="a teapot", seed=15, quality="extra-low")
    bundle = run._repr_mimebundle_()  # a terminal IPython or a script: static only
    assert WIDGET_VIEW not in bundle and bundle["text/plain"] == repr(run)
    assert not any(isinstance(getattr(f, "__self__", None), RunCard) for f in run._listeners)
    assert "<code>" in run._repr_html_()  # kept for code that asks for HTML directly
    run.wait(timeout=30)


def test_the_cards_static_copy_is_published_again_until_the_run_ends(
    client: rn.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The static copy shows the run as displayed; after a later cell (the post_run_cell refresh) it
    shows how the run ended, then it is no longer followed."""
    import IPython.display

    from rodin_nb import statics

    shown: list[tuple[str, dict, str | None]] = []
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(
        IPython.display, "display", lambda d, raw=False, display_id=None: shown.append(("d", d, display_id))
    )
    monkeypatch.setattr(
        IPython.display,
        "update_display",
        lambda d, raw=False, display_id=None: shown.append(("u", d, display_id)),
    )
    run = client.generate(prompt="a teapot", seed=16, quality="extra-low")
    run._ipython_display_()
    (_, live, _), (_, first, token) = shown
    assert WIDGET_VIEW in live and "succeeded" not in first["text/html"]
    run.wait(timeout=30)
    assert statics.refresh() == 1  # what the hook does after the next cell
    kind, last, same = shown[-1]
    assert (kind, same) == ("u", token)
    assert "succeeded" in last["text/html"] and "faces" in last["text/html"] and "image/png" in last
    assert statics.refresh() == 0  # final: no longer followed
