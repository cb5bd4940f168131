"""Read a 3D file into plain arrays and material values, ready to become pythreejs widgets.

No widgets here: :func:`load_model` turns a GLB (or anything trimesh reads) into a :class:`Model` of
numpy buffers in the exact layout three.js uploads (C-contiguous ``float32`` attributes, a 1-D
``uint32`` index), glTF metallic-roughness material values, the encoded texture images as found in the
file (never decoded and re-encoded when avoidable), node instances with world matrices, and the
statistics a user reads under the view.

``trimesh.load(..., process=False)`` keeps the file's own vertices (UV seams survive, nothing merged)
and is an order of magnitude faster than the default processing. Everything after it is vectorised.
"""

from __future__ import annotations

import io
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import AssetError
from ..glbcheck import check_glb
from ..modelfiles import check_other_format, read_checked

__all__ = ["MaterialData", "Model", "ModelStats", "Primitive", "TextureData", "load_model"]

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

# glTF sampler enums -> three.js constant names (pythreejs enum strings).
_WRAP = {33071: "ClampToEdgeWrapping", 33648: "MirroredRepeatWrapping", 10497: "RepeatWrapping"}
_MAG = {9728: "NearestFilter", 9729: "LinearFilter"}
_MIN = {
    9728: "NearestFilter",
    9729: "LinearFilter",
    9984: "NearestMipMapNearestFilter",
    9985: "LinearMipMapNearestFilter",
    9986: "NearestMipMapLinearFilter",
    9987: "LinearMipMapLinearFilter",
}
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


@dataclass(frozen=True)
class Sampler:
    """How a texture is sampled (three.js names); glTF's default is repeat with trilinear filtering."""

    wrap_s: str = "RepeatWrapping"
    wrap_t: str = "RepeatWrapping"
    mag_filter: str = "LinearFilter"
    min_filter: str = "LinearMipMapLinearFilter"


@dataclass(eq=False)
class TextureData:
    """One texture image, still encoded as in the file (PNG/JPEG/WebP)."""

    data: bytes
    mime: str
    size: tuple[int, int]
    sampler: Sampler = field(default_factory=Sampler)
    srgb: bool = False  # colour data (base colour, emissive) rather than linear data


@dataclass(eq=False)
class MaterialData:
    """glTF metallic-roughness values of one material; colours are linear RGB in 0..1."""

    name: str = ""
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    opacity: float = 1.0
    metalness: float = 1.0  # glTF's defaults for both factors are 1.0
    roughness: float = 1.0
    emissive: tuple[float, float, float] = (0.0, 0.0, 0.0)
    alpha_mode: str = "OPAQUE"  # OPAQUE | MASK | BLEND
    alpha_cutoff: float = 0.5
    double_sided: bool = False
    maps: dict[str, TextureData] = field(default_factory=dict)  # three.js slot -> texture
    default: bool = False  # the file gave no material (drawn in neutral clay)


@dataclass(eq=False)
class Primitive:
    """One geometry: attribute buffers in three.js layout and its material."""

    name: str
    position: F32  # (n, 3)
    normal: F32  # (n, 3)
    index: NDArray[np.uint32]  # (3 m,) 1-D
    material: MaterialData
    uv: F32 | None = None  # (n, 2), V already flipped by trimesh (matches three's flipY textures)
    color: F32 | None = None  # (n, 3) linear vertex colours

    @property
    def triangles(self) -> int:
        return len(self.index) // 3

    @property
    def vertices(self) -> int:
        return len(self.position)

    @property
    def nbytes(self) -> int:
        arrays = (self.position, self.normal, self.index, self.uv, self.color)
        return sum(a.nbytes for a in arrays if a is not None)


@dataclass(frozen=True)
class Instance:
    """A scene node drawing one primitive with its world transform (4x4, row-major as numpy)."""

    primitive: int
    matrix: F64
    name: str


