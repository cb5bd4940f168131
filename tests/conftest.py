"""Shared fixtures: a scrubbed environment, a fast sandbox over real loopback HTTP, a client on it."""

from __future__ import annotations

import os
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
