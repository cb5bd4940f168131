"""Parametric parts for the sandbox's procedural objects: closed surfaces made of (u, v) grid patches.

A :class:`Part` is one closed solid (a leg, a seat, a teapot's body) built from one or more
:class:`Patch` es. A patch is a vectorised function ``(u, v) in [0, 1]^2 -> xyz``; the mesh samples it on
a grid and the texture samples it under every texel of the patch's atlas island, so geometry, UVs and
textures come from one description and meet without seams. Patches of one part share their segment
counts through the part's *axes* (a box's three edge directions; a solid of revolution's "around"
and its profile pieces), so neighbouring patches share their boundary vertices and each part is closed.

Sharp edges are patch boundaries (normals are welded within a part's patch only where ``smooth``);
Regular's bevels are real rounded geometry, so its parts are one smooth patch group each.

Everything is vectorised numpy: no per-vertex or per-texel Python loop; the loops run over parts and
patches (tens to a few hundred).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
Fn = Callable[[F64, F64], F64]

__all__ = [
    "Part",
    "Patch",
    "Placement",
    "allocate",
    "box",
    "build",
    "pack_atlas",
    "patch_lengths",
    "revolve",
    "tangents",
    "tube",
    "welded_normals",
]


@dataclass(frozen=True)
class Placement:
    """A rigid placement with per-axis scale: ``world = R @ (scale * local) + t``."""

    t: tuple[float, float, float] = (0.0, 0.0, 0.0)
    r: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))  # rows

    def apply(self, p: F64) -> F64:
        out: F64 = p @ np.asarray(self.r).T + np.asarray(self.t)
        return out

    @staticmethod
    def at(
        x: float, y: float, z: float, rot_x: float = 0.0, rot_y: float = 0.0, rot_z: float = 0.0
    ) -> Placement:
        """Translate to (x, y, z) after rotating (radians) about X, then Y, then Z."""
        cx, sx = math.cos(rot_x), math.sin(rot_x)
        cy, sy = math.cos(rot_y), math.sin(rot_y)
        cz, sz = math.cos(rot_z), math.sin(rot_z)
        rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
        m = rz @ ry @ rx
        rows = tuple((float(a), float(b), float(c)) for a, b, c in m)
        return Placement((x, y, z), rows)


@dataclass(frozen=True)
class Patch:
    fn: Fn
    au: int  # part axis whose segment count the u direction uses
    av: int
    wrap_u: bool = False


@dataclass
class Part:
    """One closed solid: patches, shared segment axes ``(length, minimum segments)`` and a style slot."""

    patches: list[Patch]
    axes: list[tuple[float, int]]
    slot: int
    smooth: bool = True  # weld normals across this part's patch boundaries
    grain: tuple[float, float, float] = (0.0, 1.0, 0.0)  # texture direction (wood grain, bark, brushing)


# ---------------------------------------------------------------------------- primitives


def _weighted_params(pts: F64, turn_weight: float) -> F64:
    """Cumulative parameter along a polyline: arc length plus a weight per radian of turning.

    The weight puts grid lines where a profile bends (bevels, lips), not only where it is long.
    """
    seg = np.diff(pts, axis=0)
    lengths = np.linalg.norm(seg, axis=1)
    unit = seg / np.maximum(lengths, 1e-12)[:, None]
    cosang = np.clip(np.einsum("ij,ij->i", unit[:-1], unit[1:]), -1.0, 1.0)
    turn = np.concatenate([[0.0], np.arccos(cosang)])  # turning at the start of each segment
    out: F64 = np.concatenate([[0.0], np.cumsum(lengths + turn * turn_weight)])
    return out


def _fillet(prof: F64, radius: float, threshold: float) -> F64:
    """Round every interior corner sharper than ``threshold`` radians with a quadratic Bezier."""
    out = [prof[0]]
    for i in range(1, len(prof) - 1):
        a, p, b = prof[i - 1], prof[i], prof[i + 1]
        din, dout = p - a, b - p
        lin, lout = float(np.linalg.norm(din)), float(np.linalg.norm(dout))
        if lin < 1e-9 or lout < 1e-9:
            continue
        ang = math.acos(float(np.clip(np.dot(din, dout) / (lin * lout), -1.0, 1.0)))
        if ang < threshold or radius <= 0:
            out.append(p)
            continue
        d = min(radius, 0.45 * lin, 0.45 * lout)
        s, e = p - din / lin * d, p + dout / lout * d
        t = np.linspace(0.0, 1.0, 7)[:, None]
        out.extend(((1 - t) ** 2 * s + 2 * (1 - t) * t * p + t**2 * e)[:])
    out.append(prof[-1])
    return np.asarray(out, dtype=np.float64)


def _split_sharp(prof: F64, threshold: float) -> list[F64]:
    """Cut a profile at corners sharper than ``threshold`` radians (Sketch: sharp edges)."""
    pieces: list[F64] = []
    start = 0
    for i in range(1, len(prof) - 1):
        din, dout = prof[i] - prof[i - 1], prof[i + 1] - prof[i]
        n = float(np.linalg.norm(din) * np.linalg.norm(dout))
        if n < 1e-18:
            continue
        if math.acos(float(np.clip(np.dot(din, dout) / n, -1.0, 1.0))) >= threshold:
            pieces.append(prof[start : i + 1])
            start = i
    pieces.append(prof[start:])
    return [p for p in pieces if len(p) >= 2]


def revolve(
    profile: Sequence[Sequence[float]],
    place: Placement,
    slot: int,
    *,
    bevel: float,
    min_around: int,
    sx: float = 1.0,
    sz: float = 1.0,
    warp: Callable[[F64], F64] | None = None,
) -> Part:
    """A solid of revolution about the local Y axis.

    ``profile`` is ``(radius, y)`` from the bottom pole to the top pole (radius 0 at both ends), going
    outwards first, so the surface faces outwards. ``bevel > 0`` rounds corners (Regular, one smooth
    patch); ``bevel == 0`` keeps them sharp by cutting the profile into patches (Sketch).
    ``sx``/``sz`` squash the section into an ellipse; ``warp`` displaces the finished points.
    """
    prof = np.asarray(profile, dtype=np.float64)
    thr = math.radians(35)
    pieces = [_fillet(prof, bevel, thr)] if bevel > 0 else _split_sharp(prof, thr)
    size = float(np.ptp(prof, axis=0).max()) or 1.0
    around = 2 * math.pi * float(prof[:, 0].max()) * 0.5 * (sx + sz)
    axes: list[tuple[float, int]] = [(around, min_around)]
    patches: list[Patch] = []
    for piece in pieces:
        s = _weighted_params(piece, 0.12 * size)
        total = float(s[-1])
        axes.append((total, max(1, len(piece) // 8)))

        def fn(u: F64, v: F64, piece: F64 = piece, s: F64 = s, total: float = total) -> F64:
            sv = v * total
            r = np.interp(sv, s, piece[:, 0])
            y = np.interp(sv, s, piece[:, 1])
            th = 2 * math.pi * u
            local = np.stack([r * np.cos(th) * sx, y, -r * np.sin(th) * sz], axis=-1)
            out = place.apply(local)
            return warp(out) if warp is not None else out

        patches.append(Patch(fn, 0, len(axes) - 1, wrap_u=True))
    return Part(patches, axes, slot, smooth=bevel > 0 or len(pieces) == 1, grain=_y_axis(place))


def _y_axis(place: Placement) -> tuple[float, float, float]:
    col = np.asarray(place.r)[:, 1]
    return (float(col[0]), float(col[1]), float(col[2]))


# (u axis, v axis, normal) of each box face; cross(u, v) == normal, so every face points outwards.
_BOX_FACES = (
    ((0, 0, -1), (0, 1, 0), (1, 0, 0)),
    ((0, 0, 1), (0, 1, 0), (-1, 0, 0)),
    ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
    ((1, 0, 0), (0, 0, 1), (0, -1, 0)),
    ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    ((-1, 0, 0), (0, 1, 0), (0, 0, -1)),
)


def _edge_coordinate(h: float, r: float, turn_weight: float) -> tuple[F64, F64]:
    """Knots mapping a face parameter in [0, 1] to a coordinate in [-h, h], denser over the bevels."""
    if r <= 0:
        return np.array([0.0, 1.0]), np.array([-h, h])
    arc = math.pi / 4 * r + math.pi / 4 * turn_weight
    flat = max(2 * (h - r), 1e-9)
    w = np.array([0.0, arc, arc + flat, 2 * arc + flat])
    return w / w[-1], np.array([-h, -h + r, h - r, h])


def box(
    size: Sequence[float],
    place: Placement,
    slot: int,
    *,
    bevel: float,
    taper: float = 1.0,
    taper_x: bool = True,
    min_seg: int = 1,
    grain: Sequence[float] | None = None,
) -> Part:
    """A box (``size`` = full extents) with rounded edges of radius ``bevel`` (0: sharp, Sketch).

    ``taper`` scales Z (and X unless ``taper_x`` is false) linearly up the box's height: 1 at the
    bottom, ``taper`` at the top (0 makes a prism: a gable, a fin).
    """
    half = np.asarray(size, dtype=np.float64) / 2
    r = float(min(bevel, 0.45 * half.min()))
    tw = 0.12 * float(half.max())
    knots = [_edge_coordinate(float(h), r, tw) for h in half]
    inner = half - r
    patches: list[Patch] = []
    axis_of = {0: 0, 1: 1, 2: 2}
    for ua, va, nrm in _BOX_FACES:
        if taper == 0.0 and nrm[1] == 1:
            continue  # a prism: the top face is the ridge line, the sloped faces meet there
        uax = int(np.argmax(np.abs(ua)))
        vax = int(np.argmax(np.abs(va)))
        nax = int(np.argmax(np.abs(nrm)))

        def fn(
            u: F64,
            v: F64,
            ua: tuple[int, ...] = ua,
            va: tuple[int, ...] = va,
            nrm: tuple[int, ...] = nrm,
            uax: int = uax,
            vax: int = vax,
            nax: int = nax,
        ) -> F64:
            p = np.zeros((*u.shape, 3))
            pu = np.interp(u, *knots[uax]) * ua[uax]
            pv = np.interp(v, *knots[vax]) * va[vax]
            p[..., uax] = pu
            p[..., vax] = pv
            p[..., nax] = half[nax] * nrm[nax]
            if r > 0:
                q = np.clip(p, -inner, inner)
                d = p - q
                p = q + r * d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
            if taper != 1.0:
                f = 1.0 + (taper - 1.0) * (p[..., 1:2] + half[1]) / (2 * half[1])
                fx = f if taper_x else np.ones_like(f)
                p = p * np.concatenate([fx, np.ones_like(f), f], axis=-1)
            return place.apply(p)

        patches.append(Patch(fn, axis_of[uax], axis_of[vax]))
    extra = 2 * (math.pi / 2) * r
    axes = [(float(2 * h - 2 * r + extra), min_seg + (2 if r > 0 else 0)) for h in half]
    g = grain if grain is not None else np.asarray(place.r)[:, int(np.argmax(half))]
    return Part(patches, axes, slot, smooth=r > 0, grain=(float(g[0]), float(g[1]), float(g[2])))


def tube(
    points: Sequence[Sequence[float]] | F64,
    radii: Sequence[float] | float | F64,
    place: Placement,
    slot: int,
    *,
    min_around: int,
) -> Part:
    """A round tube along a smooth polyline with rounded end caps (handles, spouts, branches, arms)."""
    pts = np.asarray(points, dtype=np.float64)
    rad = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(pts),)).copy()
    tan = np.gradient(pts, axis=0)
    tan /= np.maximum(np.linalg.norm(tan, axis=1, keepdims=True), 1e-12)
    # Rounded caps: quarter circles of points beyond each end, radius shrinking to 0.
    phi = np.linspace(0.0, math.pi / 2, 6)[1:]
    start = pts[0] - tan[0] * (rad[0] * np.sin(phi))[:, None]
    end = pts[-1] + tan[-1] * (rad[-1] * np.sin(phi))[:, None]
    pts = np.concatenate([start[::-1], pts, end])
    rad = np.concatenate([(rad[0] * np.cos(phi))[::-1], rad, rad[-1] * np.cos(phi)])
    tan = np.concatenate([np.repeat(tan[:1], len(phi), 0), tan, np.repeat(tan[-1:], len(phi), 0)])
    # Parallel-transported frames.
    ref = np.array([0.0, 0.0, 1.0]) if abs(tan[0, 2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    nrm = np.empty_like(pts)
    n = ref - tan[0] * np.dot(ref, tan[0])
    for i in range(len(pts)):  # one step per centreline sample (tens), not per vertex
        n = n - tan[i] * np.dot(n, tan[i])
        n /= max(float(np.linalg.norm(n)), 1e-12)
        nrm[i] = n
    bin_ = np.cross(tan, nrm)
    s = _weighted_params(pts, 0.0)
    total = float(s[-1])

    def fn(u: F64, v: F64) -> F64:
        sv = v * total
        c = np.stack([np.interp(sv, s, pts[:, k]) for k in range(3)], axis=-1)
        nn = np.stack([np.interp(sv, s, nrm[:, k]) for k in range(3)], axis=-1)
        bb = np.stack([np.interp(sv, s, bin_[:, k]) for k in range(3)], axis=-1)
        r = np.interp(sv, s, rad)[..., None]
        th = 2 * math.pi * u[..., None]
        return place.apply(c + r * (np.cos(th) * nn + np.sin(th) * bb))

    around = 2 * math.pi * float(rad.max())
    g = place.apply(pts[-1:])[0] - place.apply(pts[:1])[0]
    g /= max(float(np.linalg.norm(g)), 1e-12)
    return Part([Patch(fn, 0, 1, wrap_u=True)], [(around, min_around), (total, 2)], slot, True, tuple(g))


# ---------------------------------------------------------------------------- mesh


def allocate(parts: Sequence[Part], target: int) -> list[list[int]]:
    """Segments per part axis so the total triangle count is close to ``target`` (uniform density)."""

    def counts(k: float) -> list[list[int]]:
        return [[max(mn, round(k * length)) for length, mn in part.axes] for part in parts]

    def total(c: list[list[int]]) -> int:
        return sum(2 * ci[p.au] * ci[p.av] for part, ci in zip(parts, c, strict=True) for p in part.patches)

    lo, hi = 0.0, 1.0
    while total(counts(hi)) < target and hi < 1e6:
        hi *= 2
    for _ in range(40):
        mid = (lo + hi) / 2
        if total(counts(mid)) < target:
            lo = mid
        else:
            hi = mid
    a, b = counts(lo), counts(hi)
    return a if abs(total(a) - target) <= abs(total(b) - target) else b


@dataclass(frozen=True)
class Island:
    """A patch's rectangle in the texture atlas (UV units, glTF convention: v down)."""

    x: float
    y: float
    w: float
    h: float


