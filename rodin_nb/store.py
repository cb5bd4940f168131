"""A content-addressed file store in the workspace, and the result downloader that fills it.

Files live at ``<workspace>/assets/<sha256[:2]>/<sha256><ext>``: identical results share one file, a
path says what its bytes are, and a half-written file can never be mistaken for a result (writes go to
a temp file in the same folder and are renamed into place only after the hash and format check).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import sqlite3
import struct
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from ._sqlite import open_shared
from .api import ScenarioAPI
from .errors import APIConnectionError, AssetError
from .transport import MAX_RETRY_AFTER_S, RetryPolicy, parse_retry_after

__all__ = ["AssetStore", "Downloader", "StoredFile", "check_format"]

log = logging.getLogger("rodin_nb.store")

CHUNK = 1 << 20
EXTENSIONS = {
    "model/gltf-binary": ".glb",
    "model/glb": ".glb",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "model/obj": ".obj",
    "model/x-fbx": ".fbx",
    "model/vnd.usdz+zip": ".usdz",
    "model/stl": ".stl",
}
# Statuses a signed-URL host answers once the signature has expired (S3: 403 "Request has expired";
# other CDNs use 400/401/410). All of them mean: ask the API for a fresh URL.
EXPIRED_STATUSES = frozenset({400, 401, 403, 404, 410})


@dataclass(frozen=True)
class StoredFile:
    """One downloaded result file."""

    asset_id: str
    role: str  # "model", "preview" or "other"
    path: Path
    sha256: str
    size: int
    mime_type: str


def extension_for(mime_type: str | None, url: str = "") -> str:
    if mime_type and mime_type.lower() in EXTENSIONS:
        return EXTENSIONS[mime_type.lower()]
    suffix = Path(url.split("?", 1)[0]).suffix.lower()
    return suffix if 1 < len(suffix) <= 6 else ".bin"


def check_format(path: Path, ext: str) -> str | None:
    """Why the file is not a well-formed ``ext`` file, or None. Cheap structural checks only."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(12)
        if ext == ".glb":
            if len(head) < 12 or head[:4] != b"glTF":
                return "not a GLB file (no glTF magic)"
            version, length = struct.unpack("<II", head[4:12])
            if version != 2:
                return f"GLB version {version}, expected 2"
            if length != size:
                return f"GLB header says {length} bytes, file has {size} (truncated or padded)"
            return _glb_problem(path, ext)
        elif ext == ".gltf":
            return _glb_problem(path, ext)
        elif ext == ".png":
            if head[:8] != b"\x89PNG\r\n\x1a\n":
                return "not a PNG file"
            handle.seek(max(0, size - 12))
            if b"IEND" not in handle.read(12):
                return "PNG without its end chunk (truncated)"
        elif ext == ".jpg":
            if head[:2] != b"\xff\xd8":
                return "not a JPEG file"
            handle.seek(max(0, size - 2))
            if handle.read(2) != b"\xff\xd9":
                return "JPEG without its end marker (truncated)"
    return None


def _glb_problem(path: Path, ext: str) -> str | None:
    """What :func:`rodin_nb.glbcheck.check_glb` finds wrong with a GLB (structure, limits), or None."""
    from .glbcheck import check_glb
    from .modelfiles import pack_gltf

    try:
        raw = path.read_bytes()
        if ext == ".gltf" and not raw.startswith(b"glTF"):
            raw = pack_gltf(raw, path.parent, path.name)  # with its data: URIs and sibling files
        check_glb(raw, path.name)
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    except AssetError as exc:
        return str(exc).split(": ", 1)[-1]
    return None


