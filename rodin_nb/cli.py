"""The ``rodin-nb`` command line: the same client, engine and sandbox as the notebooks.

Output goes to ``sys.stdout``/``sys.stderr`` through small helpers here (``print`` is banned in the
library so nothing ever prints from a background thread).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import RodinError

__all__ = ["main"]


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import serve

    try:
        server = serve(
            port=args.port,
            speed=args.speed,
            job_seconds=args.job_seconds,
            parallel_jobs=args.parallel_jobs,
            state_dir=args.state,
        )
    except OSError as exc:  # the port is taken, or not ours to bind
        _err(f"rodin-nb: cannot serve on 127.0.0.1:{args.port}: {exc.strerror or exc}; choose another --port")
        return 2
    with server:
        _out(f"rodin_nb sandbox serving Scenario's API at {server.url}  (Ctrl-C to stop)")
        if server.state_dir is not None:
            _out(f"  jobs and uploads kept in {server.state_dir}")
        _out(f"  use it with: SCENARIO_BASE_URL={server.url} or rn.connect(base_url={server.url!r})")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            _out("stopping")
    return 0


def _workspace(args: argparse.Namespace) -> Path:
    from .runlog import default_workspace

    return Path(args.workspace) if args.workspace else default_workspace()


def _has_log(workspace: Path) -> bool:
    from .runlog import LOG_FILE

    return (workspace / LOG_FILE).is_file()


def _connect(args: argparse.Namespace) -> Any:
    from .client import connect

    # With --sandbox the user asked for the sandbox: no notice that it stands in for Scenario.
    return connect(
        base_url=args.base_url,
        sandbox=True if args.sandbox else None,
        workspace=args.workspace,
        quiet=bool(args.sandbox),
    )


def _offline_schema(args: argparse.Namespace) -> Any:
    """The schema to check requests against before connecting, or None to check after.

    The embedded sandbox serves the bundled schema, so requests for it are validated before it starts
    (starting it creates its folder in the workspace). A real service's schema is read live after
    connecting, which creates nothing on disk.
    """
    from .client import uses_embedded_sandbox
    from .schema import ModelSchema

    if uses_embedded_sandbox(base_url=args.base_url, sandbox=True if args.sandbox else None):
        return ModelSchema.snapshot()
    return None


def _validate(schema: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Raise the ValidationError for any bad row (every problem listed); warnings come later, once."""
    from .sweep import plan_requests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the real request warns (Sketch's forced quality) when it is made
        plan_requests(schema, rows)


def _progress_line(runs: Sequence[Any]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    mean = sum(run.progress for run in runs) / max(1, len(runs))
    parts = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    return f"{mean:4.0%}  {parts}"


def _wait_all(runs: Sequence[Any], *, tty: bool) -> None:
    """Wait for every run, drawing one updating progress line on a terminal (from the main thread)."""
    while not all(run.done for run in runs):
        if tty:
            sys.stderr.write("\r" + _progress_line(runs).ljust(70))
            sys.stderr.flush()
        time.sleep(0.2)
    if tty:
        sys.stderr.write("\r" + _progress_line(runs).ljust(70) + "\n")


def _cmd_generate(args: argparse.Namespace) -> int:
    from .errors import JobError

    params: dict[str, Any] = {"prompt": args.prompt, "quality": args.quality, "material": args.material}
    rows = [
        {name: value for name, value in {**params, "seed": seed, "tier": tier}.items() if value is not None}
        for seed, tier in itertools.product(args.seed or [None], args.tier or [None])
    ]
    schema = _offline_schema(args)
    if schema is not None:
        _validate(schema, rows)  # before the sandbox starts: a bad request creates nothing
    client = _connect(args)
    try:
        runs = [client.generate(**row) for row in rows]
        _wait_all(runs, tty=sys.stderr.isatty())
        _out(f"{'run_id':<18}{'seed':>6}  {'tier':<8}{'status':<10}{'cost':>6}  file")
        failed = 0
        for run in runs:
            try:
                run.wait()
            except JobError:
                failed += 1
            except RodinError as exc:
                failed += 1
                _err(f"{run.run_id}: {exc}")
            cost = f"{run.cost:g}" if run.cost is not None else "-"
            _out(
                f"{run.run_id:<18}{run.seed!s:>6}  {run.params.get('tier')!s:<8}{run.status:<10}{cost:>6}  "
                f"{run.glb or run.error or ''}"
            )
        return 1 if failed else 0
    finally:
        client.close()


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .errors import BudgetExceeded
    from .rules import draw_seed
    from .sweep import expand_grid

    grid: dict[str, Any] = {}
    if args.resume:
        workspace = _workspace(args)
        if not _has_log(workspace):
            _err(f"rodin-nb: no sweep {args.resume!r} to resume: no run log in {workspace}")
            return 2
    elif not args.prompt:
        _err("rodin-nb: sweep needs --prompt (or --resume SWEEP_ID to continue an interrupted sweep)")
        return 2
    else:
        given = {
            "prompt": args.prompt,
            "seed": args.seed,
            "tier": args.tier,
            "quality": args.quality,
            "material": args.material,
        }
        # One value is fixed, several are swept.
        grid = {name: (value[0] if len(value) == 1 else value) for name, value in given.items() if value}
        grid.setdefault("seed", draw_seed())  # one seed for the whole grid, as client.sweep() draws it
        schema = _offline_schema(args)
        if schema is not None:
            _validate(schema, expand_grid(schema, grid))
    client = _connect(args)
    try:
        if args.resume:
            sweep = client.sweep_by_id(args.resume)
        else:
            sweep = client.sweep(concurrency=args.concurrency, **grid)
        _out(
            f"sweep {sweep.sweep_id}: {len(sweep.requests)} runs, {sweep.paid_count()} to pay "
            f"(workspace {client.workspace})"
        )
        try:
            sweep.run(budget=args.budget)
        except BudgetExceeded as exc:
            _err(f"rodin-nb: {exc}")
            return 3
        except KeyboardInterrupt:
            _err(
                f"interrupted: submitted jobs keep running; continue with: "
                f"rodin-nb sweep --resume {sweep.sweep_id}"
            )
            return 130
        _out(sweep.table())
        return 0 if all(run.status == "success" for run in sweep.runs) else 1
    finally:
        client.close()


def _cmd_log(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .logframe import flat_frame
    from .runlog import RunLog, default_workspace

    workspace = Path(args.workspace) if args.workspace else default_workspace()
    try:
        log = RunLog(workspace)
    except ConfigError as exc:
        _err(f"rodin-nb: {exc}")
        return 1
    try:
        if args.sweeps:
            return _print_sweeps(log.sweeps(), workspace)
        frame = log.df
    finally:
        log.close()
    if frame.empty and args.format == "table":
        _out(f"no runs in {workspace} yet")
        return 0
    if args.format == "csv":
        sys.stdout.write(flat_frame(frame).to_csv(index=False))
    elif args.format == "json":
        sys.stdout.write(frame.to_json(orient="records", date_format="iso", indent=1) + "\n")
    else:
        columns = [
            "run_id",
            "status",
            "seed",
            "tier",
            "quality",
            "material",
            "cost",
            "duration_s",
            "faces",
            "error",
        ]
        _out(frame[columns].to_string(index=False, na_rep="-", max_colwidth=40))
    return 0


def _print_sweeps(sweeps: list[dict[str, Any]], workspace: Path) -> int:
    if not sweeps:
        _out(f"no sweeps in {workspace} yet")
        return 0

    def number(value: Any) -> str:
        return "-" if value is None else f"{value:g}"

    _out(f"{'sweep_id':<18}{'created (UTC)':<21}{'runs':>5}{'budget':>8}{'estimate':>9}{'spent':>7}")
    for sweep in sweeps:
        _out(
            f"{sweep['sweep_id']:<18}{str(sweep['created_at'])[:19].replace('T', ' '):<21}{sweep['runs']:>5}"
            f"{number(sweep['budget']):>8}{number(sweep['estimate']):>9}{number(sweep['spent']):>7}"
        )
    _out("continue one with: rodin-nb sweep --resume SWEEP_ID")
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    if not _has_log(workspace):  # nothing ever ran there: say so, and create nothing
        _out(f"nothing to resume in {workspace.absolute()} (no run log there)")
        return 0
    client = _connect(args)
    try:
        runs = client.resume()
        if not runs:
            _out(f"nothing to resume in {client.workspace}")
            return 0
        _out(f"resuming {len(runs)} run(s) in {client.workspace}")
        _wait_all(runs, tty=sys.stderr.isatty())
        for run in runs:
            _out(f"{run.run_id:<18}{run.status:<10}{run.glb or run.error or ''}")
        return 0 if all(run.status == "success" for run in runs) else 1
    finally:
        client.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rodin-nb", description="Rodin Gen-1 on Scenario, from a terminal.")
    sub = parser.add_subparsers(dest="command", required=True)

    sb = sub.add_parser("sandbox", help="serve the embedded sandbox (Scenario's wire protocol on loopback)")
    sb.add_argument("--port", type=int, default=8765)
    sb.add_argument("--speed", type=float, default=1.0, help="time factor: 10 runs jobs 10x faster")
    sb.add_argument("--job-seconds", type=float, default=None, help="fix every job's running time")
    sb.add_argument("--parallel-jobs", type=int, default=4, help="per-account parallel-job limit")
    sb.add_argument(
        "--state",
        metavar="DIR",
        default=None,
        help="keep jobs and uploads in DIR (shared with other sandboxes on it, kept across restarts); "
        "default: in memory",
    )
    sb.set_defaults(func=_cmd_sandbox)

    def add_connection(p: argparse.ArgumentParser) -> None:
        p.add_argument("--sandbox", action="store_true", help="always use the embedded sandbox")
        p.add_argument("--base-url", default=None, help="API base URL (default: SCENARIO_BASE_URL)")
        p.add_argument("--workspace", default=None, help="run log and files (default: ./rodin_runs)")

    gen = sub.add_parser("generate", help="generate one model per seed x tier and wait for the files")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--seed", type=int, nargs="*", default=None)
    gen.add_argument("--tier", nargs="*", default=None)
    gen.add_argument("--quality", default=None)
    gen.add_argument("--material", default=None)
    add_connection(gen)
    gen.set_defaults(func=_cmd_generate)

    sw = sub.add_parser("sweep", help="run a parameter grid (lists sweep, single values are fixed)")
    # One value per --prompt (repeat it to sweep prompts), so an unquoted prompt is never split into words.
    sw.add_argument("--prompt", action="append", default=None)
    sw.add_argument(
        "--resume",
        metavar="SWEEP_ID",
        default=None,
        help="reopen a sweep by id (printed when it starts; also `rodin-nb log`) and continue it: "
        "finished and running runs are re-attached, the rest submitted",
    )
    sw.add_argument("--seed", type=int, nargs="*", default=None)
    sw.add_argument("--tier", nargs="*", default=None)
    sw.add_argument("--quality", nargs="*", default=None)
    sw.add_argument("--material", nargs="*", default=None)
    sw.add_argument("--budget", type=float, default=None, help="refuse to start past this many credits")
    sw.add_argument("--concurrency", type=int, default=None, help="cap on jobs in flight")
    add_connection(sw)
    sw.set_defaults(func=_cmd_sweep)

    lg = sub.add_parser("log", help="print the run log of a workspace (no credentials needed)")
    lg.add_argument("--workspace", default=None, help="default: $RODIN_NB_HOME or ./rodin_runs")
    lg.add_argument("--format", choices=["table", "csv", "json"], default="table")
    lg.add_argument("--sweeps", action="store_true", help="list the sweeps (ids for sweep --resume)")
    lg.set_defaults(func=_cmd_log)

    rs = sub.add_parser("resume", help="re-attach to unfinished runs of a workspace and wait for them")
    add_connection(rs)
    rs.set_defaults(func=_cmd_resume)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except RodinError as exc:
        _err(f"rodin-nb: {exc}")
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
