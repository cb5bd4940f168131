"""Chaos: one sweep of 48 runs with every sandbox fault knob on at once, then the same sweep reopened.

What is asserted, and why it is the pay-once promise (issue 12, "The proof, in the suite"):

- **Every job the service created is known to exactly one row.** ``jobs_created`` (the sandbox's own
  count, i.e. what would be billed) equals the number of distinct ``job_id`` values in the run log, and
  that equals the number of rows holding a ``job_id`` (no job attached to two rows). A dropped or timed
  out create that did create a job was therefore found again (re-attached), never created a second time
  and never left orphaned (paid for, unknown to the user).
- **No request is paid twice**: at most one row with a job per ``params_hash``. A request may have
  several rows only when the earlier ones ended without a job (``not-submitted``: the service said it
  failed and its job list showed no such job; or ``lost`` without a job id) and the user re-ran it.
- **Every row is accounted for**: rows = runs planned + re-attempts, the re-attempts being exactly the
  requests whose first row ended without a job (``not-submitted``/``lost``), planned again when the sweep
  is reopened and run a second time (the user's "generate again"); the first pass alone writes one row
  per planned run.
- **Every run ends**, in a terminal status, and every one that did not succeed says why (``error``).
- **Never lose a result**: every ``success`` row has its files on disk with the sha256 it records,
  although many first download URLs had already expired (the CDN's 403 "Request has expired" answers are
  counted and must be met): the client asked the API for a fresh URL each time.
- **Nothing escapes** ``sweep.run()``: it returns its frame, whatever the faults.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import rodin_nb as rn
from rodin_nb.sandbox import serve

from .accounts import check_accounts

pytestmark = pytest.mark.proof  # long: CI runs it once, on Python 3.11 (.ci/run)

RUNS = 48
FAULTS: dict[str, Any] = {
    "latency_s": 0.01,
    "error_rate": 0.1,  # 5xx on every /v1 route (generate included: before any job is created)
    "create_error_rate": 0.1,  # 5xx to generate calls only, nothing created: may end not-submitted
    "rate_limit_per_s": 20,  # 429s with Retry-After
    "fail_rate": 0.1,  # jobs that fail on the service
    "drop_after_create_rate": 0.1,  # the job is created, the answer never arrives
    "slow_create_s": 1.3,  # every create answers after the client's 1 s read timeout
    "url_ttl_s": 0.05,  # signed URLs die at the next whole second boundary
    "stale_url_rate": 0.5,  # half the assets' first URLs are handed out already expired
    "seed": 12,
}


def rows_of(client: rn.Client) -> list[dict[str, Any]]:
    return client.log.rows("1=1", ())


def test_chaos_sweep_pays_once_and_accounts_for_every_run(tmp_path: Path) -> None:
    retry = rn.RetryPolicy(max_retries=6, backoff_base_s=0.02, backoff_cap_s=0.2)
    with (
        serve(speed=400, parallel_jobs=8, faults=FAULTS) as sb,
        rn.connect(base_url=sb.url, workspace=tmp_path, quiet=True, timeout=(2, 1), retry=retry) as client,
    ):
        sweep = client.sweep(
            prompt=["a chair", "a mug", "a lamp"],
            seed=list(range(RUNS // 3)),
            quality="extra-low",
            concurrency=8,
        )
        assert len(sweep.requests) == RUNS
        df = sweep.run(progress=False)  # nothing escapes: a fault is a row's status, never an exception
        assert len(df) == RUNS
        first = rows_of(client)
        assert len(first) == RUNS  # one row per planned run (re-POSTs after a 5xx reuse their row)
        check_accounts(client.workspace, first, sb.stats()["jobs_created"])
        without_job = {row["params_hash"] for row in first if not row.get("job_id")}

        reattached = sum(1 for run in sweep.runs if run.reattached)
        expired_met = sb.stats()["file_refusals"].get("expired", 0)
        assert expired_met > 0  # URLs really expired before their first download...
        assert sum(row["status"] == "success" for row in first) > 0  # ...and results still arrived
        again = client.sweep_by_id(sweep.sweep_id)
        again.run(progress=False)
        rows = rows_of(client)
        stats = sb.stats()
        assert len(rows) == RUNS + len(without_job)  # planned runs + the re-attempts, nothing else
        check_accounts(client.workspace, rows, stats["jobs_created"])

    statuses = Counter(row["status"] for row in rows)
    print(
        f"\nchaos: {RUNS} runs planned, {len(rows)} rows, {stats['jobs_created']} jobs created, "
        f"statuses {dict(statuses)}, faults {stats['faults_injected']}, "
        f"reattached (first pass) {reattached}, re-attempted {len(without_job)}, "
        f"API requests {sum(stats['requests'].values())}, file requests {stats['file_requests']} "
        f"for {stats['downloads']} downloads, CDN refusals {stats['file_refusals']} "
        f"(first pass: {expired_met} expired), "
        f"asset reads {stats['requests'].get('GET /v1/assets/{assetId}')}, "
        f"client calls {client.transport.counters}, "
        f"429s seen by the client {client.transport.gate.refusals}"
    )
    assert stats["faults_injected"].get("drop_after_create", 0) > 0
    assert stats["faults_injected"].get("slow_create", 0) > 0
    assert stats["faults_injected"].get("fail", 0) > 0 and statuses["failure"] > 0
    assert stats["faults_injected"].get("error", 0) > 0
    # Not asserted: 429s. The limit is a rate in wall-clock time, so whether this run's requests ever
    # outpace it depends on the machine's speed (the seeded faults above do not); the 429 path is proven
    # on its own by tests/test_faults.py.
    # Every file request the CDN refused was an expired URL (never a bad signature: the client does not
    # tamper with URLs), and each was followed by a fresh URL that downloaded.
    assert set(stats["file_refusals"]) <= {"expired"}, stats["file_refusals"]
    assert stats["file_requests"] == stats["downloads"] + stats["file_refusals"].get("expired", 0)
