"""Procedural stand-ins for Rodin's results: deterministic textured GLB meshes and preview PNGs.

The sandbox must return *plausible* results: a real GLB that viewers, trimesh, the Khronos
glTF-Validator (0 errors, 0 warnings) and the client's integrity checks accept, which looks like what
the prompt names, whose size follows ``tier`` and ``quality``, whose materials follow ``material``, and
which is byte-identical for an identical request. Every random choice therefore comes from a hash of the
canonical JSON of the (normalised) request, never from global state, and the file is written by hand
(:func:`_write_glb`) so no library version can reorder or re-encode anything.

Shape: the first vocabulary noun in the prompt (:mod:`.objects`: chair, table, lamp, vase, teapot, mug,
robot, tree, house, car, stool, bottle, rocket) picks a composition of parametric parts
(:mod:`.parts`); its design (proportions, counts, colours) comes from the prompt, seed and images, so
one seed gives the same object in both tiers and at every quality. Any other prompt, and image-only
requests, get the fallback: a cube-sphere reshaped as a superquadric and displaced by seeded noise.

Faces are **triangles** (what a GLB holds, what ``asset.properties.faceCount`` and the run log's
``faces`` count). The schema's face counts (high ~50k, medium ~18k, low ~8k, extra-low ~4k) are Rodin's
Quad-mode faces, so Regular results have about two triangles per quad: ~100k / 36k / 16k / 8k. Sketch is
"basic geometry and texture" and a triangle mesh at the medium it forces: ~18k triangles (the schema's
medium count, as triangles), sharp edges, flat colours and 256 px textures; Regular adds the finer
parts, rounded bevels, patterned 512 px textures and a normal map (with tangents). Textures are powers
of two. Everything is vectorised numpy; there is no per-vertex or per-texel Python loop.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..rules import canonical_json, effective_quality, uses_hyper
from .objects import Noise, atlas_textures, compose, noun_of
from .parts import allocate, build, pack_atlas, patch_lengths, tangents, welded_normals

__all__ = ["QUALITY_GRID", "TEXTURE_SIZE", "make_glb", "make_preview", "triangle_count"]

F64 = NDArray[np.float64]

#: Regular: the fallback's cube-sphere grid size per face for each quality: 12 * n**2 triangles, about
#: twice Rodin's documented (Quad-mode) face counts: high ~100k, medium ~36k, low ~16k, extra-low ~8k.
QUALITY_GRID: dict[str, int] = {"high": 91, "medium": 55, "low": 37, "extra-low": 26}
#: Sketch (always medium): ~18k triangles, the schema's medium face count as triangles.
SKETCH_GRID = 39

#: Texture edge in pixels per tier (powers of two: WebGL 1 and three.js want them).
TEXTURE_SIZE: dict[str, int] = {"Regular": 512, "Sketch": 256}

# (outward normal, u axis, v axis) of each cube face; the atlas puts face k in column k % 3, row k // 3.
_FACES = np.array(
    [
        [[1, 0, 0], [0, 0, -1], [0, -1, 0]],
        [[-1, 0, 0], [0, 0, 1], [0, -1, 0]],
        [[0, 1, 0], [1, 0, 0], [0, 0, 1]],
        [[0, -1, 0], [1, 0, 0], [0, 0, -1]],
        [[0, 0, 1], [1, 0, 0], [0, -1, 0]],
        [[0, 0, -1], [-1, 0, 0], [0, -1, 0]],
    ],
    dtype=np.float64,
)
_ATLAS_PAD = 0.02  # fraction of a cell kept empty around each island so bilinear filtering does not bleed

_FAMILIES = ("blob", "crate", "vase", "gem", "slab", "urchin")


def triangle_count(quality: str, tier: str = "Regular") -> int:
    """Triangles a result has for ``quality`` and ``tier``: exact for the fallback shape, the target
    (within a few percent) for vocabulary objects. Sketch ignores ``quality`` (Rodin forces medium)."""
    n = SKETCH_GRID if tier == "Sketch" else QUALITY_GRID[quality]
    return 12 * n * n


def _tier(params: dict[str, Any]) -> str:
    return "Sketch" if params.get("tier") == "Sketch" else "Regular"


def _rng(key: str, stream: str) -> np.random.Generator:
    """A numpy generator for one named purpose, derived from the request key (stable across runs)."""
    digest = hashlib.sha256(f"{stream}\x00{key}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def _effective_quality(params: dict[str, Any]) -> str:
    # The quality Rodin really runs at (Sketch forces medium); an unknown one falls back to high.
    quality = str(effective_quality(params, "high"))
    return quality if quality in QUALITY_GRID else "high"


@dataclass(frozen=True)
class _Shape:
    """The seeded parameters of one shape; see :func:`_shape_for`."""

    family: str
    exponent: float  # superquadric exponent: 2 sphere, large -> box, < 2 -> pinched
    scale: tuple[float, float, float]
    waves: F64  # (k, 3) unit directions of the noise terms
    freqs: F64  # (k,)
    phases: F64  # (k,)
    amps: F64  # (k,)
    spiky: bool
    palette: F64  # (3, 3) linear RGB colours
    metal: float  # base metalness of the material
    detail: float  # normal-map strength; useHyper raises it


def _shape_for(params: dict[str, Any]) -> _Shape:
    """Pick family and palette from the prompt (or first image), the rest from the whole request."""
    # The quality the result really has, not the one asked for: Sketch+low and Sketch+medium are one
    # request to Rodin, hence one shape.
    key = canonical_json({**params, "quality": _effective_quality(params)})
    identity = str(params.get("prompt") or "") or ",".join(str(d) for d in params.get("images", []) or [])
    fam_rng = _rng(identity.strip().lower(), "family")
    family = _FAMILIES[int(fam_rng.integers(len(_FAMILIES)))]
    palette = fam_rng.uniform(0.08, 0.85, size=(3, 3))
    rng = _rng(key, "shape")
    k = 9
    waves = rng.normal(size=(k, 3))
    waves /= np.linalg.norm(waves, axis=1, keepdims=True)
    freqs = rng.uniform(1.0, 3.2, size=k)
    phases = rng.uniform(0.0, 2 * math.pi, size=k)
    amps = rng.uniform(0.4, 1.0, size=k) / (1.0 + np.arange(k) * 0.35)
    jitter = rng.uniform(0.85, 1.15, size=3)
    base = {
        "blob": (2.0, (1.0, 1.0, 1.0), 0.22),
        "crate": (7.0, (1.0, 0.8, 1.0), 0.05),
        "vase": (2.4, (0.7, 1.6, 0.7), 0.12),
        "gem": (1.25, (1.0, 1.3, 1.0), 0.06),
        "slab": (3.5, (1.3, 0.45, 1.0), 0.08),
        "urchin": (2.0, (1.0, 1.0, 1.0), 0.18),
    }[family]
    exponent, scale, amp = base
    scale3 = (scale[0] * float(jitter[0]), scale[1] * float(jitter[1]), scale[2] * float(jitter[2]))
    return _Shape(
        family=family,
        exponent=exponent * float(rng.uniform(0.9, 1.1)),
        scale=scale3,
        waves=waves,
        freqs=freqs * (2.5 if family == "urchin" else 1.0),
        phases=phases,
        amps=amps * amp / float(amps.sum()) * 2.0,
        spiky=family == "urchin",
        palette=palette,
        metal=0.85 if family in ("crate", "gem") else 0.05,
        detail=1.6 if uses_hyper(params) else 1.0,
    )


def _noise(shape: _Shape, d: NDArray[np.floating[Any]], octave: float = 1.0) -> F64:
    """Smooth noise on the unit sphere: a sum of seeded plane waves, roughly in [-1, 1]."""
    dt = d.dtype  # textures pass float32 directions: half the cost, no visible difference
    proj = d @ shape.waves.T.astype(dt)  # (n, k)
    val = np.sin(proj * (shape.freqs * octave).astype(dt) + shape.phases.astype(dt))
    if shape.spiky:
        val = 1.0 - 2.0 * np.abs(val)
    out: F64 = (val @ shape.amps.astype(dt)) / max(float(shape.amps.sum()), 1e-9)
    return out


def _radius(shape: _Shape, d: F64) -> F64:
    e = shape.exponent
    r_sq: F64 = (np.abs(d) ** e).sum(axis=1) ** (-1.0 / e)
    r: F64 = r_sq * np.exp(_noise(shape, d) * float(shape.amps.sum()))
    return r


def _cube_points(face: NDArray[np.intp], a: F64, b: F64) -> F64:
    """Points on the cube for face indices and face coordinates in [-1, 1] (equal-angle spacing)."""
    ta = np.tan(a * (math.pi / 4))
    tb = np.tan(b * (math.pi / 4))
    # tan(pi/4) is not exactly 1.0 in floating point; pin the edges so neighbouring faces share vertices.
    ta = np.where(np.abs(a) == 1.0, a, ta)
    tb = np.where(np.abs(b) == 1.0, b, tb)
    f = _FACES[face]
    pts: F64 = f[:, 0] + ta[:, None] * f[:, 1] + tb[:, None] * f[:, 2]
    return pts


def _atlas_uv(face: NDArray[np.intp], s: F64, t: F64) -> F64:
    """Atlas UV (glTF convention, v down) of face-local coordinates s, t in [0, 1]."""
    col = (face % 3).astype(np.float64)
    row = (face // 3).astype(np.float64)
    u = (col + _ATLAS_PAD + s * (1 - 2 * _ATLAS_PAD)) / 3.0
    v = (row + _ATLAS_PAD + t * (1 - 2 * _ATLAS_PAD)) / 2.0
    return np.stack([u, v], axis=1)


def _build_mesh(shape: _Shape, n: int) -> tuple[F64, F64, F64, NDArray[np.uint32]]:
    """Positions, normals, UVs and triangle indices of the deformed cube-sphere with n x n quads per face."""
    g = np.linspace(0.0, 1.0, n + 1)
    ss, tt = np.meshgrid(g, g, indexing="ij")  # ss varies along axis 0 (the i index)
    s = np.tile(ss.ravel(), 6)
    t = np.tile(tt.ravel(), 6)
    face = np.repeat(np.arange(6), (n + 1) ** 2)
    cube = _cube_points(face, s * 2 - 1, t * 2 - 1)
    d = cube / np.linalg.norm(cube, axis=1, keepdims=True)
    pos = d * _radius(shape, d)[:, None] * np.asarray(shape.scale)
    pos -= (pos.max(axis=0) + pos.min(axis=0)) / 2
    pos /= np.abs(pos).max()
    uv = _atlas_uv(face, s, t)

    # Two triangles per grid quad; winding chosen per face so every face points outwards.
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    v00 = (i * (n + 1) + j).ravel()
    v10 = v00 + (n + 1)
    v01 = v00 + 1
    v11 = v10 + 1
    quad = np.stack([v00, v10, v11, v00, v11, v01], axis=1).reshape(-1, 3)
    outward = np.einsum("ij,ij->i", np.cross(_FACES[:, 1], _FACES[:, 2]), _FACES[:, 0]) > 0
    tris = []
    for k in range(6):  # six faces, not per-vertex work
        block = quad + k * (n + 1) ** 2
        tris.append(block if outward[k] else block[:, ::-1])
    faces = np.concatenate(tris).astype(np.uint32)

    normals = _welded_normals(pos, faces)
    return pos, normals, uv, faces


def _welded_normals(pos: F64, faces: NDArray[np.uint32]) -> F64:
    """Smooth vertex normals computed as if the seams were welded, so cube-face edges do not show."""
    return welded_normals(pos, faces, np.zeros(len(pos), dtype=np.int64))


def _texel_directions(size: int) -> tuple[F64, NDArray[np.intp]]:
    """Unit sphere direction under every texel of the atlas (invert :func:`_atlas_uv`)."""
    c = (np.arange(size) + 0.5) / size
    u, v = np.meshgrid(c, c, indexing="xy")  # v is the row
    col = np.minimum((u * 3).astype(np.intp), 2)
    row = np.minimum((v * 2).astype(np.intp), 1)
    face = (row * 3 + col).ravel()
    s = np.clip(((u * 3 - col) - _ATLAS_PAD) / (1 - 2 * _ATLAS_PAD), 0.0, 1.0).ravel()
    t = np.clip(((v * 2 - row) - _ATLAS_PAD) / (1 - 2 * _ATLAS_PAD), 0.0, 1.0).ravel()
    cube = _cube_points(face, s * 2 - 1, t * 2 - 1)
    return cube / np.linalg.norm(cube, axis=1, keepdims=True), face


def _textures(shape: _Shape, size: int, pbr: bool) -> list[bytes]:
    """PNG bytes of base colour (+ metallic-roughness and normal maps when ``pbr``)."""
    d64, _ = _texel_directions(size)
    d = d64.astype(np.float32)
    pattern = _noise(shape, d, octave=2.3)
    bands = np.sin(d[:, 1] * 9.0 + pattern * 3.0)
    w1 = np.clip(0.5 + 0.5 * pattern, 0, 1)[:, None]
    w2 = np.clip(bands, 0, 1)[:, None] * 0.35
    p = shape.palette
    colour = p[0] * (1 - w1) + p[1] * w1
    colour = colour * (1 - w2) + p[2] * w2
    height = _noise(shape, d, octave=6.0) * 0.5 + 0.5 * pattern
    if not pbr:
        # "Shaded": lighting baked into the colour (a fixed key light plus a cavity term), no other maps.
        light = np.array([0.4, 0.8, 0.45])
        light /= np.linalg.norm(light)
        lambert = np.clip(d @ light, 0.0, 1.0)
        colour = colour * (0.35 + 0.65 * lambert[:, None]) * (0.85 + 0.15 * height[:, None])
    images = [_png(_to_srgb8(colour).reshape(size, size, 3))]
    if pbr:
        rough = np.clip(0.55 + 0.35 * pattern, 0.05, 1.0)
        metal = np.clip(shape.metal + 0.1 * bands, 0.0, 1.0)
        mr = np.stack([np.ones_like(rough), rough, metal], axis=1)  # glTF: G roughness, B metalness
        images.append(_png(_to8(mr).reshape(size, size, 3)))
        h = height.reshape(size, size)
        gy, gx = np.gradient(h)
        strength = 6.0 * shape.detail
        nrm = np.stack([-gx * strength, gy * strength, np.ones_like(h)], axis=-1)  # +Y = image up
        nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
        images.append(_png(_to8(nrm * 0.5 + 0.5)))
    return images


def _to8(x: F64) -> NDArray[np.uint8]:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def _to_srgb8(linear: F64) -> NDArray[np.uint8]:
    lin = np.clip(linear, 0.0, 1.0)
    srgb = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return _to8(srgb)


def _png(pixels: NDArray[np.uint8]) -> bytes:
    """PNG with fixed encoder settings and no metadata chunks, so equal pixels give equal bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue()


