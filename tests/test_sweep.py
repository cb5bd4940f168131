"""Sweeps over the sandbox (fast speed): grids, estimates, budgets, cancellation, resume, 429s, limits."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import rodin_nb as rn
from rodin_nb.errors import SweepTimeout
from rodin_nb.sandbox import SandboxServer, serve
from rodin_nb.status import ON_SERVICE
from rodin_nb.sweep import SweepProgress, expand_grid

from .conftest import make_client

GENERATE = "POST /v1/generate/custom/{modelId}"


class TestGrid:
    def test_product_of_lists_with_scalars_fixed(self) -> None:
        rows = expand_grid(
            rn.ModelSchema.snapshot(), {"prompt": ["a", "b"], "seed": [1, 2, 3], "quality": "low"}
        )
        assert len(rows) == 6 and all(row["quality"] == "low" for row in rows)
        assert {(row["prompt"], row["seed"]) for row in rows} == {(p, s) for p in "ab" for s in (1, 2, 3)}

    def test_cases_add_to_the_grid(self) -> None:
        """Each case is one more combination; a swept name it leaves out still sweeps."""
        cases = [{"seed": 1, "tier": "Sketch"}, {"seed": 2, "tier": "Regular"}]
        rows = expand_grid(rn.ModelSchema.snapshot(), {"prompt": ["a", "b"], "seed": 9}, cases)
        assert [(r["prompt"], r["seed"], r.get("tier")) for r in rows] == [
            ("a", 9, None), ("b", 9, None),  # the grid's own product
            ("a", 1, "Sketch"), ("b", 1, "Sketch"), ("a", 2, "Regular"), ("b", 2, "Regular"),
        ]  # fmt: skip

    def test_a_plan_too_big_is_refused_from_its_shape_at_once(
        self, client: rn.Client, sandbox: SandboxServer
    ) -> None:
        """400 prompts x 400 seeds used to hold the kernel for minutes while 160,000 rows were checked."""
        client.schema  # noqa: B018  (read once per client, before the count)
        before = sum(sandbox.stats()["requests"].values())
        with pytest.raises(rn.ValidationError) as info:
            client.sweep(prompt=[f"a chair {i}" for i in range(400)], seed=list(range(400)))
        assert "160,000 runs (400 prompt x 400 seed); at most 10,000 in one sweep" in str(info.value)
        assert sum(sandbox.stats()["requests"].values()) == before  # nothing sent
        assert len(client.sweep(prompt="a chair", seed=list(range(100)), tier=["Sketch"]).requests) == 100

    def test_readme_cases_example(self, client: rn.Client) -> None:
        """The README's example: a 2 x 2 grid plus one explicit combination is 5 runs."""
        sweep = client.sweep(
            prompt="a chair", seed=[1, 2], tier=["Sketch", "Regular"],
            cases=[{"seed": 1, "tier": "Regular", "quality": "low"}],
        )  # fmt: skip
        got = [(r.seed, r.params["tier"], r.params.get("quality")) for r in sweep.requests]
        assert len(got) == 5 and got[-1] == (1, "Regular", "low")
        assert {(s, t) for s, t, _ in got[:4]} == {
            (1, "Sketch"),
            (2, "Sketch"),
            (1, "Regular"),
            (2, "Regular"),
        }

    def test_cases_alone_when_nothing_is_swept(self) -> None:
        cases = [{"seed": 1, "tier": "Sketch"}, {"seed": 2}]
        rows = expand_grid(rn.ModelSchema.snapshot(), {"prompt": "a chair"}, cases)
        assert rows == [{"prompt": "a chair", **case} for case in cases]

    def test_images_sweep_over_lists_of_lists(self) -> None:
        schema = rn.ModelSchema.snapshot()
        assert len(expand_grid(schema, {"images": ["asset_a", "asset_b"]})) == 1  # one request, two images
        assert len(expand_grid(schema, {"images": [["asset_a"], ["asset_b"]]})) == 2

    def test_every_bad_row_in_one_error(self, client: rn.Client, sandbox: SandboxServer) -> None:
        with pytest.raises(rn.ValidationError) as info:
            client.sweep(prompt="a chair", seed=[1, -5, 70000], tier=["Sketch", "Ultra"])
        fields = info.value.fields
        assert any("seed" in f for f in fields) and any("tier" in f for f in fields)
        assert len(fields) >= 4 and all(f.startswith("row ") for f in fields)
        assert sandbox.stats()["requests"].get(GENERATE, 0) == 0

    def test_empty_axis_is_refused(self, client: rn.Client) -> None:
        with pytest.raises(rn.ValidationError, match="empty list"):
            client.sweep(prompt="a chair", seed=[])

    @pytest.mark.parametrize(
        "cases",
        [{"seed": 3}, "seed", [None], ["seed"], [{1: 2}], [("seed", 3)], 5],
        ids=["a-dict", "a-string", "none-item", "string-item", "int-key", "pair-item", "an-int"],
    )
    def test_cases_that_are_not_a_list_of_dicts_are_a_validation_error(
        self, client: rn.Client, sandbox: SandboxServer, cases: object
    ) -> None:
        """They raised ValueError/TypeError from deep inside (found by tests/test_sweep_fuzz.py)."""
        client.schema  # noqa: B018  (the schema is read once per client, before any planning)
        before = sandbox.stats()["requests"]
        with pytest.raises(rn.ValidationError, match="cases"):
            client.sweep(prompt="a chair", seed=[1, 2], cases=cases)  # type: ignore[arg-type]
        assert sandbox.stats()["requests"] == before

    @pytest.mark.parametrize("concurrency", [0, -1, 1.5, "3", True])
    def test_bad_concurrency_is_a_validation_error(self, client: rn.Client, concurrency: object) -> None:
        """-1 planned a sweep that never submitted (run() hung); "3" and 1.5 failed later, on the engine."""
        with pytest.raises(rn.ValidationError, match="concurrency"):
            client.sweep(prompt="a chair", seed=[1, 2], concurrency=concurrency)  # type: ignore[arg-type]