@dataclass(frozen=True)
class ModelStats:
    """What the stats line shows; triangles and vertices count every drawn instance."""

    triangles: int
    vertices: int
    materials: int
    textures: tuple[tuple[int, int], ...]
    bounds: tuple[tuple[float, float, float], tuple[float, float, float]]
    instances: int
    primitives: int
    skipped: int  # non-triangle primitives (points, lines) that are not drawn
    vertex_colours: bool = False

    @property
    def size(self) -> tuple[float, float, float]:
        lo, hi = self.bounds
        return (hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2])

    def line(self) -> str:
        """One line of text, e.g. ``4,212 triangles · 2,399 vertices · 1 material · texture 512x512 ...``."""
        parts = [f"{self.triangles:,} triangles", f"{self.vertices:,} vertices"]
        if self.materials:
            parts.append(f"{self.materials} material" + ("" if self.materials == 1 else "s"))
        else:
            parts.append("no material")
        if self.vertex_colours:
            parts.append("vertex colours")
        if self.textures:
            sizes = sorted({f"{w}x{h}" for w, h in self.textures})
            noun = "texture" if len(self.textures) == 1 else f"{len(self.textures)} textures"
            parts.append(f"{noun} {', '.join(sizes)}")
        else:
            parts.append("no textures")
        sx, sy, sz = self.size
        parts.append(f"bbox {_num(sx)} x {_num(sy)} x {_num(sz)}")
        if self.instances != self.primitives:
            parts.append(f"{self.instances} instances of {self.primitives} meshes")
        if self.skipped:
            parts.append(f"{self.skipped} point/line primitives not shown")
        return " · ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "triangles": self.triangles,
            "vertices": self.vertices,
            "materials": self.materials,
            "textures": [list(t) for t in self.textures],
            "bbox": [list(self.bounds[0]), list(self.bounds[1])],
        }


def _num(x: float) -> str:
    return f"{x:.3g}"


@dataclass(eq=False)
class Model:
    """A 3D file as arrays: primitives, node instances, materials, textures and statistics."""

    name: str
    primitives: list[Primitive]
    instances: list[Instance]
    materials: list[MaterialData]
    textures: list[TextureData]
    bounds: F64  # (2, 3) world-space axis-aligned box of everything drawn
    stats: ModelStats
    path: Path | None = None

    @property
    def raw_nbytes(self) -> int:
        """Geometry buffers plus encoded texture bytes: what the front end must receive at least."""
        return sum(p.nbytes for p in self.primitives) + sum(len(t.data) for t in self.textures)


# --------------------------------------------------------------------------- loading