def pack_atlas(sizes: Sequence[tuple[float, float]], margin: float) -> list[Island]:
    """Shelf-pack rectangles of the given relative (w, h) into the unit square, as large as they fit.

    Every rectangle keeps ``margin`` of empty space on each side (texture filtering must not bleed).
    """
    wh = np.asarray(sizes, dtype=np.float64)
    order = np.argsort(-wh[:, 1], kind="stable")

    def place(scale: float) -> list[Island] | None:
        out: list[Island | None] = [None] * len(wh)
        x = y = row_h = 0.0
        for i in order:
            w, h = wh[i] * scale
            if x + w + 2 * margin > 1.0 and x > 0:
                y += row_h
                x = row_h = 0.0
            if x + w + 2 * margin > 1.0 or y + h + 2 * margin > 1.0:
                return None
            out[i] = Island(x + margin, y + margin, float(w), float(h))
            x += w + 2 * margin
            row_h = max(row_h, h + 2 * margin)
        return [o for o in out if o is not None]

    lo, hi = 0.0, 1.0 / max(float(wh.max()), 1e-9)
    for _ in range(30):
        mid = (lo + hi) / 2
        if place(mid) is None:
            hi = mid
        else:
            lo = mid
    result = place(lo)
    assert result is not None
    return result


def patch_lengths(part: Part) -> list[tuple[float, float]]:
    """World lengths along u and v of each patch (mean over a coarse grid), for atlas proportions."""
    g = np.linspace(0.0, 1.0, 9)
    uu, vv = np.meshgrid(g, g, indexing="ij")
    out = []
    for p in part.patches:
        pts = p.fn(uu, vv)
        lu = float(np.linalg.norm(np.diff(pts, axis=0), axis=-1).sum(axis=0).mean())
        lv = float(np.linalg.norm(np.diff(pts, axis=1), axis=-1).sum(axis=1).mean())
        out.append((max(lu, 1e-3), max(lv, 1e-3)))
    return out


