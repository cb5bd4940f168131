"""A 3D file on disk -> the checked bytes that get loaded (the one door before trimesh, VTK or WebGL).

- a GLB (by suffix or by its ``glTF`` magic, whatever the name) is checked as it is
  (:func:`rodin_nb.glbcheck.check_glb`);
- a ``.gltf`` is packed into one GLB in memory (:func:`pack_gltf`: its buffers and images from
  ``data:`` URIs or files in its own folder only) and that GLB is checked and returned, so what was
  checked is what gets loaded;
- other formats trimesh reads are bounded before it reads them (:func:`check_other_format`: the file's
  size, and the face count OBJ, STL and PLY declare).
"""

from __future__ import annotations

import json
import re
import struct
import urllib.parse
from pathlib import Path
from typing import Any

from .errors import AssetError
from .glbcheck import (
    MAX_DRAWN_TRIANGLES,
    MAX_DRAWN_VERTICES,
    _Bad,
    _data_uri,
    _int,
    _list,
    _parse_json,
    _ref,
    check_glb,
)

__all__ = [
    "MAX_GLTF_RESOURCE_BYTES",
    "MAX_GLTF_TEXT_BYTES",
    "MAX_OTHER_FORMAT_BYTES",
    "check_other_format",
    "pack_gltf",
    "read_checked",
]

#: A ``.gltf``'s buffers and images together (``data:`` URIs or files in its folder), in bytes (1 GiB).
MAX_GLTF_RESOURCE_BYTES = 1024 * 1024 * 1024
#: A ``.gltf`` file itself (its JSON, ``data:`` URIs included), in bytes (256 MiB).
MAX_GLTF_TEXT_BYTES = 256 * 1024 * 1024
#: A 3D file in another format trimesh reads (OBJ, STL, PLY, ...), in bytes (256 MiB); OBJ, STL and
#: PLY files also declare or list at most :data:`MAX_DRAWN_TRIANGLES` faces.
MAX_OTHER_FORMAT_BYTES = 256 * 1024 * 1024


def read_checked(path: Path, name: str | None = None) -> bytes | None:
    """The checked GLB bytes to load for the file at ``path``, or None when it is not glTF.

    A GLB (by suffix or magic) is checked as it is; a ``.gltf`` is packed into one GLB in memory
    (:func:`pack_gltf`) and that GLB is checked and returned, so what was checked is what gets loaded.
    Any other file gives None: the caller bounds it another way.
    """
    path = Path(path)
    label = name or str(path)
    suffix = path.suffix.lower()
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
            if magic != b"glTF" and suffix not in (".glb", ".gltf"):
                return None
            if suffix == ".gltf" and magic != b"glTF":
                size = path.stat().st_size
                if size > MAX_GLTF_TEXT_BYTES:
                    raise AssetError(
                        f"cannot read 3D file {label}: {size:,}-byte .gltf (limit {MAX_GLTF_TEXT_BYTES:,})"
                    )
            handle.seek(0)
            raw = handle.read()
    except OSError as exc:
        raise AssetError(f"cannot read 3D file {label}: {exc.strerror or exc}") from exc
    if suffix == ".gltf" and magic != b"glTF":
        raw = pack_gltf(raw, path.parent, label)
    check_glb(raw, label)
    return raw


def check_other_format(path: Path, name: str | None = None) -> None:
    """Bound a non-glTF 3D file before trimesh reads it: its size, and its face count for OBJ, STL, PLY.

    Raises :class:`AssetError` naming the file and the limit.
    """
    path = Path(path)
    label = name or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_OTHER_FORMAT_BYTES:
            raise _Bad(f"{size:,}-byte file (limit {MAX_OTHER_FORMAT_BYTES:,} for formats other than glTF)")
        suffix = path.suffix.lower()
        if suffix not in (".obj", ".stl", ".ply"):
            return
        raw = path.read_bytes()
        faces = _declared_faces(raw, suffix, size)
        if faces > MAX_DRAWN_TRIANGLES:
            raise _Bad(f"{faces:,} faces; limit {MAX_DRAWN_TRIANGLES:,}")
    except OSError as exc:
        raise AssetError(f"cannot read 3D file {label}: {exc.strerror or exc}") from exc
    except _Bad as exc:
        raise AssetError(f"cannot read 3D file {label}: {exc}") from None


def _declared_faces(raw: bytes, suffix: str, size: int) -> int:
    if suffix == ".obj":
        return raw.count(b"\nf ") + raw.startswith(b"f ")
    if suffix == ".stl":
        if raw[:5].lower() == b"solid" and b"facet" in raw[:1024]:
            return raw.count(b"facet normal")
        if size < 84:
            raise _Bad("truncated binary STL")
        (count,) = struct.unpack_from("<I", raw, 80)
        if 84 + 50 * count > size:
            raise _Bad(f"binary STL declares {count:,} triangles but has {size:,} bytes")
        return int(count)
    # PLY: the header's "element face N" (and vertices within three per allowed triangle)
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise _Bad("not a PLY file (no ply header)")
    faces = 0
    for line in raw[:end].split(b"\n"):
        words = line.split()
        if len(words) == 3 and words[0] == b"element" and words[2].isdigit():
            if words[1] == b"face":
                faces = int(words[2])
            elif words[1] == b"vertex" and int(words[2]) > MAX_DRAWN_VERTICES:
                raise _Bad(f"{int(words[2]):,} vertices; limit {MAX_DRAWN_VERTICES:,}")
    return faces