def load_model(source: bytes | str | os.PathLike[str], name: str | None = None) -> Model:
    """Read a GLB (or any format trimesh reads) into a :class:`Model`.

    Raises
    ------
    AssetError : the file is missing, unreadable, or holds no triangle mesh; the message names it.
    """
    import trimesh

    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
        label = name or "<GLB bytes>"
        path = None
        if not raw.startswith(b"glTF"):
            raise AssetError(f"cannot read 3D file {label}: not a binary glTF (GLB)")
        opener: dict[str, Any] = {"file_obj": io.BytesIO(raw), "file_type": "glb"}
    else:
        path = Path(source)
        label = name or str(path)
        if not path.is_file():
            raise AssetError(f"cannot read 3D file {path}: no such file")
        # A GLB is checked as it is, a .gltf packed into one checked GLB: trimesh loads the checked bytes.
        checked = read_checked(path, label)
        if checked is not None:
            raw = checked
            opener = {"file_obj": io.BytesIO(raw), "file_type": "glb"}
        else:
            raw = b""
            check_other_format(path, label)
            opener = {"file_obj": str(path)}
    if isinstance(source, (bytes, bytearray, memoryview)):
        check_glb(raw, label)  # hostile or broken containers stop here, before trimesh or Pillow
    try:
        scene: Any = trimesh.load(**opener, force="scene", process=False)
    except Exception as exc:  # trimesh raises anything from struct.error to KeyError on bad input
        raise AssetError(f"cannot read 3D file {label}: {type(exc).__name__}: {exc}") from exc

    textures = _Textures(_glb_samplers(raw) if raw.startswith(b"glTF") else {})
    materials: dict[tuple[int, bool], MaterialData] = {}
    primitives: list[Primitive] = []
    by_geometry: dict[str, int] = {}
    skipped = 0

    for geometry_name, geometry in scene.geometry.items():
        faces = getattr(geometry, "faces", None)
        if faces is None or len(faces) == 0:
            skipped += 1
            continue
        visual = getattr(geometry, "visual", None)
        uv = _uv(visual, len(geometry.vertices))
        color = _vertex_colours(visual, len(geometry.vertices))
        material = _material(visual, uv is not None, materials, textures)
        by_geometry[geometry_name] = len(primitives)
        primitives.append(
            Primitive(
                name=str(geometry_name),
                position=np.ascontiguousarray(geometry.vertices, dtype=np.float32),
                normal=np.ascontiguousarray(geometry.vertex_normals, dtype=np.float32),
                index=np.ascontiguousarray(faces, dtype=np.uint32).reshape(-1),
                material=material,
                uv=uv,
                color=color,
            )
        )
    if not primitives:
        raise AssetError(f"cannot read 3D file {label}: it holds no triangle mesh to show")

    instances: list[Instance] = []
    for node in scene.graph.nodes_geometry:
        matrix, geometry_name = scene.graph[node]
        if geometry_name in by_geometry:
            instances.append(
                Instance(by_geometry[geometry_name], np.asarray(matrix, dtype=np.float64), str(node))
            )

    bounds = _bounds(primitives, instances)
    texture_list = list(textures.items.values())
    material_list = list({id(m): m for m in materials.values()}.values())
    stats = ModelStats(
        triangles=sum(primitives[i.primitive].triangles for i in instances),
        vertices=sum(primitives[i.primitive].vertices for i in instances),
        materials=sum(1 for m in material_list if not m.default),
        textures=tuple(textures.sizes.values()),
        bounds=(
            (float(bounds[0, 0]), float(bounds[0, 1]), float(bounds[0, 2])),
            (float(bounds[1, 0]), float(bounds[1, 1]), float(bounds[1, 2])),
        ),
        instances=len(instances),
        primitives=len(primitives),
        skipped=skipped,
        vertex_colours=any(p.color is not None for p in primitives),
    )
    return Model(label, primitives, instances, material_list, texture_list, bounds, stats, path)


def _bounds(primitives: list[Primitive], instances: list[Instance]) -> F64:
    """World-space box: each primitive's box once, its 8 corners through every instance's matrix.

    Work is proportional to unique geometry plus 8 points per instance (as trimesh's ``Scene.bounds``),
    not to instances x vertices.
    """
    if not instances:
        return np.zeros((2, 3))
    boxes = np.array(
        [[p.position.min(axis=0), p.position.max(axis=0)] for p in primitives], dtype=np.float64
    )  # (P, 2, 3)
    pick = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0], [1, 0, 1], [1, 1, 0], [1, 1, 1]])
    corners = boxes[:, pick, [0, 1, 2]]  # (P, 8, 3)
    which = np.fromiter((i.primitive for i in instances), dtype=np.int64, count=len(instances))
    matrices = np.stack([i.matrix for i in instances])  # (N, 4, 4)
    world = np.einsum("nij,nkj->nki", matrices[:, :3, :3], corners[which]) + matrices[:, None, :3, 3]
    return np.array([world.min(axis=(0, 1)), world.max(axis=(0, 1))])


def _uv(visual: Any, count: int) -> F32 | None:
    uv = getattr(visual, "uv", None)
    if uv is None or len(uv) != count:
        return None
    return np.ascontiguousarray(np.asarray(uv)[:, :2], dtype=np.float32)


