"""rodin_nb's embedded sandbox: Scenario's wire protocol for Rodin Gen-1, served on loopback.

A real HTTP service (not a mock) so that the client, the official ``scenario-sdk`` and plain
``requests`` all exercise their actual networking code against it: jobs walk the real status
sequence on a simulated clock, results are deterministic procedural GLB meshes behind signed,
expiring URLs on a second origin, and faults (latency, 5xx, 429, failed jobs, lost answers, short URL
lifetimes) can be switched on for tests and demos. State lives in memory, or with ``state_dir`` in a
SQLite file shared by every sandbox on that folder and kept across restarts.

Modules, one job each: :mod:`.server` (the two listeners and :func:`serve`), :mod:`.api` (``/v1``
routes), :mod:`.cdn` (signed file URLs), :mod:`.state` (jobs, assets, simulated time),
:mod:`.persist` (the state file), :mod:`.validate` (server-side input checks), :mod:`.faults`,
:mod:`.meshgen` (GLB and preview), :mod:`.objects` (the prompt nouns' procedural objects),
:mod:`.parts` (their parametric parts, meshing and tangents), :mod:`.artifacts` (cache of generated
bytes), :mod:`.model` (the bundled schema), :mod:`.wire` (HTTP/1.1 plumbing).

Example
-------
>>> from rodin_nb import sandbox
>>> with sandbox.serve(job_seconds=1) as sb:  # doctest: +SKIP
...     sb.url
'http://127.0.0.1:54321/v1'
"""

from __future__ import annotations

from .faults import ALLOWED_FAULTS
from .server import SandboxServer, serve

__all__ = ["ALLOWED_FAULTS", "SandboxServer", "serve"]