def pack_gltf(text: bytes, folder: Path | None, name: str = "<glTF>") -> bytes:
    """One GLB holding a ``.gltf`` (JSON) and its buffers and images, with one BIN chunk.

    Buffers and images come from ``data:`` URIs or from files inside ``folder`` (relative paths only:
    absolute paths, ``..``, URLs and anything resolving outside ``folder`` are refused; with ``folder``
    None only ``data:`` URIs are read). Buffer views are rebased onto the one buffer. The result still
    needs :func:`check_glb`. Raises :class:`AssetError` naming ``name``.
    """
    try:
        return _pack(text, folder)
    except _Bad as exc:
        raise AssetError(f"cannot read 3D file {name}: {exc}") from None
    except (RecursionError, MemoryError, OverflowError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise AssetError(
            f"cannot read 3D file {name}: malformed glTF ({type(exc).__name__}: {exc})"
        ) from None


def _pack(text: bytes, folder: Path | None) -> bytes:
    if len(text) > MAX_GLTF_TEXT_BYTES:
        raise _Bad(f"{len(text):,}-byte .gltf (limit {MAX_GLTF_TEXT_BYTES:,})")
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    doc = _parse_json(text)
    buffers = _list(doc, "buffers")
    views = _list(doc, "bufferViews")
    images = _list(doc, "images")
    blob = bytearray()
    total = 0

    def append(data: bytes) -> int:
        nonlocal total
        total += len(data)
        if total > MAX_GLTF_RESOURCE_BYTES:
            raise _Bad(f"buffers and images of {total:,} bytes (limit {MAX_GLTF_RESOURCE_BYTES:,})")
        blob.extend(b"\0" * (-len(blob) % 16))
        start = len(blob)
        blob.extend(data)
        return start

    starts = []
    for i, buffer in enumerate(buffers):
        where = f"buffers[{i}]"
        length = _int(buffer, "byteLength", where, low=1)
        data = _resource(buffer.get("uri"), folder, where, length)
        if len(data) < length:
            raise _Bad(f"{where}.byteLength = {length} but only {len(data)} bytes are present")
        starts.append(append(data[:length]))
    for i, view in enumerate(views):
        where = f"bufferViews[{i}]"
        index = _ref(view, "buffer", where, buffers, "buffers")
        if index is None:
            raise _Bad(f"{where} has no buffer")
        view["buffer"] = 0
        view["byteOffset"] = _int(view, "byteOffset", where, 0) + starts[index]
    for i, image in enumerate(images):
        where = f"images[{i}]"
        if "uri" not in image:
            continue
        data = _resource(image["uri"], folder, where, None)
        views.append({"buffer": 0, "byteOffset": append(data), "byteLength": max(len(data), 1)})
        if not data:
            raise _Bad(f"{where} is empty")
        del image["uri"]
        image["bufferView"] = len(views) - 1
        image.setdefault("mimeType", _MIME.get(data[:2], "image/png"))
    blob.extend(b"\0" * (-len(blob) % 4))
    if views:
        doc["bufferViews"] = views
    if buffers or blob:
        doc["buffers"] = [{"byteLength": max(len(blob), 4)}]
        if not blob:
            blob.extend(b"\0" * 4)
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<I4s", len(text), b"JSON") + text
    if blob:
        body += struct.pack("<I4s", len(blob), b"BIN\0") + bytes(blob)
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


_MIME = {b"\x89P": "image/png", b"\xff\xd8": "image/jpeg", b"RI": "image/webp", b"GI": "image/gif"}


def _resource(uri: Any, folder: Path | None, where: str, length: int | None) -> bytes:
    """Bytes of a buffer's or image's ``uri``: a ``data:`` URI or a file inside ``folder``."""
    if not isinstance(uri, str) or not uri:
        raise _Bad(f"{where} has no uri (a .gltf keeps its data in data: URIs or files beside it)")
    if uri.startswith("data:"):
        return _data_uri(uri, where) or b""
    shown = uri[:80]
    relative = urllib.parse.unquote(uri)
    if (
        folder is None
        or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", relative)  # http:, file:, C: ...
        or relative.startswith(("/", "\\"))
        or ".." in re.split(r"[/\\]", relative)
        or "\0" in relative
    ):
        raise _Bad(f"{where} refers to {shown!r}; only data: URIs and files in the same folder are read")
    base = folder.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise _Bad(f"{where} refers to {shown!r}, outside the file's folder")
    if not target.is_file():
        raise _Bad(f"{where} refers to {shown!r}, which is missing")
    size = target.stat().st_size
    if size > MAX_GLTF_RESOURCE_BYTES:
        raise _Bad(f"{where} refers to a {size:,}-byte file (limit {MAX_GLTF_RESOURCE_BYTES:,})")
    with target.open("rb") as handle:
        return handle.read(length if length is not None else size)