def _vertex_colours(visual: Any, count: int) -> F32 | None:
    """Linear RGB vertex colours when the file has them (COLOR_0, or per-face colours spread to vertices)."""
    raw = None
    if getattr(visual, "kind", None) in ("vertex", "face"):
        raw = visual.vertex_colors
    else:
        attributes = getattr(visual, "vertex_attributes", None)
        if attributes is not None and "color" in attributes:
            raw = attributes["color"]
    if raw is None:
        return None
    arr = np.asarray(raw)
    if arr.ndim != 2 or len(arr) != count or arr.shape[1] < 3:
        return None
    rgb = arr[:, :3].astype(np.float32)
    if arr.dtype.kind in "ui":
        rgb /= 255.0
    return np.ascontiguousarray(rgb)


def _material(
    visual: Any,
    has_uv: bool,
    cache: dict[tuple[int, bool], MaterialData],
    textures: _Textures,
) -> MaterialData:
    """The glTF material of a geometry, shared between geometries that share it in the file."""
    source = getattr(visual, "material", None)
    key = (id(source), has_uv)
    if key in cache:
        return cache[key]
    if source is None:
        # No material in the file: neutral clay (white under vertex colours, so they show as authored).
        made = MaterialData(name="default", color=(0.8, 0.8, 0.8), metalness=0.0, roughness=0.7, default=True)
        cache[key] = made
        return made
    if not hasattr(source, "baseColorFactor") and hasattr(source, "to_pbr"):
        source = source.to_pbr()  # SimpleMaterial (OBJ/MTL) -> PBR
    base = _factor(getattr(source, "baseColorFactor", None), (1.0, 1.0, 1.0, 1.0))
    emissive = _factor(getattr(source, "emissiveFactor", None), (0.0, 0.0, 0.0, 1.0))
    alpha_mode = str(getattr(source, "alphaMode", None) or "OPAQUE").upper()
    made = MaterialData(
        name=str(getattr(source, "name", None) or ""),
        color=(base[0], base[1], base[2]),
        opacity=base[3] if alpha_mode == "BLEND" else 1.0,
        metalness=_scalar(getattr(source, "metallicFactor", None), 1.0),
        roughness=_scalar(getattr(source, "roughnessFactor", None), 1.0),
        emissive=(emissive[0], emissive[1], emissive[2]),
        alpha_mode=alpha_mode if alpha_mode in ("OPAQUE", "MASK", "BLEND") else "OPAQUE",
        alpha_cutoff=_scalar(getattr(source, "alphaCutoff", None), 0.5),
        double_sided=bool(getattr(source, "doubleSided", False)),
    )
    if has_uv:
        slots = (
            ("map", "baseColorTexture", True),
            ("metalnessRoughnessMap", "metallicRoughnessTexture", False),
            ("normalMap", "normalTexture", False),
            ("aoMap", "occlusionTexture", False),
            ("emissiveMap", "emissiveTexture", True),
        )
        for slot, attribute, srgb in slots:
            image = getattr(source, attribute, None)
            if image is not None and hasattr(image, "size"):
                made.maps[slot] = textures.get(image, srgb)
    cache[key] = made
    return made


def _factor(value: Any, default: tuple[float, float, float, float]) -> tuple[float, ...]:
    """A colour factor as floats in 0..1 (trimesh stores colour factors as uint8 RGBA)."""
    if value is None:
        return default
    arr = np.asarray(value).ravel()
    if arr.size == 0:
        return default
    out = arr.astype(np.float64) / (255.0 if arr.dtype.kind in "ui" else 1.0)
    padded = list(out[:4]) + list(default[len(out[:4]) :])
    return tuple(float(np.clip(v, 0.0, 1.0)) for v in padded)


def _scalar(value: Any, default: float) -> float:
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