@dataclass
class Built:
    """Vertex arrays of every part, one indexed triangle list."""

    pos: F64
    uv: F64
    faces: NDArray[np.uint32]
    weld: NDArray[np.int64]  # per vertex: normals are averaged over vertices sharing (weld, position)


def build(parts: Sequence[Part], counts: list[list[int]], islands: Sequence[Island]) -> Built:
    """Sample every patch on its grid; two triangles per grid cell, minus the zero-area ones (poles,
    collapsed faces), and no vertex that no triangle uses."""
    pos_l: list[F64] = []
    uv_l: list[F64] = []
    face_l: list[NDArray[np.int64]] = []
    weld_l: list[NDArray[np.int64]] = []
    base = 0
    k = 0
    for pi, (part, ci) in enumerate(zip(parts, counts, strict=True)):
        for qi, patch in enumerate(part.patches):
            nu, nv = ci[patch.au], ci[patch.av]
            gu = np.linspace(0.0, 1.0, nu + 1)
            gv = np.linspace(0.0, 1.0, nv + 1)
            uu, vv = np.meshgrid(gu, gv, indexing="ij")
            pts = patch.fn(uu, vv).reshape(-1, 3)
            isl = islands[k]
            k += 1
            uv = np.stack([isl.x + uu.ravel() * isl.w, isl.y + vv.ravel() * isl.h], axis=1)
            i, j = np.meshgrid(np.arange(nu), np.arange(nv), indexing="ij")
            v00 = (i * (nv + 1) + j).ravel()
            v10 = v00 + (nv + 1)
            tri = np.stack([v00, v10, v10 + 1, v00, v10 + 1, v00 + 1], axis=1).reshape(-1, 3)
            a = pts[tri]
            area = np.linalg.norm(np.cross(a[:, 1] - a[:, 0], a[:, 2] - a[:, 0]), axis=1)
            tri = tri[area > 1e-12]
            used = np.zeros(len(pts), dtype=bool)
            used[tri.ravel()] = True
            if not used.all():  # a collapsed face (a prism's ridge) keeps no vertex of its own
                tri = (np.cumsum(used) - 1)[tri]
                pts, uv = pts[used], uv[used]
            pos_l.append(pts)
            uv_l.append(uv)
            face_l.append(tri + base)
            weld_l.append(np.full(len(pts), pi * 1000 + (0 if part.smooth else qi), dtype=np.int64))
            base += len(pts)
    return Built(
        np.concatenate(pos_l),
        np.concatenate(uv_l),
        np.concatenate(face_l).astype(np.uint32),
        np.concatenate(weld_l),
    )


