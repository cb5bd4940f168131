"""Shared fixtures: a scrubbed environment, a fast sandbox over real loopback HTTP, a client on it."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import rodin_nb as rn
from rodin_nb.sandbox import SandboxServer, serve

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "glb"  # copies of ../shared/fixtures/glb
REPO = Path(__file__).resolve().parents[1]

# Kernels and subprocesses the tests start import the rodin_nb under test (this checkout), never another
# copy an editable install happens to point at.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO), *(part for part in os.environ.get("PYTHONPATH", "").split(os.pathsep) if part)]
)


# --------------------------------------------------------------------------- killable workers

IN_WORKER = "RODIN_NB_TEST_WORKER"
WORKER_MEMORY = 4 * 1024**3  # address space: a runaway allocation fails the test, not the machine
WORKER_TIMEOUT_S = int(os.environ.get("RODIN_NB_WORKER_TIMEOUT", "300"))  # a hang fails the test


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A worker test's own timeout is the worker's, so the run-wide pytest timeout must not come first."""
    for item in items:
        if item.get_closest_marker("worker") is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(WORKER_TIMEOUT_S + 60))


def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run a ``@pytest.mark.worker`` test in its own pytest process, memory-capped and killed on a hang.

    For fuzz tests: a crash, a blow-up or a hang in the code under test then fails that one test with its
    output, instead of taking the test runner (or the machine) with it.
    """
    if pyfuncitem.get_closest_marker("worker") is None or os.environ.get(IN_WORKER):
        return None
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", pyfuncitem.nodeid]
    try:
        proc = subprocess.run(
            command,
            cwd=REPO,
            env={**os.environ, IN_WORKER: "1"},
            preexec_fn=_cap_memory,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the worker hung (killed after {WORKER_TIMEOUT_S} s):\n{exc.stdout or ''}")
    if proc.returncode != 0:
        how = f"died of signal {-proc.returncode}" if proc.returncode < 0 else f"exited {proc.returncode}"
        pytest.fail(f"the worker {how}:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}", pytrace=False)
    if " passed" not in proc.stdout or " skipped" in proc.stdout:
        pytest.skip(f"the worker did not run the test:\n{proc.stdout[-2000:]}")
    print(proc.stdout[-2000:])
    return True


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may see a developer's real credentials or write into the repository."""
    for name in (
        "SCENARIO_SDK_API_KEY",
        "SCENARIO_SDK_API_SECRET",
        "SCENARIO_SDK_JWT",
        "SCENARIO_BASE_URL",
        "SCENARIO_CUSTOM_HEADERS",
        "RODIN_NB_HOME",
        "RODIN_NB_SANDBOX_SPEED",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with serve(job_seconds=0.4, parallel_jobs=4) as server:
        yield server


def make_client(server: SandboxServer, workspace: Path, **kwargs: object) -> rn.Client:
    options: dict = {"workspace": workspace, "quiet": True, **kwargs}
    options.setdefault("retry", rn.RetryPolicy(max_retries=6, backoff_base_s=0.02, backoff_cap_s=0.2))
    return rn.connect(base_url=server.url, **options)


@pytest.fixture
def client(sandbox: SandboxServer, tmp_path: Path) -> Iterator[rn.Client]:
    with make_client(sandbox, tmp_path / "ws") as c:
        yield c
