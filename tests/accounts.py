"""The pay-once accounting shared by the proofs that run many jobs (chaos, crash and resume).

``check_accounts`` holds a run log to what the service says it created: every job known to exactly one
row, at most one paid row per request, every row terminal with a reason when not a success, and every
success's files on disk with the sha256 the row records.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from rodin_nb.status import TERMINAL


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else json.loads(value or "[]")


def check_accounts(workspace: Path, rows: list[dict[str, Any]], jobs_created: int) -> int:
    """Assert the accounts of ``rows`` (a run log's rows) against the service's ``jobs_created``.

    Returns the number of files whose sha256 was checked.
    """
    with_job = [row for row in rows if row.get("job_id")]
    job_ids = [row["job_id"] for row in with_job]
    assert len(set(job_ids)) == len(job_ids), "a job attached to two rows"
    assert jobs_created == len(job_ids), (jobs_created, len(job_ids), Counter(r["status"] for r in rows))
    paid = Counter(row["params_hash"] for row in with_job)
    assert not paid or max(paid.values()) == 1, "a request paid twice"
    for row in rows:
        assert row["status"] in TERMINAL, row
        if row["status"] != "success":
            assert row["error"], row
        if not row.get("job_id"):
            assert row["status"] in ("not-submitted", "lost"), row
    checked = mismatches = 0
    for row in rows:
        if row["status"] != "success":
            continue
        files, shas = _listed(row["files"]), _listed(row["sha256"])
        assert files and len(files) == len(shas), row
        for name, sha in zip(files, shas, strict=True):
            path = Path(name)
            if not path.is_absolute():
                path = workspace / path
            checked += 1
            if hashlib.sha256(path.read_bytes()).hexdigest() != sha:
                mismatches += 1
    assert mismatches == 0
    return checked
