"""Generated file bytes, made once per request key and kept in a bounded cache.

Generation is deterministic, so the cache is only an optimisation: an evicted result is simply made
again, byte-identical. A per-key lock makes concurrent first fetches (the asset read and the download
racing each other) wait for one generation instead of doing the work twice.
"""

from __future__ import annotations

import json
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..rules import canonical_json
from . import meshgen

__all__ = ["ArtifactCache", "glb_properties"]


class ArtifactCache:
    """LRU of ``(kind, key) -> bytes`` bounded by total size."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self._max = max_bytes
        self._items: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}

    def _get(self, k: tuple[str, str], make: Callable[[], bytes]) -> bytes:
        with self._lock:
            if k in self._items:
                self._items.move_to_end(k)
                return self._items[k]
            key_lock = self._key_locks.setdefault(k, threading.Lock())
        with key_lock:
            with self._lock:
                if k in self._items:
                    return self._items[k]
            data = make()
            with self._lock:
                self._items[k] = data
                self._size += len(data)
                while self._size > self._max and len(self._items) > 1:
                    _, old = self._items.popitem(last=False)
                    self._size -= len(old)
                self._key_locks.pop(k, None)
            return data

    def glb(self, params: dict[str, Any]) -> bytes:
        return self._get(("glb", canonical_json(params)), lambda: meshgen.make_glb(params))

    def preview(self, params: dict[str, Any]) -> bytes:
        return self._get(("preview", canonical_json(params)), lambda: meshgen.make_preview(self.glb(params)))


def glb_properties(glb: bytes) -> dict[str, Any]:
    """``asset.properties`` of a GLB, read from its JSON chunk (no mesh decoding needed)."""
    (json_len,) = struct.unpack_from("<I", glb, 12)
    doc = json.loads(glb[20 : 20 + json_len])
    vertices = 0
    triangles = 0
    has_uv = has_normals = True
    for mesh in doc.get("meshes", []):
        for prim in mesh.get("primitives", []):
            attrs = prim.get("attributes", {})
            count = doc["accessors"][attrs["POSITION"]]["count"]
            vertices += count
            idx = prim.get("indices")
            triangles += (doc["accessors"][idx]["count"] if idx is not None else count) // 3
            has_uv = has_uv and "TEXCOORD_0" in attrs
            has_normals = has_normals and "NORMAL" in attrs
    lo = doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]].get("min")
    hi = doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]].get("max")
    props: dict[str, Any] = {
        "size": len(glb),
        "format": "glb",
        "faceCount": triangles,
        "vertexCount": vertices,
        "hasUVs": has_uv,
        "hasNormals": has_normals,
        "hasSkeleton": False,
        "hasAnimations": False,
    }
    if lo and hi:
        props["dimensions"] = [round(b - a, 6) for a, b in zip(lo, hi, strict=True)]
    return props