class TestMoney:
    @pytest.mark.parametrize("budget", [-1, float("nan"), -float("inf"), "10", True, [1]])
    def test_bad_budget_is_a_validation_error_before_any_request(
        self, client: rn.Client, sandbox: SandboxServer, budget: object
    ) -> None:
        """NaN ran with no limit at all, True as 1, "10" raised TypeError (found by the sweep fuzz)."""
        sweep = client.sweep(prompt="a chair", seed=[1, 2])
        before = sandbox.stats()["requests"]
        with pytest.raises(rn.ValidationError, match="budget"):
            sweep.run(budget=budget, progress=False)  # type: ignore[arg-type]
        assert sandbox.stats()["requests"] == before  # not even the dry run of the estimate
        assert sweep.budget is None

    def test_an_integer_budget_beyond_any_float_is_no_limit(self, client: rn.Client) -> None:
        """10**400 overflowed SQLite when the sweep was saved; it is a budget nothing exceeds."""
        sweep = client.sweep(prompt="a chair", seed=[1], quality="extra-low")
        df = sweep.run(budget=10**400, progress=False)
        assert list(df["status"]) == ["success"] and sweep.budget == float("inf")

    def test_plan_marks_runs_already_in_the_log(self, client: rn.Client) -> None:
        client.generate(prompt="a chair", seed=1, tier="Regular", quality="extra-low").wait(timeout=30)
        sweep = client.sweep(prompt="a chair", seed=[1, 2], tier="Regular", quality="extra-low")
        plan = sweep.plan
        assert list(plan["in_log"]) == [True, False] and plan["run_id"].iloc[0] is not None
        assert sweep.paid_count() == 1

    def test_estimate_asks_once_per_cost_combination(self, client: rn.Client, sandbox: SandboxServer) -> None:
        sweep = client.sweep(
            prompt=["a chair", "a vase"], seed=[1, 2, 3], tier=["Sketch", "Regular"], quality="medium"
        )
        before = sandbox.stats()["requests"].get(GENERATE, 0)
        total = sweep.estimate()
        assert sandbox.stats()["requests"][GENERATE] - before == 2  # tier is the only costImpact input
        assert total == 6 * client.estimate(prompt="x", tier="Sketch") + 6 * client.estimate(prompt="x")
        assert sandbox.stats()["jobs_created"] == 0

    def test_budget_refuses_before_submitting_anything(
        self, client: rn.Client, sandbox: SandboxServer
    ) -> None:
        sweep = client.sweep(prompt="a chair", seed=[1, 2, 3], tier=["Sketch", "Regular"], quality="medium")
        with pytest.raises(rn.BudgetExceeded, match="nothing was submitted"):
            sweep.run(budget=50, progress=False)
        assert sandbox.stats()["jobs_created"] == 0

    def test_runs_within_budget(self, client: rn.Client) -> None:
        sweep = client.sweep(prompt="a chair", seed=[1, 2], tier=["Sketch", "Regular"], quality="medium")
        df = sweep.run(budget=1000, progress=False)
        assert len(df) == 4 and set(df["status"]) == {"success"}
        assert sweep.spent() == pytest.approx(df["cost"].sum())
        assert list(df.columns) == list(client.log.df.columns)


