"""A persistent worker process for VTK rendering, so a native crash cannot take the caller down.

The parent (:class:`RenderWorker`) starts ``python -m rodin_nb._renderproc`` once and sends it one
request at a time over its stdin/stdout: a length-prefixed pickle ``(op, args)`` each way. The child
limits its own address space (``RLIMIT_AS``, :data:`MEMORY_LIMIT_MB`) before importing VTK and keeps
one off-screen GL window between requests (compiled shaders survive, as they did on the old preview
thread). A request that takes longer than its timeout gets the child killed; a child that dies
(SIGSEGV, SIGABRT, out of memory) is reported as :class:`~rodin_nb.errors.AssetError` and a fresh one
is started for the next request.
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import AssetError

#: Address-space limit of the worker (MiB); ``$RODIN_NB_PREVIEW_MEMORY_MB`` overrides it.
MEMORY_LIMIT_MB = 4096
#: Seconds one render may take; ``$RODIN_NB_PREVIEW_TIMEOUT`` overrides it.
RENDER_TIMEOUT_S = 60.0

_HEADER = struct.Struct("<Q")


class WorkerDied(Exception):
    """The worker crashed or was killed; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def memory_limit_mb() -> int:
    return int(os.environ.get("RODIN_NB_PREVIEW_MEMORY_MB") or MEMORY_LIMIT_MB)


def render_timeout_s() -> float:
    return float(os.environ.get("RODIN_NB_PREVIEW_TIMEOUT") or RENDER_TIMEOUT_S)


class RenderWorker:
    """The parent's handle on the worker: started on first use, restarted after a crash."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid_owner = os.getpid()
        self.started = 0  # how many workers this process has started (tests read it)

    def call(self, op: str, *args: Any, timeout: float | None = None) -> Any:
        """Run ``op`` in the worker; its result, or its exception re-raised; WorkerDied on crash/timeout."""
        limit = render_timeout_s() if timeout is None else timeout
        with self._lock:
            proc = self._ensure()
            assert proc.stdin is not None and proc.stdout is not None
            payload = pickle.dumps((op, args), protocol=pickle.HIGHEST_PROTOCOL)
            deadline = time.monotonic() + limit
            try:
                proc.stdin.write(_HEADER.pack(len(payload)) + payload)
                proc.stdin.flush()
                (length,) = _HEADER.unpack(_read(proc, _HEADER.size, deadline))
                status, value = pickle.loads(_read(proc, length, deadline))
            except TimeoutError:
                self._kill()
                raise WorkerDied(f"took longer than {limit:g} s and was stopped") from None
            except (BrokenPipeError, EOFError, OSError):
                raise WorkerDied(self._death()) from None
        if status == "ok":
            return value
        kind, message = value
        if kind == "AssetError":
            raise AssetError(message)
        raise RuntimeError(f"{kind}: {message}")

    def close(self) -> None:
        with self._lock:
            self._kill()

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and (self._pid_owner != os.getpid() or self._proc.poll() is not None):
            self._proc = None  # forked child of the owner, or a worker that died between calls
        if self._proc is None:
            env = dict(os.environ)
            env["RODIN_NB_PREVIEW_MEMORY_MB"] = str(memory_limit_mb())
            home = str(Path(__file__).resolve().parents[1])  # this rodin_nb, whatever sys.path says
            env["PYTHONPATH"] = os.pathsep.join(p for p in (home, env.get("PYTHONPATH", "")) if p)
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "rodin_nb._renderproc"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
            self._pid_owner = os.getpid()
            self.started += 1
        return self._proc

    def _death(self) -> str:
        proc, self._proc = self._proc, None
        if proc is None:
            return "stopped"
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            if name == "SIGKILL":
                return "was killed (SIGKILL: out of memory?)"
            return f"crashed ({name})"
        if code == 3:
            return f"ran out of memory (limit {memory_limit_mb()} MB)"
        return f"exited with status {code}"

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


def _read(proc: subprocess.Popen[bytes], n: int, deadline: float) -> bytes:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    chunks: list[bytes] = []
    got = 0
    while got < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            raise TimeoutError
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


WORKER = RenderWorker()
atexit.register(WORKER.close)


# --------------------------------------------------------------------------- the child


def _serve() -> None:
    """Child main loop: read requests from stdin, answer on the original stdout."""
    import resource

    limit = memory_limit_mb() * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(
        resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard)
    )
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol
    source = sys.stdin.buffer
    from . import preview

    ops: dict[str, Callable[..., Any]] = {
        "probe": preview._supports_opengl,
        "render": preview._render_in_worker,
    }
    while True:
        head = source.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return  # the parent is gone
        (length,) = _HEADER.unpack(head)
        op, args = pickle.loads(source.read(length))
        try:
            reply: tuple[str, Any] = ("ok", ops[op](*args))
        except MemoryError:
            os._exit(3)  # state after a failed allocation inside VTK is not trustworthy
        except Exception as exc:
            reply = ("err", (type(exc).__name__, str(exc)))
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_HEADER.pack(len(data)) + data)
        out.flush()


if __name__ == "__main__":
    _serve()