def weld_index(pos: F64, weld: NDArray[np.int64]) -> NDArray[np.int64]:
    """Per vertex, an index shared by vertices of one weld group at one position (to 1e-6).

    A 64-bit hash of (group, quantised xyz) with a 1-D ``np.unique`` (several times faster than
    ``unique(axis=0)``); a collision would need two 64-bit hashes to meet.
    """
    q = np.round(pos * 1e6).astype(np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = weld.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        for c in range(3):
            h = (h ^ q[:, c]) * np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(31)
    _, inverse = np.unique(h, return_inverse=True)
    out: NDArray[np.int64] = inverse.ravel().astype(np.int64)
    return out


def welded_normals(pos: F64, faces: NDArray[np.uint32], weld: NDArray[np.int64]) -> F64:
    """Area-weighted vertex normals, shared by vertices of one weld group at one position (seams, poles)."""
    inverse = weld_index(pos, weld)
    tri = pos[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    welded = inverse[faces]
    m = int(inverse.max()) + 1
    acc: F64 = np.stack(
        [np.bincount(welded.ravel(), weights=np.repeat(fn[:, c], 3), minlength=m) for c in range(3)], axis=1
    ).astype(np.float64)
    acc /= np.maximum(np.linalg.norm(acc, axis=1, keepdims=True), 1e-12)
    out: F64 = acc[inverse]
    return out


def tangents(pos: F64, normals: F64, uv: F64, faces: NDArray[np.uint32]) -> F64:
    """glTF TANGENT (xyz unit, w = +-1): x follows increasing texture u, ``cross(n, t) * w`` decreasing v.

    The normal maps here encode +Y as "up" in the image (decreasing glTF v), the spec's convention.
    Per-triangle tangents from UV derivatives, accumulated per vertex and orthogonalised to the normal.
    """
    p = pos[faces]
    t = uv[faces]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    d1, d2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    r = np.where(np.abs(det) > 1e-20, 1.0 / np.where(det == 0, 1.0, det), 0.0)[:, None]
    du = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * r  # dP/du
    dv = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) * r  # dP/dv
    n = len(pos)
    flat = faces.ravel()
    acc_u = np.stack([np.bincount(flat, np.repeat(du[:, c], 3), minlength=n) for c in range(3)], axis=1)
    acc_v = np.stack([np.bincount(flat, np.repeat(dv[:, c], 3), minlength=n) for c in range(3)], axis=1)
    tt = acc_u - normals * np.einsum("ij,ij->i", acc_u, normals)[:, None]
    norm = np.linalg.norm(tt, axis=1)
    # Where u has no direction (a pole), any unit vector perpendicular to the normal will do.
    axis = np.where(np.abs(normals[:, :1]) < 0.9, np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]))
    fallback: F64 = np.cross(normals, axis).astype(np.float64)
    tt = np.where((norm > 1e-9)[:, None], tt / np.maximum(norm, 1e-12)[:, None], fallback).astype(np.float64)
    tt /= np.maximum(np.linalg.norm(tt, axis=1, keepdims=True), 1e-12)
    w = np.where(np.einsum("ij,ij->i", np.cross(normals, tt), -acc_v) < 0, -1.0, 1.0)
    out: F64 = np.concatenate([tt, w[:, None]], axis=1)
    return out