class TestEngine:
    def test_background_start_keeps_the_caller_free(self, tmp_path: Path) -> None:
        with serve(job_seconds=0.5) as sb, make_client(sb, tmp_path) as client:
            sweep = client.sweep(prompt="a chair", seed=[1, 2, 3, 4], quality="extra-low")
            started = time.monotonic()
            sweep.start()
            assert time.monotonic() - started < 0.5 and not sweep.done
            sweep.wait(timeout=60)
            assert sweep.done and len(sweep.df) == 4

    def test_concurrency_cap_and_parallel_limit(self, tmp_path: Path) -> None:
        with (
            serve(job_seconds=0.3, parallel_jobs=2) as sb,
            make_client(sb, tmp_path, parallel_jobs=2) as client,
        ):
            sweep = client.sweep(prompt="a chair", seed=list(range(8)), quality="extra-low", concurrency=3)
            peak = [0]
            lock = threading.Lock()

            def watch(s: object) -> None:
                with lock:
                    # Jobs on the service (a run still downloading its files holds no slot there).
                    peak[0] = max(peak[0], sum(1 for r in sweep.runs if r.status in ON_SERVICE))

            sweep.on_change(watch)
            sweep.run(progress=False)
            assert sb.stats()["jobs_created"] == 8
        assert 2 <= peak[0] <= 3

    def test_a_429_storm_slows_down_but_finishes(self, tmp_path: Path) -> None:
        faults = {"rate_limit_per_s": 8}
        with serve(job_seconds=0.3, faults=faults) as sb, make_client(sb, tmp_path) as client:
            df = client.sweep(prompt="a chair", seed=list(range(6)), quality="extra-low").run(progress=False)
            stats = sb.stats()
        assert set(df["status"]) == {"success"} and stats["jobs_created"] == 6
        assert stats["faults_injected"].get("rate_limit", 0) > 0

    def test_cancel_stops_submitting_and_cancels_running(self, tmp_path: Path) -> None:
        with (
            serve(job_seconds=3.0, parallel_jobs=2) as sb,
            make_client(sb, tmp_path, parallel_jobs=2) as client,
        ):
            sweep = client.sweep(prompt="a chair", seed=list(range(10)), quality="extra-low", concurrency=2)
            sweep.start()
            time.sleep(0.3)
            canceled = sweep.cancel()
            sweep.wait(timeout=30)
            assert canceled >= 1 and sb.stats()["jobs_created"] == 2
            assert {run.status for run in sweep.runs} == {"canceled"}

    def test_failures_do_not_stop_the_sweep(self, tmp_path: Path) -> None:
        with (
            serve(job_seconds=0.2, faults={"fail_rate": 0.5, "seed": 2}) as sb,
            make_client(sb, tmp_path) as client,
        ):
            df = client.sweep(prompt="a chair", seed=list(range(6)), quality="extra-low").run(progress=False)
        assert len(df) == 6 and {"failure", "success"} <= set(df["status"])
        assert df.loc[df["status"] == "failure", "error"].notna().all()


