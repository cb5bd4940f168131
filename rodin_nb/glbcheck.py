"""Structural check of a GLB before any native code (VTK, Pillow's decoders) or trimesh reads it.

A malformed GLB could crash VTK's glTF importer (SIGSEGV, SIGABRT) or make a renderer allocate tens of
gigabytes. :func:`check_glb` reads the container, the JSON chunk and each image header, decodes the
images only once their declared sizes are within the limits, and raises
:class:`~rodin_nb.errors.AssetError` saying what is wrong. Python, numpy and Pillow; a small file is
checked in milliseconds.

What is checked:

- container: magic, version 2, declared length, chunk lengths and types; the JSON chunk is UTF-8, an
  object, at most :data:`MAX_JSON_DEPTH` levels deep and at most :data:`MAX_JSON_BYTES` long;
- buffers (the BIN chunk or ``data:`` URIs; other URIs are refused), buffer views (offset + length in
  their buffer, ``byteStride`` 4..252), accessors (component type and element type known, offset,
  count and stride inside their view, sparse parts too);
- meshes: attribute and index accessors exist, attributes agree on their count, index values are below
  the vertex count (read from the file);
- nodes: children in range, no node with two parents, no cycles; mesh, skin and camera references in
  range;
- images: PNG, JPEG, WebP or GIF; width and height read from the image header first, each side at
  most :data:`MAX_IMAGE_SIDE` and all images together at most :data:`MAX_IMAGE_BYTES` once decoded as
  RGBA; only then is each image decoded once with Pillow (one at a time), so truncated or corrupt pixel
  data is refused here;
- scenes, skins, animations and textures: ``scene`` in range, skin joints and animation targets in
  range, a scene lists a node at most once and never a node that has
  a parent; samplers hold glTF filter and wrap values; textures' ``source`` and ``sampler`` in range; a
  primitive whose material reads ``texCoord`` n has a ``TEXCOORD_n`` attribute;
- work: triangles drawn (every node instance times its mesh's triangles) at most
  :data:`MAX_DRAWN_TRIANGLES`, vertices drawn (points and lines too) at most :data:`MAX_DRAWN_VERTICES`,
  mesh instances at most :data:`MAX_INSTANCES`;
- memory: all accessors decoded (zero-filled ones without a buffer view too; morph targets once per
  primitive using them; their counts must match the primitive's) at most :data:`MAX_ACCESSOR_BYTES`.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import AssetError

__all__ = [
    "MAX_ACCESSOR_BYTES",
    "MAX_DRAWN_TRIANGLES",
    "MAX_DRAWN_VERTICES",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_SIDE",
    "MAX_INSTANCES",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "GlbSummary",
    "check_glb",
]

#: Widest or tallest texture accepted, in pixels.
MAX_IMAGE_SIDE = 8192
#: All textures of a file decoded as RGBA, in bytes (256 MiB).
MAX_IMAGE_BYTES = 256 * 1024 * 1024
#: Triangles drawn: the sum over node instances of their mesh's triangles.
MAX_DRAWN_TRIANGLES = 5_000_000
#: Vertices drawn, points and lines included: the sum over node instances (a mesh no node draws counts
#: once) of each primitive's vertex count or index count, whichever is larger. Three per allowed triangle.
MAX_DRAWN_VERTICES = 3 * MAX_DRAWN_TRIANGLES
#: All accessors decoded (``count`` x element size, with or without a buffer view, sparse or not), plus
#: each morph target a primitive uses, in bytes (512 MiB).
MAX_ACCESSOR_BYTES = 512 * 1024 * 1024
#: Nodes drawing a mesh (each is one draw call in the viewer and the preview renderer).
MAX_INSTANCES = 2_000
#: Nesting of the JSON chunk (arrays and objects).
MAX_JSON_DEPTH = 64
#: Size of the JSON chunk.
MAX_JSON_BYTES = 32 * 1024 * 1024

_COMPONENT_BYTES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
_COMPONENT_DTYPES = {5121: "<u1", 5123: "<u2", 5125: "<u4"}
_TYPE_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: a 40 MB string in 0.2 s


@dataclass(frozen=True)
class GlbSummary:
    """What the check learned on the way: sizes a caller may report."""

    triangles: int  # drawn (instances x mesh triangles)
    vertices: int  # drawn (instances x mesh vertices, points and lines included)
    accessor_bytes: int  # all accessors decoded, plus morph targets per use
    instances: int
    images: tuple[tuple[int, int], ...]


class _Bad(Exception):
    """A problem found; turned into AssetError naming the file."""


def check_glb(data: bytes, name: str = "<GLB bytes>") -> GlbSummary:
    """Check GLB bytes; raise :class:`AssetError` ("cannot read 3D file NAME: WHY") if hostile or broken."""
    try:
        return _check(bytes(data))
    except _Bad as exc:
        raise AssetError(f"cannot read 3D file {name}: {exc}") from None
    except (RecursionError, MemoryError, OverflowError, ValueError, TypeError, KeyError, IndexError) as exc:
        why = f"malformed glTF ({type(exc).__name__}: {exc})"
        raise AssetError(f"cannot read 3D file {name}: {why}") from None


# --------------------------------------------------------------------------- container


def _check(data: bytes) -> GlbSummary:
    if len(data) < 20 or data[:4] != b"glTF":
        raise _Bad("not a binary glTF (GLB) file" if data[:4] != b"glTF" else "truncated GLB header")
    version, total = struct.unpack_from("<II", data, 4)
    if version != 2:
        raise _Bad(f"GLB version {version}, only glTF 2 is supported")
    if total > len(data):
        raise _Bad(f"truncated GLB: header says {total} bytes, got {len(data)}")
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    if json_type != b"JSON":
        raise _Bad("malformed GLB: the first chunk is not JSON")
    if 20 + json_len > total:
        raise _Bad(f"malformed GLB: JSON chunk of {json_len} bytes runs past the file's {total}")
    if json_len > MAX_JSON_BYTES:
        raise _Bad(f"JSON chunk of {json_len:,} bytes (limit {MAX_JSON_BYTES:,})")
    raw_json = bytes(data[20 : 20 + json_len])
    bin_chunk: bytes | None = None
    offset = 20 + ((json_len + 3) & ~3)
    if offset + 8 <= total:
        bin_len, bin_type = struct.unpack_from("<I4s", data, offset)
        if offset + 8 + bin_len > total:
            raise _Bad(f"malformed GLB: chunk of {bin_len} bytes runs past the end of the file")
        if bin_type == b"BIN\x00":
            bin_chunk = bytes(data[offset + 8 : offset + 8 + bin_len])
    doc = _parse_json(raw_json)
    return _Document(doc, bin_chunk).check()


def _parse_json(raw: bytes) -> dict[str, Any]:
    depth = _json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise _Bad(f"JSON nested {depth} levels deep (limit {MAX_JSON_DEPTH})")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _Bad("JSON chunk is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise _Bad(f"JSON chunk is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _Bad(f"JSON chunk is a {type(doc).__name__}, not an object")
    return doc


def _json_depth(raw: bytes) -> int:
    """Deepest bracket nesting outside string literals (vectorised: no recursion, no per-byte loop)."""
    text = _STRING.sub(b'""', raw)
    codes = np.frombuffer(text, dtype=np.uint8)
    step = np.zeros(len(codes), dtype=np.int32)
    step[(codes == ord("[")) | (codes == ord("{"))] = 1
    step[(codes == ord("]")) | (codes == ord("}"))] = -1
    return int(np.cumsum(step).max()) if len(step) else 0


# --------------------------------------------------------------------------- document


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise _Bad(f"'{key}' is not an array")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _Bad(f"{key}[{i}] is not an object")
    return value


def _int(obj: dict[str, Any], key: str, where: str, default: int | None = None, low: int = 0) -> int:
    value = obj.get(key, default)
    if value is None:
        raise _Bad(f"{where} has no {key}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{where}.{key} is not an integer: {value!r}"[:200])
    if value < low:
        raise _Bad(f"{where}.{key} = {value} is below {low}")
    return value


def _ref(obj: dict[str, Any], key: str, where: str, items: list[Any], what: str) -> int | None:
    if key not in obj:
        return None
    index = _int(obj, key, where)
    if index >= len(items):
        raise _Bad(f"{where}.{key} = {index} but the file has {len(items)} {what}")
    return index


class _Document:
    def __init__(self, doc: dict[str, Any], bin_chunk: bytes | None) -> None:
        self.doc = doc
        self.bin = bin_chunk
        self.buffers: list[bytes | None] = []
        self.buffer_defs = _list(doc, "buffers")
        self.views = _list(doc, "bufferViews")
        self.accessors = _list(doc, "accessors")
        self.meshes = _list(doc, "meshes")
        self.nodes = _list(doc, "nodes")
        self.scenes = _list(doc, "scenes")
        self.images = _list(doc, "images")
        self.textures = _list(doc, "textures")
        self.materials = _list(doc, "materials")
        self.samplers = _list(doc, "samplers")
        self.skins = _list(doc, "skins")
        self.cameras = _list(doc, "cameras")
        self.decoded = 0  # bytes of all accessors once decoded (see MAX_ACCESSOR_BYTES)

    def check(self) -> GlbSummary:
        self._buffers()
        self._views()
        for i, accessor in enumerate(self.accessors):
            self._accessor(i, accessor)
        self._decoded_within_limit()
        sizes = [self._mesh(i, mesh) for i, mesh in enumerate(self.meshes)]
        self._decoded_within_limit()
        drawn, vertices, instances = self._nodes(sizes)
        images = self._images()
        self._textures()
        return GlbSummary(
            triangles=drawn,
            vertices=vertices,
            accessor_bytes=self.decoded,
            instances=instances,
            images=images,
        )

    def _decoded_within_limit(self) -> None:
        if self.decoded > MAX_ACCESSOR_BYTES:
            raise _Bad(
                f"accessors would take {self.decoded / 2**20:,.0f} MB decoded "
                "(morph targets counted per use); "
                f"the limit is {MAX_ACCESSOR_BYTES // 2**20} MB"
            )

    # buffers and views -----------------------------------------------------------------

    def _buffers(self) -> None:
        for i, buffer in enumerate(self.buffer_defs):
            where = f"buffers[{i}]"
            length = _int(buffer, "byteLength", where, low=1)
            uri = buffer.get("uri")
            if uri is None:
                if i != 0 or self.bin is None:
                    raise _Bad(f"{where} refers to a BIN chunk the file does not have")
                blob: bytes | None = self.bin
            elif isinstance(uri, str) and uri.startswith("data:"):
                blob = _data_uri(uri, where)
            else:
                raise _Bad(f"{where} refers to an external file ({str(uri)[:80]!r}); not self-contained")
            if blob is None or len(blob) < length:
                got = 0 if blob is None else len(blob)
                raise _Bad(f"{where}.byteLength = {length} but only {got} bytes are present")
            self.buffers.append(blob)

    def _views(self) -> None:
        for i, view in enumerate(self.views):
            where = f"bufferViews[{i}]"
            buffer = _ref(view, "buffer", where, self.buffer_defs, "buffers")
            if buffer is None:
                raise _Bad(f"{where} has no buffer")
            offset = _int(view, "byteOffset", where, 0)
            length = _int(view, "byteLength", where, low=1)
            size = self.buffer_defs[buffer]["byteLength"]
            if offset + length > size:
                raise _Bad(f"{where} spans bytes {offset}..{offset + length} of a {size}-byte buffer")
            if "byteStride" in view:
                stride = _int(view, "byteStride", where)
                if not 4 <= stride <= 252 or stride % 4:
                    raise _Bad(f"{where}.byteStride = {stride} (must be a multiple of 4 in 4..252)")

    def _view_bytes(self, index: int) -> bytes:
        view = self.views[index]
        blob = self.buffers[view["buffer"]]
        assert blob is not None
        start = view.get("byteOffset", 0)
        return blob[start : start + view["byteLength"]]

    def _span(self, where: str, view_index: int, offset: int, count: int, elem: int, stride: int) -> None:
        length = self.views[view_index]["byteLength"]
        end = offset + stride * (count - 1) + elem
        if end > length:
            raise _Bad(
                f"{where} reads {count:,} elements to byte {end:,} of a {length:,}-byte buffer view "
                "(count, offset or stride beyond the data)"
            )

    def _accessor(self, i: int, accessor: dict[str, Any]) -> None:
        where = f"accessors[{i}]"
        component = _int(accessor, "componentType", where)
        if component not in _COMPONENT_BYTES:
            raise _Bad(f"{where}.componentType = {component} is not a glTF component type")
        kind = accessor.get("type")
        if kind not in _TYPE_COMPONENTS:
            raise _Bad(f"{where}.type = {str(kind)[:40]!r} is not a glTF accessor type")
        count = _int(accessor, "count", where, low=1)
        elem = _COMPONENT_BYTES[component] * _TYPE_COMPONENTS[kind]
        view_index = _ref(accessor, "bufferView", where, self.views, "buffer views")
        if view_index is not None:
            offset = _int(accessor, "byteOffset", where, 0)
            stride = self.views[view_index].get("byteStride", elem)
            self._span(where, view_index, offset, count, elem, stride)
        self.decoded += count * elem  # zero-filled when there is no buffer view: still allocated
        sparse = accessor.get("sparse")
        if sparse is not None:
            if not isinstance(sparse, dict):
                raise _Bad(f"{where}.sparse is not an object")
            n = _int(sparse, "count", f"{where}.sparse", low=1)
            if n > count:
                raise _Bad(f"{where}.sparse.count = {n} exceeds the accessor's count {count}")
            for part, size in (("indices", None), ("values", elem)):
                spec = sparse.get(part)
                if not isinstance(spec, dict):
                    raise _Bad(f"{where}.sparse.{part} is missing")
                w = f"{where}.sparse.{part}"
                vi = _ref(spec, "bufferView", w, self.views, "buffer views")
                if vi is None:
                    raise _Bad(f"{w} has no bufferView")
                if size is None:
                    ct = _int(spec, "componentType", w)
                    if ct not in _COMPONENT_DTYPES:
                        raise _Bad(f"{w}.componentType = {ct} is not an unsigned integer type")
                    size = _COMPONENT_BYTES[ct]
                    off = _int(spec, "byteOffset", w, 0)
                    self._span(w, vi, off, n, size, size)
                    blob = self._view_bytes(vi)
                    idx = np.frombuffer(blob, dtype=_COMPONENT_DTYPES[ct], count=n, offset=off)
                    if idx.size and int(idx.max()) >= count:
                        raise _Bad(f"{w} has index {int(idx.max())} past the accessor's count {count}")
                else:
                    self._span(w, vi, _int(spec, "byteOffset", w, 0), n, size, size)

    # meshes and nodes ------------------------------------------------------------------

    def _mesh(self, i: int, mesh: dict[str, Any]) -> tuple[int, int]:
        """Triangles of one mesh (all its triangle primitives) and vertices (all its primitives)."""
        primitives = mesh.get("primitives")
        if not isinstance(primitives, list) or not primitives:
            raise _Bad(f"meshes[{i}] has no primitives")
        triangles = 0
        drawn_vertices = 0
        for j, primitive in enumerate(primitives):
            where = f"meshes[{i}].primitives[{j}]"
            if not isinstance(primitive, dict):
                raise _Bad(f"{where} is not an object")
            attributes = primitive.get("attributes")
            if not isinstance(attributes, dict) or "POSITION" not in attributes:
                raise _Bad(f"{where} has no POSITION attribute")
            counts = set()
            for key in attributes:
                index = _ref(attributes, key, f"{where}.attributes", self.accessors, "accessors")
                assert index is not None
                counts.add(self.accessors[index]["count"])
            if len(counts) != 1:
                raise _Bad(f"{where}: its attributes have different counts {sorted(counts)}")
            vertices = counts.pop()
            position = self.accessors[attributes["POSITION"]]
            if position["type"] != "VEC3" or position["componentType"] != 5126:
                raise _Bad(f"{where}: POSITION is not float VEC3")
            mode = _int(primitive, "mode", where, 4)
            if mode > 6:
                raise _Bad(f"{where}.mode = {mode} is not a glTF primitive mode")
            _ref(primitive, "material", where, self.materials, "materials")
            elements = vertices
            index = _ref(primitive, "indices", where, self.accessors, "accessors")
            if index is not None:
                elements = self._indices(f"{where}.indices", index, vertices)
            if mode == 4:
                triangles += elements // 3
            elif mode in (5, 6):
                triangles += max(elements - 2, 0)
            drawn_vertices += max(vertices, elements)
            targets = primitive.get("targets", []) or []
            if not isinstance(targets, list):
                raise _Bad(f"{where}.targets is not an array")
            for target in targets:
                if not isinstance(target, dict):
                    raise _Bad(f"{where}.targets holds a non-object")
                for key in target:
                    index = _ref(target, key, f"{where}.targets", self.accessors, "accessors")
                    assert index is not None
                    accessor = self.accessors[index]
                    if accessor["count"] != vertices:
                        raise _Bad(
                            f"{where}.targets: accessor {index} has {accessor['count']:,} elements "
                            f"but the primitive has {vertices:,} vertices"
                        )
                    # a renderer blends each target per primitive: count every use
                    self.decoded += (
                        vertices
                        * _COMPONENT_BYTES[accessor["componentType"]]
                        * (_TYPE_COMPONENTS[accessor["type"]])
                    )
        return triangles, drawn_vertices

    def _indices(self, where: str, index: int, vertices: int) -> int:
        accessor = self.accessors[index]
        component = accessor["componentType"]
        if accessor["type"] != "SCALAR" or component not in _COMPONENT_DTYPES:
            raise _Bad(f"{where}: accessor {index} is not unsigned-integer SCALAR indices")
        count = accessor["count"]
        if "bufferView" in accessor and "sparse" not in accessor:
            view = self.views[accessor["bufferView"]]
            size = _COMPONENT_BYTES[component]
            if view.get("byteStride", size) != size:
                raise _Bad(f"{where}: index buffer view {accessor['bufferView']} has a byteStride")
            values = np.frombuffer(
                self._view_bytes(accessor["bufferView"]),
                dtype=_COMPONENT_DTYPES[component],
                count=count,
                offset=accessor.get("byteOffset", 0),
            )
            top = int(values.max())
            if top >= vertices:
                raise _Bad(f"{where}: index {top:,} but the primitive has {vertices:,} vertices")
        elif "sparse" in accessor:
            raise _Bad(f"{where}: sparse index accessors are not supported")
        return int(count)

    def _nodes(self, mesh_sizes: list[tuple[int, int]]) -> tuple[int, int, int]:
        parent: dict[int, int] = {}
        for i, node in enumerate(self.nodes):
            where = f"nodes[{i}]"
            children = node.get("children", [])
            if not isinstance(children, list):
                raise _Bad(f"{where}.children is not an array")
            for child in children:
                if isinstance(child, bool) or not isinstance(child, int) or not 0 <= child < len(self.nodes):
                    raise _Bad(f"{where} has child {str(child)[:40]}; the file has {len(self.nodes)} nodes")
                if child == i:
                    raise _Bad(f"{where} lists itself as its own child")
                if child in parent:
                    raise _Bad(f"node {child} has two parents (nodes {parent[child]} and {i})")
                parent[child] = i
            _ref(node, "mesh", where, self.meshes, "meshes")
            _ref(node, "skin", where, self.skins, "skins")
            _ref(node, "camera", where, self.cameras, "cameras")
            for key, length in (("matrix", 16), ("translation", 3), ("rotation", 4), ("scale", 3)):
                value = node.get(key)
                if value is not None and (
                    not isinstance(value, list)
                    or len(value) != length
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                ):
                    raise _Bad(f"{where}.{key} is not {length} numbers")
        # Cycles: with at most one parent each, a cycle is a chain of parents that comes back.
        state = [0] * len(self.nodes)  # 0 unvisited, 1 on the current chain, 2 known to reach a root
        for start in range(len(self.nodes)):
            chain = []
            node = start
            while node is not None and state[node] == 0:
                state[node] = 1
                chain.append(node)
                node = parent.get(node)
            if node is not None and state[node] == 1:
                raise _Bad(f"the node graph has a cycle through node {node}")
            for n in chain:
                state[n] = 2
        if "scene" in self.doc:
            scene_index = _int(self.doc, "scene", "the file")
            if scene_index >= len(self.scenes):
                raise _Bad(f"the default scene = {scene_index} but the file has {len(self.scenes)} scenes")
        for k, skin in enumerate(self.skins):
            where = f"skins[{k}]"
            _ref(skin, "inverseBindMatrices", where, self.accessors, "accessors")
            _ref(skin, "skeleton", where, self.nodes, "nodes")
            joints = skin.get("joints")
            if not isinstance(joints, list) or not joints:
                raise _Bad(f"{where} has no joints")
            for joint in joints:
                if isinstance(joint, bool) or not isinstance(joint, int) or not 0 <= joint < len(self.nodes):
                    raise _Bad(f"{where} has joint {str(joint)[:40]}; the file has {len(self.nodes)} nodes")
        for a, animation in enumerate(_list(self.doc, "animations")):
            where = f"animations[{a}]"
            samplers = animation.get("samplers", [])
            channels = animation.get("channels", [])
            if not isinstance(samplers, list) or not isinstance(channels, list):
                raise _Bad(f"{where} samplers or channels is not an array")
            for j, sampler in enumerate(samplers):
                if not isinstance(sampler, dict):
                    raise _Bad(f"{where}.samplers[{j}] is not an object")
                for key in ("input", "output"):
                    if _ref(sampler, key, f"{where}.samplers[{j}]", self.accessors, "accessors") is None:
                        raise _Bad(f"{where}.samplers[{j}] has no {key}")
            for j, channel in enumerate(channels):
                if not isinstance(channel, dict) or not isinstance(channel.get("target"), dict):
                    raise _Bad(f"{where}.channels[{j}] is not an object with a target")
                _ref(channel, "sampler", f"{where}.channels[{j}]", samplers, "samplers")
                _ref(channel["target"], "node", f"{where}.channels[{j}].target", self.nodes, "nodes")
        for s, scene in enumerate(self.scenes):
            nodes = scene.get("nodes", [])
            if not isinstance(nodes, list):
                raise _Bad(f"scenes[{s}].nodes is not an array")
            roots: set[int] = set()
            for n in nodes:
                if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < len(self.nodes):
                    raise _Bad(f"scenes[{s}] has node {str(n)[:40]} but the file has {len(self.nodes)} nodes")
                if n in roots:
                    raise _Bad(f"scenes[{s}] lists node {n} twice (each node is drawn once per scene)")
                if n in parent:
                    raise _Bad(f"scenes[{s}] has node {n} as a root but it is a child of node {parent[n]}")
                roots.add(n)
        drawing = [i for i, node in enumerate(self.nodes) if "mesh" in node]
        drawn = sum(mesh_sizes[self.nodes[i]["mesh"]][0] for i in drawing)
        uses = [0] * len(self.meshes)
        for i in drawing:
            uses[self.nodes[i]["mesh"]] += 1
        # loaders read every mesh, drawn or not
        vertices = sum(max(n, 1) * size[1] for n, size in zip(uses, mesh_sizes, strict=True))
        if len(drawing) > MAX_INSTANCES:
            raise _Bad(f"{len(drawing):,} mesh instances (nodes drawing a mesh); limit {MAX_INSTANCES:,}")
        if drawn > MAX_DRAWN_TRIANGLES:
            raise _Bad(
                f"{drawn:,} triangles drawn ({len(drawing):,} instances); limit {MAX_DRAWN_TRIANGLES:,}"
            )
        if vertices > MAX_DRAWN_VERTICES:
            raise _Bad(
                f"{vertices:,} vertices drawn, points and lines included ({len(drawing):,} instances); "
                f"limit {MAX_DRAWN_VERTICES:,}"
            )
        return drawn, vertices, len(drawing)

    # images ----------------------------------------------------------------------------

    def _images(self) -> tuple[tuple[int, int], ...]:
        sizes = []
        payloads = []
        total = 0
        for i, image in enumerate(self.images):
            where = f"images[{i}]"
            view = _ref(image, "bufferView", where, self.views, "buffer views")
            if view is not None:
                head = self._view_bytes(view)
            elif isinstance(image.get("uri"), str) and image["uri"].startswith("data:"):
                head = _data_uri(image["uri"], where) or b""
            else:
                raise _Bad(f"{where} refers to an external file or has no data")
            width, height = image_size(head, where)
            if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
                raise _Bad(f"{where} is {width}x{height} pixels; the limit is {MAX_IMAGE_SIDE} per side")
            total += width * height * 4
            if total > MAX_IMAGE_BYTES:
                raise _Bad(
                    f"textures would take {total / 2**20:,.0f} MB decoded; "
                    f"the limit is {MAX_IMAGE_BYTES // 2**20} MB"
                )
            sizes.append((width, height))
            payloads.append(head)
        # Within the limits above, decoding is bounded: decode each image once, so a valid header over
        # truncated or corrupt pixel data stops here rather than in a native reader that trusts it.
        for i, (payload, size) in enumerate(zip(payloads, sizes, strict=True)):
            _decode_image(payload, size, f"images[{i}]")
        return tuple(sizes)

    def _textures(self) -> None:
        for i, sampler in enumerate(self.samplers):
            for key, allowed in _SAMPLER_VALUES.items():
                if key in sampler and (isinstance(sampler[key], bool) or sampler[key] not in allowed):
                    raise _Bad(f"samplers[{i}].{key} = {str(sampler[key])[:40]} is not a glTF value")
        for i, texture in enumerate(self.textures):
            _ref(texture, "source", f"textures[{i}]", self.images, "images")
            _ref(texture, "sampler", f"textures[{i}]", self.samplers, "samplers")
        texcoords: list[set[int]] = []
        for i, material in enumerate(self.materials):
            used = set()
            for ref in _texture_refs(material):
                where = f"materials[{i}] texture"
                _ref(ref, "index", where, self.textures, "textures")
                if "index" not in ref:
                    raise _Bad(f"{where} has no index")
                used.add(_int(ref, "texCoord", where, 0))
            texcoords.append(used)
        for m, mesh in enumerate(self.meshes):
            for j, primitive in enumerate(mesh["primitives"]):
                if "material" not in primitive:
                    continue
                attributes = primitive["attributes"]
                for n in sorted(texcoords[primitive["material"]]):
                    if f"TEXCOORD_{n}" not in attributes:
                        raise _Bad(
                            f"meshes[{m}].primitives[{j}] uses material {primitive['material']} with "
                            f"texCoord {n} but has no TEXCOORD_{n} attribute"
                        )


def _texture_refs(material: dict[str, Any]) -> list[dict[str, Any]]:
    refs = []
    pbr = material.get("pbrMetallicRoughness")
    holders = [material] + ([pbr] if isinstance(pbr, dict) else [])
    for holder in holders:
        for key, value in holder.items():
            if key.endswith("Texture"):
                if not isinstance(value, dict):
                    raise _Bad(f"material {key} is not an object")
                refs.append(value)
    return refs


_SAMPLER_VALUES = {
    "magFilter": (9728, 9729),
    "minFilter": (9728, 9729, 9984, 9985, 9986, 9987),
    "wrapS": (33071, 33648, 10497),
    "wrapT": (33071, 33648, 10497),
}


def _decode_image(payload: bytes, size: tuple[int, int], where: str) -> None:
    """Decode one image (its size already checked) with Pillow; _Bad if the data is broken or truncated."""
    import io
    import warnings

    from PIL import Image, ImageFile

    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone asked Pillow to pad truncated images: not here
        raise _Bad("Pillow is set to load truncated images (PIL.ImageFile.LOAD_TRUNCATED_IMAGES)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(payload)) as image:
                if image.size != size:
                    raise _Bad(f"{where} header says {size[0]}x{size[1]}, Pillow reads {image.size}")
                image.load()
    except _Bad:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, zlib.error... on bad data
        raise _Bad(
            f"{where} has broken or truncated image data ({type(exc).__name__}: {exc})"[:300]
        ) from None


def _data_uri(uri: str, where: str) -> bytes | None:
    head, _, payload = uri.partition(",")
    if ";base64" not in head:
        raise _Bad(f"{where} has a data URI that is not base64")
    try:
        return base64.b64decode(payload, validate=False)
    except ValueError:
        raise _Bad(f"{where} has a malformed base64 data URI") from None


# --------------------------------------------------------------------------- image headers


def image_size(head: bytes, where: str = "image") -> tuple[int, int]:
    """Width and height from a PNG, JPEG, WebP or GIF header, without decoding pixels."""
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        if len(head) < 24 or head[12:16] != b"IHDR":
            raise _Bad(f"{where} is a truncated PNG")
        w, h = struct.unpack(">II", head[16:24])
    elif head[:2] == b"\xff\xd8":
        w, h = _jpeg_size(head, where)
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        w, h = _webp_size(head, where)
    elif head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        w, h = struct.unpack("<HH", head[6:10])
    else:
        raise _Bad(f"{where} is not a PNG, JPEG, WebP or GIF image")
    if w == 0 or h == 0:
        raise _Bad(f"{where} declares {w}x{h} pixels")
    return int(w), int(h)


def _jpeg_size(head: bytes, where: str) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(head):
        if head[i] != 0xFF:
            raise _Bad(f"{where} is a malformed JPEG")
        marker = head[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", head[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(head):
                break
            h, w = struct.unpack(">HH", head[i + 5 : i + 9])
            return w, h
        if length < 2:
            break
        i += 2 + length
    raise _Bad(f"{where} is a JPEG without a frame header")


def _webp_size(head: bytes, where: str) -> tuple[int, int]:
    kind = head[12:16]
    if kind == b"VP8 " and len(head) >= 30:
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X" and len(head) >= 30:
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    raise _Bad(f"{where} is a malformed WebP")