class _Textures:
    """Texture records by image: one per (image, colour space), the encoded bytes shared between them."""

    def __init__(self, samplers: dict[bytes, Sampler]) -> None:
        self.samplers = samplers
        self.items: dict[tuple[int, bool], TextureData] = {}
        self.encoded: dict[int, tuple[bytes, str]] = {}
        self.sizes: dict[int, tuple[int, int]] = {}

    def get(self, image: Any, srgb: bool) -> TextureData:
        key = (id(image), srgb)
        if key not in self.items:
            if id(image) not in self.encoded:
                self.encoded[id(image)] = _encoded(image)
                self.sizes[id(image)] = (int(image.size[0]), int(image.size[1]))
            data, mime = self.encoded[id(image)]
            self.items[key] = TextureData(
                data=data,
                mime=mime,
                size=self.sizes[id(image)],
                sampler=self.samplers.get(data, Sampler()),
                srgb=srgb,
            )
        return self.items[key]


def _encoded(image: Any) -> tuple[bytes, str]:
    """The image's bytes as stored in the file when trimesh left them untouched, else a fresh PNG.

    trimesh opens glTF images lazily with ``PIL.Image.open(BytesIO(blob))``; until something decodes
    the pixels, ``image.fp`` still holds exactly the file's bytes, which avoids a slow re-encode (a
    1024^2 PNG takes longer to encode than the whole rest of a view to build).
    """
    fp = getattr(image, "fp", None)
    mime = _MIME.get(str(getattr(image, "format", "") or ""))
    if mime is not None and fp is not None and hasattr(fp, "getvalue"):
        data = fp.getvalue()
        if data:
            return bytes(data), mime
    buf = io.BytesIO()
    picture = image if image.mode in ("RGB", "RGBA", "L", "LA", "P") else image.convert("RGBA")
    picture.save(buf, format="PNG", compress_level=1)
    return buf.getvalue(), "image/png"


def _glb_samplers(raw: bytes) -> dict[bytes, Sampler]:
    """Sampler of each embedded image, keyed by the image's bytes (how trimesh's images are matched back).

    trimesh does not keep glTF samplers; reading the JSON chunk is cheap and lets repeat/clamp and
    nearest/linear filtering follow the file.
    """
    try:
        (json_len,) = struct.unpack_from("<I", raw, 12)
        doc = json.loads(raw[20 : 20 + json_len])
        bin_start = 20 + json_len
        bin_len, bin_type = struct.unpack_from("<I4s", raw, bin_start)
        if bin_type != b"BIN\x00":
            return {}
        blob = memoryview(raw)[bin_start + 8 : bin_start + 8 + bin_len]
        out: dict[bytes, Sampler] = {}
        views = doc.get("bufferViews", [])
        sampler_defs = doc.get("samplers", [])
        images = doc.get("images", [])
        for texture in doc.get("textures", []):
            source = texture.get("source")
            if source is None or source >= len(images) or "bufferView" not in images[source]:
                continue
            view = views[images[source]["bufferView"]]
            start = int(view.get("byteOffset", 0))
            data = bytes(blob[start : start + int(view["byteLength"])])
            spec = sampler_defs[texture["sampler"]] if texture.get("sampler") is not None else {}
            out.setdefault(
                data,
                Sampler(
                    wrap_s=_WRAP.get(spec.get("wrapS", 10497), "RepeatWrapping"),
                    wrap_t=_WRAP.get(spec.get("wrapT", 10497), "RepeatWrapping"),
                    mag_filter=_MAG.get(spec.get("magFilter", 9729), "LinearFilter"),
                    min_filter=_MIN.get(spec.get("minFilter", 9987), "LinearMipMapLinearFilter"),
                ),
            )
        return out
    except (struct.error, ValueError, KeyError, IndexError, TypeError):
        return {}  # samplers are a refinement; the geometry reader reports real problems