class TestLifecycle:
    """When a sweep says it is done, it is: nothing in flight, nothing forgotten, nothing paid late."""

    def test_done_waits_for_submissions_still_in_flight(self, tmp_path: Path) -> None:
        with (
            serve(job_seconds=0.2, faults={"slow_create_s": 0.6}) as sb,
            make_client(sb, tmp_path) as client,
        ):
            df = client.sweep(prompt="a chair", seed=list(range(6)), quality="extra-low").run(progress=False)
            assert len(df) == 6 and set(df["status"]) == {"success"}
            assert sb.stats()["jobs_created"] == 6

    def test_a_sweep_answered_from_the_log_returns_every_row(self, client: rn.Client) -> None:
        grid = {"prompt": "a chair", "seed": [1, 2, 3, 4], "quality": "extra-low"}
        client.sweep(**grid).run(progress=False)
        for _ in range(5):  # the early "done" was a race: give it several chances to show
            df = client.sweep(**grid).run(progress=False)
            assert len(df) == 4 and set(df["status"]) == {"success"}

    def test_cancel_reaches_a_job_whose_creation_was_under_way(self, tmp_path: Path) -> None:
        with (
            serve(job_seconds=2.0, faults={"slow_create_s": 0.8}) as sb,
            make_client(sb, tmp_path) as client,
        ):
            sweep = client.sweep(prompt="a chair", seed=[1, 2], quality="extra-low").start()
            time.sleep(0.3)  # a generate call is now waiting for the service
            sweep.cancel()
            sweep.wait(timeout=30)
            assert len(sweep.runs) == sb.stats()["jobs_created"] >= 1
            assert {run.status for run in sweep.runs} == {"canceled"}

    def test_start_after_an_interrupt_continues(self, tmp_path: Path) -> None:
        with serve(job_seconds=0.3) as sb, make_client(sb, tmp_path) as client:
            sweep = client.sweep(prompt="a chair", seed=list(range(6)), quality="extra-low", concurrency=2)
            sweep.start()
            sweep.pause()  # what run() does on a keyboard interrupt
            for run in sweep.runs:
                run.wait(timeout=30)
            sweep.wait(timeout=30)
            assert len(sweep.runs) < 6
            df = sweep.run(progress=False)  # the same object, started again: the rest of the plan runs
            assert len(df) == 6 and set(df["status"]) == {"success"} and sb.stats()["jobs_created"] == 6

    def test_budget_counts_free_runs_as_free(self, client: rn.Client, sandbox: SandboxServer) -> None:
        client.generate(prompt="a chair", seed=3, tier="Sketch").wait(timeout=30)
        sweep = client.sweep(prompt="a chair", seed=[4, 3], tier="Sketch")
        df = sweep.run(budget=sweep.estimate(), progress=False)  # exactly the one new run's price
        assert len(df) == 2 and set(df["status"]) == {"success"}
        assert sandbox.stats()["jobs_created"] == 2

    def test_reopened_sweep_keeps_runs_answered_from_the_log(self, client: rn.Client) -> None:
        client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
        sweep = client.sweep(prompt="a chair", seed=[1, 2], quality="extra-low")
        sweep.run(progress=False)
        again = client.sweep_by_id(sweep.sweep_id)
        assert len(again.df) == 2 and again.counts() == {"success": 2}

    def test_one_seed_for_the_whole_grid_when_none_is_given(self, client: rn.Client) -> None:
        sweep = client.sweep(prompt=["a chair", "a vase"], tier=["Sketch", "Regular"])
        assert len({req.seed for req in sweep.requests}) == 1
        cases = [{"tier": "Sketch", "seed": 5}, {"tier": "Regular"}, {"tier": "Regular", "quality": "low"}]
        mixed = client.sweep(prompt="a chair", cases=cases)
        seeds = [req.seed for req in mixed.requests]
        assert seeds[0] == 5 and seeds[1] == seeds[2]  # the cases without a seed share the drawn one

    def test_two_rows_asking_for_one_request_are_paid_and_counted_once(
        self, client: rn.Client, sandbox: SandboxServer
    ) -> None:
        # Sketch ignores quality, so Sketch x {medium, high} is one request: 3 planned runs, 3 jobs.
        with pytest.warns(rn.RodinWarning, match="forces quality") as said:
            sweep = client.sweep(
                prompt="a chair", seed=1, tier=["Sketch", "Regular"], quality=["medium", "high"]
            )
        assert len(said) == 1  # once for the sweep, not once per Sketch row
        assert len(sweep.requests) == len(sweep.plan) == sweep.paid_count() == 3
        budget = sweep.estimate()
        assert budget == client.estimate(prompt="x", tier="Sketch") + 2 * client.estimate(prompt="x")
        df = sweep.run(budget=budget, progress=False)  # exactly enough: not refused
        assert set(df["status"]) == {"success"} and sandbox.stats()["jobs_created"] == 3
        assert len(df) == 3 and df.index.is_unique  # one row per run: group-bys are not skewed
        assert sweep.spent() == budget

    def test_cancel_leaves_runs_of_others_alone(self, tmp_path: Path) -> None:
        with serve(job_seconds=2.0) as sb, make_client(sb, tmp_path) as client:
            mine = client.generate(prompt="a chair", seed=1, quality="extra-low")
            sweep = client.sweep(prompt="a chair", seed=[1, 2], quality="extra-low").start()
            time.sleep(0.3)
            assert sweep.cancel() == 1  # its own job only; seed 1 is answered by `mine`
            sweep.wait(timeout=30)
            assert mine.wait(timeout=30).status == "success"

    def test_reopening_a_sweep_submits_nothing_until_started(self, tmp_path: Path) -> None:
        with serve(job_seconds=0.5) as sb:
            with make_client(sb, tmp_path) as client:
                sweep = client.sweep(
                    prompt="a chair", seed=list(range(6)), quality="extra-low", concurrency=2
                )
                sweep.start()
                sweep.pause()
            with make_client(sb, tmp_path) as again:
                reopened = again.sweep_by_id(sweep.sweep_id)
                for run in reopened.runs:
                    run.wait(timeout=30)  # re-attached runs end: that alone must not submit the rest
                created = sb.stats()["jobs_created"]
                assert created < 6 and reopened.counts().get("planned", 0) == 6 - created
                reopened.run(progress=False)
                assert sb.stats()["jobs_created"] == 6

    def test_closing_the_client_ends_wait(self, tmp_path: Path) -> None:
        with serve(job_seconds=2.0) as sb:
            client = make_client(sb, tmp_path)
            sweep = client.sweep(prompt="a chair", seed=[1, 2, 3], quality="extra-low").start()
            time.sleep(0.3)
            client.close()
            with contextlib.suppress(rn.RodinError):
                sweep.wait(timeout=10)  # returns or raises a RodinError; never hangs
            assert sweep.done

    def test_unknown_sweep_id_is_a_clear_error(self, client: rn.Client, sandbox: SandboxServer) -> None:
        with pytest.raises(rn.RodinError, match="no sweep 'sweep_nope'"):
            client.sweep_by_id("sweep_nope")
        cli = [sys.executable, "-m", "rodin_nb.cli", "sweep", "--resume", "sweep_nope"]
        cli += ["--base-url", sandbox.url, "--workspace", str(client.workspace)]
        done = subprocess.run(cli, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and "no sweep 'sweep_nope'" in done.stderr
        assert "Traceback" not in done.stderr


SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time, rodin_nb as rn
    url, workspace = sys.argv[1], sys.argv[2]
    client = rn.connect(base_url=url, workspace=workspace, quiet=True, parallel_jobs=2)
    sweep = client.sweep(prompt="a chair", seed=list(range(8)), quality="extra-low", concurrency=2)
    print(sweep.sweep_id, flush=True)
    sweep.start()
    while len(sweep.runs) < 2 or not all(run.job_id for run in sweep.runs):
        time.sleep(0.02)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.filterwarnings("ignore:tier='Sketch' forces quality")
class TestPlanIdentity:
    """One plan is one sweep: planning it again continues the same record, with its runs attached."""

    def test_planning_again_is_the_same_sweep_with_a_true_record(
        self, client: rn.Client, sandbox: SandboxServer
    ) -> None:
        grid = {"prompt": "a chair", "seed": [1, 2], "tier": ["Sketch", "Regular"], "quality": "extra-low"}
        first = client.sweep(**grid)
        budget = first.estimate()
        first.run(budget=budget, progress=False)
        spent = first.spent()
        assert spent == budget > 0

        again = client.sweep(**grid)
        assert again.sweep_id == first.sweep_id
        # Its runs are there before run(): all four, from the log, nothing to pay.
        assert [r.run_id for r in again.runs] == [r.run_id for r in first.runs]
        assert len(again.df) == 4 and set(again.df["status"]) == {"success"}
        assert again.estimate() == 0.0 and again.paid_count() == 0
        again.run(budget=10, progress=False)
        assert sandbox.stats()["jobs_created"] == 4

        (record,) = client.log.sweeps()  # one record, not one per planning
        assert record["sweep_id"] == first.sweep_id and record["runs"] == 4
        assert record["spent"] == spent and record["estimate"] == spent  # not 0.0 after the re-plan
        assert again.progress().estimate == spent and again.progress().spent == spent

    def test_a_sweep_without_a_budget_records_its_estimate(self, client: rn.Client) -> None:
        sweep = client.sweep(prompt="a chair", seed=[1, 2], tier=["Sketch", "Regular"], quality="extra-low")
        sweep.run(progress=False)
        (record,) = client.log.sweeps()
        assert record["estimate"] == record["spent"] == sweep.spent() > 0
        assert set(record) == {"sweep_id", "created_at", "budget", "estimate", "spent", "runs"}

    def test_a_case_repeating_a_grid_point_is_one_run(self, client: rn.Client) -> None:
        sweep = client.sweep(prompt="a chair", seed=[1, 2], cases=[{"seed": 1}])
        assert [req.seed for req in sweep.requests] == [1, 2]

    def test_other_seeds_are_another_sweep(self, client: rn.Client) -> None:
        a = client.sweep(prompt="a chair", seed=[1, 2])
        b = client.sweep(prompt="a chair", seed=[1, 3])
        assert a.sweep_id != b.sweep_id

    def test_runs_in_the_log_are_attached_at_planning_and_nothing_is_sent_before_start(
        self, client: rn.Client, sandbox: SandboxServer
    ) -> None:
        client.generate(prompt="a chair", seed=1, quality="extra-low").wait(timeout=30)
        sweep = client.sweep(prompt="a chair", seed=[1, 2], quality="extra-low")
        assert [r.seed for r in sweep.runs] == [1] and sweep.counts() == {"success": 1, "planned": 1}
        assert not sweep.done and sandbox.stats()["jobs_created"] == 1
        sweep.run(progress=False)
        assert [r.seed for r in sweep.runs] == [1, 2] and sandbox.stats()["jobs_created"] == 2

    def test_compare_folds_a_third_swept_axis_into_the_rows(self, client: rn.Client) -> None:
        """The README's sweep.compare(rows="seed", cols="tier") on a two-prompt sweep."""
        sweep = client.sweep(
            prompt=["a chair", "a vase"], seed=[1, 2], tier=["Sketch", "Regular"], quality="extra-low"
        )
        sweep.run(progress=False)
        grid = sweep.compare(rows="seed", cols="tier")
        layout = grid._layout
        assert layout.rows == 4 and layout.cols == 2
        assert layout.row_headers[0] == "prompt=a chair · seed=1"
        assert layout.col_headers == ["tier=Sketch", "tier=Regular"]
        assert all(index is not None for row in layout.table for index in row)
        with pytest.raises(ValueError, match="facet='prompt'"):
            sweep.compare(rows="seed", cols="tier", facet=())


class TestResume:
    def test_crashed_sweep_is_reopened_and_finished_without_paying_twice(self, tmp_path: Path) -> None:
        with serve(job_seconds=0.6, parallel_jobs=2) as sb:
            proc = subprocess.run(
                [sys.executable, "-c", SCRIPT, sb.url, str(tmp_path)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == -signal.SIGKILL, proc.stderr
            sweep_id = proc.stdout.split()[0]
            with make_client(sb, tmp_path, parallel_jobs=2) as client:
                sweep = client.sweep_by_id(sweep_id)
                assert len(sweep.requests) == 8 and len(sweep.runs) >= 2
                df = sweep.run(progress=False)
                assert len(df) == 8 and set(df["status"]) == {"success"}
                assert sorted(int(s) for s in df["seed"]) == list(range(8))
            assert sb.stats()["jobs_created"] == 8

    def test_paused_sweep_continues(self, tmp_path: Path) -> None:
        with serve(job_seconds=0.3) as sb, make_client(sb, tmp_path) as client:
            sweep = client.sweep(prompt="a chair", seed=list(range(6)), quality="extra-low", concurrency=2)
            sweep.start()
            sweep.pause()  # what run() does on a keyboard interrupt
            for run in sweep.runs:
                run.wait(timeout=30)
            assert len(sweep.runs) < 6
            again = client.sweep_by_id(sweep.sweep_id)
            again.run(progress=False)
            assert len(again.runs) == 6 and sb.stats()["jobs_created"] == 6

    def test_keyboard_interrupt_leaves_jobs_running_and_resumable(self, tmp_path: Path) -> None:
        with serve(job_seconds=1.0, parallel_jobs=2) as sb:
            base = [
                sys.executable,
                "-m",
                "rodin_nb.cli",
                "sweep",
                "--base-url",
                sb.url,
                "--workspace",
                str(tmp_path),
            ]
            proc = subprocess.Popen(
                [
                    *base,
                    "--prompt",
                    "a chair",
                    "--seed",
                    *map(str, range(6)),
                    "--quality",
                    "extra-low",
                    "--concurrency",
                    "2",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            deadline = time.monotonic() + 30
            while sb.stats()["jobs_created"] < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            proc.send_signal(signal.SIGINT)  # Ctrl-C (a kernel interrupt raises the same KeyboardInterrupt)
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 130, err
            assert "keep running" in err
            submitted = sb.stats()["jobs_created"]
            assert 2 <= submitted < 6
            sweep_id = out.split()[1].rstrip(":")
            done = subprocess.run([*base, "--resume", sweep_id], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert done.stdout.count("success") == 6
            assert sb.stats()["jobs_created"] == 6


class TestProgress:
    def test_wait_timeout_is_a_rodin_error_and_the_sweep_keeps_running(self, tmp_path: Path) -> None:
        with serve(job_seconds=1.0) as sb, make_client(sb, tmp_path) as client:
            sweep = client.sweep(prompt="a chair", seed=[1, 2], quality="extra-low").start()
            with pytest.raises(SweepTimeout) as info:
                sweep.wait(timeout=0.05)
            assert isinstance(info.value, rn.RodinError) and isinstance(info.value, TimeoutError)
            assert info.value.sweep_id == sweep.sweep_id
            message = str(info.value)
            assert sweep.sweep_id in message and "keeps running" in message and "sweep.wait()" in message
            assert not sweep.done
            assert sweep.wait(timeout=60) is sweep  # waiting again works
            assert sweep.progress().counts == {"success": 2}

    def test_progress_is_a_frozen_value(self, client: rn.Client) -> None:
        sweep = client.sweep(prompt="a chair", seed=[1, 2], quality="extra-low")
        before = sweep.progress()
        assert isinstance(before, SweepProgress)
        assert before.counts == {"planned": 2} and before.total == 2 and before.ended == 0
        assert before.fraction == 0.0 and before.spent == 0 and before.elapsed_s == 0.0
        assert before.remaining_s is None
        with pytest.raises(dataclasses.FrozenInstanceError):
            before.fraction = 1.0  # type: ignore[misc]
        with pytest.raises(TypeError):
            before.counts["success"] = 2  # type: ignore[index]
        sweep.estimate()
        sweep.run(budget=100, progress=False)
        after = sweep.progress()
        assert after.counts == {"success": 2} and after.ended == after.total == 2
        assert after.fraction == 1.0 and after.remaining_s == 0.0 and after.elapsed_s > 0
        assert after.spent > 0 and after.estimate == after.spent
        assert before.counts == {"planned": 2}  # a snapshot: later news does not change it
        hash(after)
        time.sleep(0.05)
        assert sweep.progress().elapsed_s == after.elapsed_s  # the clock stops when the sweep is done

    def test_widget_and_line(self, client: rn.Client) -> None:
        from rodin_nb.progress import SweepProgressWidget, progress_line

        sweep = client.sweep(prompt="a chair", seed=[1, 2], quality="extra-low")
        view = SweepProgressWidget(sweep, min_interval_s=0)
        assert view.bar.value == 0.0 and "planned 2" in view.label.value
        sweep.run(budget=100, progress=False)
        # The widget draws the final state by itself (its last update used to predate the end).
        assert view.bar.value == 1.0 and view.bar.bar_style == "success"
        assert "succeeded 2" in view.label.value and "spent 2/2 CU" not in view.label.value
        assert "spent" in view.label.value
        assert "2/2 done" in progress_line(sweep)

    def test_cli_sweep(self, sandbox: SandboxServer, tmp_path: Path) -> None:
        base = [
            sys.executable,
            "-m",
            "rodin_nb.cli",
            "sweep",
            "--prompt",
            "a chair",
            "--seed",
            "1",
            "2",
            "--tier",
            "Sketch",
            "Regular",
            "--quality",
            "medium",
            "--base-url",
            sandbox.url,
            "--workspace",
            str(tmp_path),
        ]
        refused = subprocess.run([*base, "--budget", "10"], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 3 and "budget" in refused.stderr
        done = subprocess.run([*base, "--budget", "500"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("success") == 4 and "done" in done.stderr
        assert sandbox.stats()["jobs_created"] == 4


def test_a_broken_submission_ends_the_sweep_instead_of_hanging(client: rn.Client) -> None:
    """An error of rodin_nb's own (not the service's answer) stops the sweep; wait() raises it."""
    sweep = client.sweep(prompt="a chair", seed=[1, 2, 3], quality="extra-low", concurrency=1)

    def broken(*args: object, **kwargs: object) -> rn.Run:
        raise RuntimeError("database is locked")

    client.submitter.start = broken  # type: ignore[method-assign]
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="locked"):
        sweep.run(progress=False)
    assert sweep.done and time.monotonic() - started < 5