def _pad4(b: bytes, fill: bytes = b"\x00") -> bytes:
    return b + fill * (-len(b) % 4)


def _write_glb(
    pos: F64,
    normals: F64,
    uv: F64,
    faces: NDArray[np.uint32],
    images: list[bytes],
    name: str,
    pbr: bool,
    tangent: F64 | None = None,
) -> bytes:
    """A glTF 2.0 binary with one mesh, one metallic-roughness material and embedded PNG textures.

    ``pbr`` adds the metallic-roughness and normal maps; a normal map needs ``tangent`` (glTF TANGENT,
    xyz + handedness w), so no viewer has to generate a tangent space of its own.
    """
    blobs: list[bytes] = []
    views: list[dict[str, Any]] = []
    offset = 0

    def add_view(data: bytes, target: int | None) -> int:
        nonlocal offset
        view: dict[str, Any] = {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        views.append(view)
        padded = _pad4(data)
        blobs.append(padded)
        offset += len(padded)
        return len(views) - 1

    p32 = np.ascontiguousarray(pos, dtype="<f4")
    n32 = np.ascontiguousarray(normals, dtype="<f4")
    t32 = np.ascontiguousarray(uv, dtype="<f4")
    i32 = np.ascontiguousarray(faces.ravel(), dtype="<u4")
    accessors = [
        {
            "bufferView": add_view(p32.tobytes(), 34962),
            "componentType": 5126,
            "count": len(p32),
            "type": "VEC3",
            "min": [float(x) for x in p32.min(axis=0)],
            "max": [float(x) for x in p32.max(axis=0)],
        },
        {
            "bufferView": add_view(n32.tobytes(), 34962),
            "componentType": 5126,
            "count": len(n32),
            "type": "VEC3",
        },
        {
            "bufferView": add_view(t32.tobytes(), 34962),
            "componentType": 5126,
            "count": len(t32),
            "type": "VEC2",
        },
        {
            "bufferView": add_view(i32.tobytes(), 34963),
            "componentType": 5125,
            "count": len(i32),
            "type": "SCALAR",
        },
    ]
    attributes = {"POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2}
    if pbr:
        if tangent is None:
            raise ValueError("a normal map needs tangents")
        g32 = np.ascontiguousarray(tangent, dtype="<f4")
        attributes["TANGENT"] = len(accessors)
        accessors.append(
            {
                "bufferView": add_view(g32.tobytes(), 34962),
                "componentType": 5126,
                "count": len(g32),
                "type": "VEC4",
            }
        )
    image_entries = [{"bufferView": add_view(png, None), "mimeType": "image/png"} for png in images]
    pbr_block: dict[str, Any] = {"baseColorTexture": {"index": 0}}
    material: dict[str, Any] = {"name": f"{name}-material", "pbrMetallicRoughness": pbr_block}
    if pbr:
        pbr_block["metallicRoughnessTexture"] = {"index": 1}
        pbr_block["metallicFactor"] = 1.0
        pbr_block["roughnessFactor"] = 1.0
        material["normalTexture"] = {"index": 2}
    else:
        pbr_block["metallicFactor"] = 0.0
        pbr_block["roughnessFactor"] = 1.0
    gltf = {
        "asset": {"version": "2.0", "generator": "rodin_nb sandbox meshgen"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "meshes": [
            {
                "name": name,
                "primitives": [
                    {
                        "attributes": attributes,
                        "indices": 3,
                        "material": 0,
                        "mode": 4,
                    }
                ],
            }
        ],
        "materials": [material],
        "samplers": [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}],
        "textures": [{"sampler": 0, "source": k} for k in range(len(images))],
        "images": image_entries,
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": offset}],
    }
    json_chunk = _pad4(json.dumps(gltf, sort_keys=True, separators=(",", ":")).encode(), b" ")
    bin_chunk = b"".join(blobs)
    total = 12 + 8 + len(json_chunk) + 8 + len(bin_chunk)
    return b"".join(
        [
            struct.pack("<4sII", b"glTF", 2, total),
            struct.pack("<I4s", len(json_chunk), b"JSON"),
            json_chunk,
            struct.pack("<I4s", len(bin_chunk), b"BIN\x00"),
            bin_chunk,
        ]
    )


def make_glb(params: dict[str, Any]) -> bytes:
    """A deterministic textured GLB for a generate request.

    Parameters
    ----------
    params:
        The request inputs (wire names). The caller should fill in defaults and resolve the seed
        first so that equivalent requests share one key; ``images`` may hold content digests.
        The prompt's first vocabulary noun picks the object (else the fallback shape); ``tier`` and
        ``quality`` pick the detail, triangle count and texture size (Sketch forces ``medium``);
        ``material`` ``PBR`` adds metallic-roughness and normal textures, ``Shaded`` bakes lighting
        into the base colour.

    Returns
    -------
    bytes
        GLB bytes; identical ``params`` give identical bytes.
    """
    quality = _effective_quality(params)
    tier = _tier(params)
    pbr = str(params.get("material", "PBR")) != "Shaded"
    noun = noun_of(str(params.get("prompt") or ""))
    if noun is not None:
        return _object_glb(params, noun, quality, tier, pbr)
    shape = _shape_for(params)
    pos, normals, uv, faces = _build_mesh(shape, SKETCH_GRID if tier == "Sketch" else QUALITY_GRID[quality])
    images = _textures(shape, TEXTURE_SIZE[tier], pbr)
    tangent = tangents(pos, normals, uv, faces) if pbr else None
    return _write_glb(pos, normals, uv, faces, images, f"rodin-sandbox-shape-{shape.family}", pbr, tangent)


def _object_glb(params: dict[str, Any], noun: str, quality: str, tier: str, pbr: bool) -> bytes:
    """A vocabulary object: parts -> one indexed triangle mesh with an atlas of painted textures."""
    # The design comes from what the user describes and the seed, not from tier or quality, so a seed
    # is one object in every tier (Sketch its basic version) and at every quality.
    design = {k: v for k, v in params.items() if k not in ("tier", "quality", "material", "useHyper")}
    key = canonical_json(design)
    detail = tier == "Regular"
    built_from = compose(noun, _rng(key, "design"), detail)
    parts = built_from.parts
    target = triangle_count(quality, tier)
    counts = allocate(parts, target)
    size = TEXTURE_SIZE[tier]
    margin = 2.5 / size
    islands = pack_atlas([lengths for part in parts for lengths in patch_lengths(part)], margin)
    mesh = build(parts, counts, islands)
    normals = welded_normals(mesh.pos, mesh.faces, mesh.weld)
    pos = mesh.pos - (mesh.pos.max(axis=0) + mesh.pos.min(axis=0)) / 2
    pos /= np.abs(pos).max()
    noise = Noise.make(_rng(key, "texture"))
    colour, mr, nmap, shade_n = atlas_textures(
        parts, islands, built_from.styles, size, margin, noise, detail, shaded=not pbr
    )
    if not pbr:
        light = np.array([0.4, 0.8, 0.45])
        lambert = np.clip(shade_n @ (light / np.linalg.norm(light)), 0.0, 1.0)
        colour = colour * (0.35 + 0.65 * lambert[..., None])
    images = [_png(_to_srgb8(colour))]
    tangent = None
    if pbr:
        strength = 1.6 if uses_hyper(params) else 1.0
        nmap = nmap * np.array([strength, strength, 1.0])
        nmap /= np.linalg.norm(nmap, axis=-1, keepdims=True)
        ones = np.ones(mr.shape[:2])
        images.append(_png(_to8(np.stack([ones, mr[..., 0], mr[..., 1]], axis=-1))))
        images.append(_png(_to8(nmap * 0.5 + 0.5)))
        tangent = tangents(pos, normals, mesh.uv, mesh.faces)
    return _write_glb(pos, normals, mesh.uv, mesh.faces, images, f"rodin-sandbox-{noun}", pbr, tangent)


def make_preview(glb_bytes: bytes, size: int = 256) -> bytes:
    """A small deterministic PNG view of a GLB: the toolkit's offline preview renderer.

    The sandbox's previews come from the same path as every other preview in rodin_nb
    (:func:`rodin_nb.preview.render_png`: VTK off-screen, or its numpy fallback where VTK or a GL
    platform is missing), so what the sandbox serves is what a real result's preview looks like.
    Same bytes in, same PNG out (fixed camera, lights and encoder settings).
    """
    from ..preview import render_png

    return render_png(glb_bytes, size=size)
