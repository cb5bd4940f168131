"""rn.LogBrowser, driven through its controls as a user would (headless: ipywidgets needs no kernel).

Real runs come from the sandbox over loopback HTTP; volume comes from rows written straight into the
log the way the client writes them (claim, then the final update), as bench/bench_runlog.py does.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import rodin_nb as rn
from rodin_nb.logbrowser import LogBrowser
from rodin_nb.runlog import RunLog
from rodin_nb.schema import RodinRequest


@pytest.fixture
def browsers() -> Iterator[Callable[..., LogBrowser]]:
    """Make browsers that stop following their log when the test ends (no timer outlives it)."""
    made: list[LogBrowser] = []

    def make(log: RunLog, **kwargs: Any) -> LogBrowser:
        browser = rn.LogBrowser(log, **kwargs)
        made.append(browser)
        return browser

    yield make
    for browser in made:
        browser.close()


def insert(
    log: RunLog,
    index: int,
    *,
    prompt: str = "a carved wooden chair",
    tier: str = "Regular",
    status: str = "success",
    sweep_id: str | None = None,
    day: int = 1,
) -> str:
    """One run row written as the client writes it; returns its run id."""
    request = RodinRequest(prompt=prompt, seed=index, tier=tier, quality="medium")
    run_id = f"run_{index:012d}"
    stamp = f"2025-01-{day:02d}T12:00:{index % 60:02d}.000+00:00"
    log.claim(
        {
            "run_id": run_id,
            "sweep_id": sweep_id,
            "backend": "sandbox",
            "service": "sandbox",
            "model_id": "model_rodin-hyper3d",
            "params": request.identity(),
            "params_hash": request.params_hash,
            "seed": request.seed,
            "status": "submitting",
            "submitted_at": stamp,
        },
        reuse=False,
    )
    final: dict[str, Any] = {"status": status, "progress": 1.0, "cost": 10.0, "finished_at": stamp}
    if status == "failure":
        final["error"] = "the model could not make sense of the prompt"
    log.update(run_id, **final)
    return run_id


def label(browser: LogBrowser) -> str:
    return browser.page_label.value.replace("&nbsp;", "").strip()


def visible_cards(browser: LogBrowser) -> list[Any]:
    return [card for card in browser.cards if card.run_id is not None]


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def volume_log(tmp_path: Path) -> Iterator[RunLog]:
    """30 rows without a client: tiers, statuses, prompts, one sweep and three days vary."""
    log = RunLog(tmp_path / "ws", create=True)
    for i in range(30):
        insert(
            log,
            i,
            prompt="a round oak Table" if i % 3 == 0 else "a carved wooden chair",
            tier="Sketch" if i % 2 else "Regular",
            status="failure" if i % 10 == 9 else "success",
            sweep_id="sweep_a" if i < 8 else None,
            day=1 + i // 10,
        )
    yield log
    log.close()


class TestFilters:
    def test_counts_and_pages_follow_each_filter(
        self, volume_log: RunLog, browsers: Callable[..., LogBrowser]
    ) -> None:
        browser = browsers(volume_log)
        assert label(browser) == "page 1 of 3, 30 runs match"
        assert len(visible_cards(browser)) == 12
        browser.next_button.click()
        assert label(browser) == "page 2 of 3, 30 runs match"
        browser.next_button.click()
        assert label(browser) == "page 3 of 3, 30 runs match" and len(visible_cards(browser)) == 6
        assert browser.next_button.disabled

        browser.filters["tier"].value = ("Sketch",)
        assert label(browser) == "page 1 of 2, 15 runs match"  # a filter change starts at page 1
        browser.filters["status"].value = ("failure",)
        assert browser.count == 3  # runs 9, 19, 29 (odd: Sketch)
        browser.filters["status"].value = ()
        browser.prompt.value = "TABLE"  # case-insensitive substring
        assert browser.count == 5  # i % 3 == 0 and odd: 3, 9, 15, 21, 27
        browser.prompt.value = ""
        browser.filters["tier"].value = ()
        browser.sweep.value = "sweep_a"
        assert label(browser) == "page 1 of 1, 8 runs match"
        browser.sweep.value = ""
        browser.start.value = date(2025, 1, 2)
        assert browser.count == 20
        browser.end.value = date(2025, 1, 2)
        assert browser.count == 10 and set(browser.matches["submitted_at"].dt.day) == {2}

    def test_filters_agree_with_pandas(self, volume_log: RunLog, browsers: Callable[..., LogBrowser]) -> None:
        browser = browsers(volume_log)
        browser.filters["tier"].value = ("Regular",)
        browser.prompt.value = "chair"
        df = volume_log.df
        expected = df[(df["tier"] == "Regular") & df["prompt"].str.contains("chair")]
        assert list(browser.matches.index) == list(expected.index)
        pd.testing.assert_frame_equal(browser.frame, df)

    def test_a_bad_date_range_shows_in_the_message_line(
        self, volume_log: RunLog, browsers: Callable[..., LogBrowser]
    ) -> None:
        browser = browsers(volume_log)
        browser.start.value = date(2025, 1, 3)
        browser.end.value = date(2025, 1, 1)
        assert "before it starts" in browser.message.value
        assert label(browser) == "page 1 of 1, 0 runs match"
        browser.start.value = None  # fixed: the complaint goes with the problem
        assert "before it starts" not in browser.message.value and browser.count > 0

    def test_static_fallback_is_a_table_of_the_page(
        self, volume_log: RunLog, browsers: Callable[..., LogBrowser]
    ) -> None:
        browser = browsers(volume_log)
        bundle = browser._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle
        assert bundle["text/html"].count("<tr>") == 13  # header + 12 cards of page 1
        assert "30 of 30 runs match" in bundle["text/plain"]


class TestRealRuns:
    @pytest.fixture
    def runs(self, client: rn.Client) -> list[rn.Run]:
        runs = [
            client.generate(prompt="a carved wooden chair", tier="Sketch", seed=1),
            client.generate(prompt="a carved wooden chair", tier="Sketch", seed=2),
            client.generate(prompt="a round oak Table", tier="Regular", seed=3, quality="extra-low"),
        ]
        for run in runs:
            run.wait(timeout=30)
        insert(client.log, 99, prompt="a broken lamp", status="failure")
        return runs

    def test_previews_open_diff_and_rerun(
        self, client: rn.Client, runs: list[rn.Run], browsers: Callable[..., LogBrowser]
    ) -> None:
        from rodin_nb.viewer import Grid, View

        browser = browsers(client.log)
        assert browser.client is client and browser.count == 4
        cards = {card.run_id: card for card in visible_cards(browser)}
        for run in runs:
            assert "data:image/png;base64," in cards[run.run_id].thumb.value
            assert f"seed {run.seed}" in cards[run.run_id].caption.value
        assert "<img" not in cards["run_000000000099"].thumb.value  # a failure: a placeholder

        assert browser.rerun_button.disabled and "select one" in browser.rerun_button.tooltip
        cards[runs[0].run_id].select.value = True
        assert isinstance(browser.view, View) and browser.detail.children == (browser.view,)
        assert not browser.rerun_button.disabled

        browser.rerun_button.click()
        form = browser.form
        assert isinstance(form, rn.GenerateForm)
        assert form.fields["seed"].value == runs[0].seed == 1
        assert form.fields["prompt"].value == "a carved wooden chair"
        assert "images are not carried over" in browser.message.value

        cards[runs[1].run_id].select.value = True
        assert browser.selected == [runs[0].run_id, runs[1].run_id]
        assert isinstance(browser.view, Grid) and not isinstance(browser.view, View)
        assert browser.diff_table is not None and "seed" in browser.diff_table.index
        assert "<th>seed</th>" in browser.diff_html.value
        assert browser.rerun_button.disabled

        cards["run_000000000099"].select.value = True  # a third: the oldest selection is dropped
        assert browser.selected == [runs[1].run_id, "run_000000000099"]
        assert not cards[runs[0].run_id].select.value
        # The failed run has no model: the diff says how they differ, its grid cell shows its error.
        assert browser.diff_table is not None and "status" in browser.diff_table.index
        assert isinstance(browser.view, Grid)

    def test_without_a_client_views_come_from_files(
        self, client: rn.Client, runs: list[rn.Run], browsers: Callable[..., LogBrowser]
    ) -> None:
        from rodin_nb.viewer import View

        log = rn.RunLog(client.workspace)
        try:
            browser = browsers(log)
            assert browser.client is None
            assert browser.rerun_button.disabled and "needs a client" in browser.rerun_button.tooltip
            browser.select(runs[2].run_id)
            assert isinstance(browser.view, View)
            browser.rerun_button.click()  # disabled in a front end; a programmatic click says why
            assert "needs a client" in browser.message.value
        finally:
            log.close()

    def test_new_runs_of_the_client_appear_by_themselves(
        self, client: rn.Client, browsers: Callable[..., LogBrowser]
    ) -> None:
        browser = browsers(client.log)
        assert browser.count == 0
        run = client.generate(prompt="a small stool", tier="Sketch", seed=5)
        run.wait(timeout=30)
        # Refreshed by the log's write listener (on a timer thread): no refresh() call here.
        wait_for(lambda: browser.count == 1 and "success" in browser.cards[0].caption.value)
        assert browser.cards[0].run_id == run.run_id
        assert "data:image/png;base64," in browser.cards[0].thumb.value

    def test_a_browser_on_its_own_runlog_hears_this_kernels_runs(
        self, client: rn.Client, browsers: Callable[..., LogBrowser]
    ) -> None:
        """The README's rn.LogBrowser(rn.RunLog(path)): another RunLog object on the client's file."""
        client.generate(prompt="a small stool", tier="Sketch", seed=6).wait(timeout=30)
        browser = browsers(RunLog(client.log.workspace))
        assert browser.count == 1
        run = client.generate(prompt="a small stool", tier="Sketch", seed=7)
        run.wait(timeout=30)
        wait_for(lambda: browser.count == 2 and browser.cards[0].run_id == run.run_id)


class TestExport:
    def test_csv_holds_exactly_the_filtered_rows(
        self, volume_log: RunLog, browsers: Callable[..., LogBrowser], tmp_path: Path
    ) -> None:
        browser = browsers(volume_log)
        browser.filters["tier"].value = ("Sketch",)
        browser.prompt.value = "chair"
        expected = list(browser.matches["run_id"])
        browser.export_path.value = str(tmp_path / "out" / "sketch.csv")
        browser.export_button.click()
        assert f"wrote {len(expected)} runs" in browser.message.value
        back = pd.read_csv(tmp_path / "out" / "sketch.csv")
        assert list(back["run_id"]) == expected and len(expected) == 10
        assert list(back.columns) == list(volume_log.df.columns)
        assert not browser.export_button.disabled

    def test_an_unwritable_path_shows_in_the_message_line(
        self, volume_log: RunLog, browsers: Callable[..., LogBrowser], tmp_path: Path
    ) -> None:
        (tmp_path / "a_file").write_text("not a folder")
        browser = browsers(volume_log)
        browser.export_path.value = str(tmp_path / "a_file" / "runs.csv")
        browser.export_button.click()
        assert "cannot write" in browser.message.value and "color:#cf222e" in browser.message.value
        assert not browser.export_button.disabled

    def test_parquet_without_pyarrow_names_the_extra(
        self,
        volume_log: RunLog,
        browsers: Callable[..., LogBrowser],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        def no_engine(*args: Any, **kwargs: Any) -> None:
            raise ImportError("Unable to find a usable engine; tried using: 'pyarrow', 'fastparquet'.")

        monkeypatch.setattr(pd.DataFrame, "to_parquet", no_engine)
        browser = browsers(volume_log)
        browser.export_path.value = str(tmp_path / "runs.parquet")
        browser.export_button.click()
        assert "rodin_nb[parquet]" in browser.message.value and "pyarrow" in browser.message.value

    def test_a_wrong_suffix_is_refused(self, volume_log: RunLog, browsers: Callable[..., LogBrowser]) -> None:
        browser = browsers(volume_log)
        browser.export_path.value = "runs.xlsx"
        browser.export_button.click()
        assert ".csv or .parquet" in browser.message.value


class TestIncrementalRefresh:
    def test_changed_since_reads_only_the_changed_rows(self, tmp_path: Path) -> None:
        log = RunLog(tmp_path / "ws", create=True)
        try:
            ids = [insert(log, i) for i in range(200)]
            frame, stamp = log.changed_since()
            assert len(frame) == 200
            pd.testing.assert_frame_equal(frame, log.df)  # the same decode path: columns and dtypes

            statements: list[str] = []
            log._connect().set_trace_callback(statements.append)
            again, same = log.changed_since(stamp)  # nothing committed: no query of the rows
            assert again.empty and same == stamp and list(again.columns) == list(frame.columns)
            assert statements == ["PRAGMA data_version"]

            log.update(ids[57], hint="looked at twice")
            changed, later = log.changed_since(stamp)
            log._connect().set_trace_callback(None)
            assert any("updated_at > " in statement for statement in statements)
            assert list(changed["run_id"]) == [ids[57]] and changed.loc[ids[57], "hint"] == "looked at twice"
            assert later.updated_at is not None and stamp.updated_at is not None
            assert later.updated_at > stamp.updated_at
        finally:
            log.close()

    def test_a_refresh_upserts_into_the_frame(
        self, tmp_path: Path, browsers: Callable[..., LogBrowser]
    ) -> None:
        log = RunLog(tmp_path / "ws", create=True)
        try:
            ids = [insert(log, i) for i in range(40)]
            browser = browsers(log)
            browser.close()  # only explicit refreshes here
            assert browser.refresh() == 0
            log.update(ids[3], status="failure", error="gone")
            new = insert(log, 40, status="canceled")
            assert browser.refresh() == 2
            pd.testing.assert_frame_equal(browser.frame, log.df)
            assert "canceled" in browser.filters["status"].options
            browser.filters["status"].value = ("failure", "canceled")
            assert set(browser.matches["run_id"]) == {ids[3], new}
        finally:
            log.close()

    def test_another_process_writes_are_seen_at_the_next_refresh(
        self, tmp_path: Path, browsers: Callable[..., LogBrowser]
    ) -> None:
        reader = RunLog(tmp_path / "ws", create=True)
        writer = RunLog(tmp_path / "ws", create=True)  # its own connection, as another kernel would have
        try:
            insert(writer, 0)
            browser = browsers(reader)
            assert browser.count == 1
            insert(writer, 1)
            browser.refresh_button.click()
            assert browser.count == 2
        finally:
            writer.close()
            reader.close()

    def test_the_query_uses_the_updated_at_index(self, tmp_path: Path) -> None:
        """The very statement changed_since() sends is planned as an index search, not a table scan."""
        log = RunLog(tmp_path / "ws", create=True)
        try:
            insert(log, 0)
            _, stamp = log.changed_since()
            insert(log, 1)
            statements: list[str] = []
            log._connect().set_trace_callback(statements.append)
            log.changed_since(stamp)
            log._connect().set_trace_callback(None)
        finally:
            log.close()
        (query,) = [s for s in statements if "updated_at > " in s]
        conn = sqlite3.connect(tmp_path / "ws" / "runs.sqlite")
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        plan = " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
        conn.close()
        assert "runs_updated" in names and "USING INDEX runs_updated" in plan and "SCAN runs" not in plan

    def test_write_stamps_strictly_increase(self, tmp_path: Path) -> None:
        """Rows written within one millisecond still get distinct, ordered stamps (read once each)."""
        log = RunLog(tmp_path / "ws", create=True)
        try:
            stamps = []
            for i in range(50):
                insert(log, i)
                stamps.append(log.get(f"run_{i:012d}")["updated_at"])
            assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        finally:
            log.close()