class AssetStore:
    """Content-addressed files under ``root``; safe for several processes writing at once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._verified = VerifiedIndex(self.root / "verified.sqlite")

    def path_for(self, sha256: str, ext: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}{ext}"

    def has(self, sha256: str, ext: str) -> Path | None:
        """The stored file if present and intact.

        Its content is hashed only when the file changed since it was last verified (size, mtime or
        ctime differ), so checking a workspace of many results after a restart costs a ``stat`` each.
        """
        path = self.path_for(sha256, ext)
        stamp = _stamp(path)
        if stamp is None:
            return None
        signature, settled = stamp
        if self._verified.get(path.name) == signature:
            return path
        if _sha256_file(path) != sha256:
            return None
        if settled:
            self._verified.put(path.name, signature)
        return path

    def close(self) -> None:
        self._verified.close()

    def put_stream(
        self,
        chunks: Iterable[bytes],
        ext: str,
        *,
        expected_size: int | None = None,
        expected_sha256: str | None = None,
    ) -> tuple[Path, str, int]:
        """Write chunks to a temp file, verify, then rename into place. Returns (path, sha256, size)."""
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, suffix=ext + ".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            sha = digest.hexdigest()
            if expected_size is not None and size != expected_size:
                raise AssetError(f"download incomplete: {size} of {expected_size} bytes")
            if expected_sha256 is not None and sha != expected_sha256:
                raise AssetError(
                    f"download corrupt: sha256 {sha[:12]}... differs from the server's "
                    f"{expected_sha256[:12]}..."
                )
            problem = check_format(tmp, ext)
            if problem:
                raise AssetError(f"download corrupt: {problem}")
            final = self.path_for(sha, ext)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)  # atomic on one file system; identical content makes races harmless
            return final, sha, size
        finally:
            tmp.unlink(missing_ok=True)


# A file changed less than this long ago is hashed again on its next check rather than trusted by its
# stat signature: file-system clocks are coarse (a few ms), so a same-size write within one tick of the
# check would otherwise go unnoticed (the "racy clean" case git handles the same way).
SETTLE_NS = 2_000_000_000


def _stamp(path: Path) -> tuple[str, bool] | None:
    """A file's stat signature (what changes whenever its bytes do) and whether it is old enough to trust.

    ``ctime`` is included because a user can set ``mtime`` back, but not ``ctime``.
    """
    try:
        st = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    signature = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
    newest = max(st.st_mtime_ns, st.st_ctime_ns)
    return signature, time.time_ns() - newest > SETTLE_NS


class VerifiedIndex:
    """Which stored files were hashed and found intact, keyed by file name, with their stat signature.

    A cache shared by every process using the workspace: losing it (deleted, corrupt, locked) only means
    hashing again, so every failure falls back to an in-memory map instead of raising.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._memory: dict[str, str] = {}
        self._conn: sqlite3.Connection | None = None
        self._broken = False
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection | None:
        if self._conn is None and not self._broken:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = open_shared(self.path, busy_timeout_s=5.0)
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS verified (name TEXT PRIMARY KEY, signature TEXT NOT NULL)"
                )
                self._conn = conn
            except (sqlite3.Error, OSError) as exc:
                log.info("verified-file index %s unusable (%s); hashing files instead", self.path, exc)
                self._broken = True
        return self._conn

    def get(self, name: str) -> str | None:
        with self._lock:
            if name in self._memory:
                return self._memory[name]
            db = self._db()
            if db is None:
                return None
            try:
                row = db.execute("SELECT signature FROM verified WHERE name=?", (name,)).fetchone()
            except sqlite3.Error:
                return None
            return str(row[0]) if row else None

    def put(self, name: str, signature: str) -> None:
        with self._lock:
            self._memory[name] = signature
            db = self._db()
            if db is None:
                return
            try:
                db.execute(
                    "INSERT OR REPLACE INTO verified (name, signature) VALUES (?, ?)", (name, signature)
                )
            except sqlite3.Error as exc:
                log.info("could not record a verified file (%s)", exc)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _server_sha256(headers: Mapping[str, str]) -> str | None:
    """The checksum a signed-URL host sends, if any (S3's ``x-amz-checksum-sha256`` is base64)."""
    value = headers.get("x-amz-checksum-sha256")
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return None


class Downloader:
    """Fetches assets into an :class:`AssetStore`, surviving expired URLs, drops and corrupt bytes."""

    def __init__(
        self, api: ScenarioAPI, store: AssetStore, *, retry: RetryPolicy | None = None, attempts: int = 5
    ) -> None:
        self.api = api
        self.store = store
        self.retry = retry or RetryPolicy()
        self.attempts = attempts

    def fetch(
        self, asset_id: str, *, role: str = "other", asset: Mapping[str, Any] | None = None
    ) -> StoredFile:
        """Download one asset and return the stored file; raise AssetError after ``attempts`` tries.

        A 429 from the file host uses up no attempt: it is waited out (``Retry-After``, or backoff) for
        up to ``retry.rate_limit_patience_s``, like the API's own 429s.
        """
        info = dict(asset) if asset else self.api.get_asset(asset_id)
        last_problem = "no attempt made"
        attempt = 0
        limited = 0
        limited_since: float | None = None
        while attempt < self.attempts:
            url = info.get("url")
            if not url:
                raise AssetError(f"asset {asset_id} has no download URL (status {info.get('status')!r})")
            mime = str(info.get("mimeType") or "")
            ext = extension_for(mime, url)
            try:
                response = self.api.transport.get_external(url)
            except APIConnectionError as exc:
                last_problem = self.api.transport.redact(str(exc))
                time.sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            with response:
                if response.status_code == 429:
                    now = time.monotonic()
                    limited_since = now if limited_since is None else limited_since
                    waited = now - limited_since
                    if waited >= self.retry.rate_limit_patience_s:
                        raise AssetError(
                            f"could not download asset {asset_id}: the file host still answers HTTP 429 "
                            f"after {waited:.0f} s of waiting "
                            f"(RetryPolicy.rate_limit_patience_s={self.retry.rate_limit_patience_s:g})"
                        )
                    asked = parse_retry_after(response.headers)
                    time.sleep(self.retry.delay(limited) if asked is None else min(asked, MAX_RETRY_AFTER_S))
                    limited += 1
                    continue
                attempt += 1
                if response.status_code in EXPIRED_STATUSES:
                    # The signed URL expired (or was never valid): only a fresh one from the API helps.
                    last_problem = f"signed URL refused with HTTP {response.status_code} (expired?)"
                    log.info("asset %s: %s; fetching a fresh URL", asset_id, last_problem)
                    info = self.api.get_asset(asset_id)
                    continue
                if response.status_code >= 400:
                    last_problem = f"HTTP {response.status_code} from the file host"
                    asked = parse_retry_after(response.headers)
                    wait = self.retry.delay(attempt - 1) if asked is None else min(asked, MAX_RETRY_AFTER_S)
                    time.sleep(wait)
                    continue
                length = response.headers.get("content-length")
                try:
                    path, sha, size = self.store.put_stream(
                        response.iter_content(CHUNK),
                        ext,
                        expected_size=int(length) if length and length.isdigit() else None,
                        expected_sha256=_server_sha256(response.headers),
                    )
                except (AssetError, requests.RequestException) as exc:
                    last_problem = self.api.transport.redact(str(exc))
                    log.info("asset %s: %s; retrying", asset_id, last_problem)
                    time.sleep(self.retry.delay(attempt - 1))
                    continue
            return StoredFile(asset_id=asset_id, role=role, path=path, sha256=sha, size=size, mime_type=mime)
        raise AssetError(
            f"could not download asset {asset_id} after {self.attempts} attempts: {last_problem}"
        )
