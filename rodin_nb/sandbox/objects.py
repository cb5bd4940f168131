"""The sandbox's procedural vocabulary: recognisable objects for common nouns in a prompt.

:func:`noun_of` finds the first known noun in a prompt (whole words, case-insensitive, simple plurals);
:func:`compose` builds that object from :mod:`.parts` primitives (boxes, solids of revolution, tubes),
varied by seed (proportions, counts, colours). ``detail`` is the tier: Regular adds the finer parts
(slats, stretchers, lids, knobs, windows, hubcaps...), rounded bevels and patterned textures (wood
grain, bricks, glaze bands, brushed metal) with a normal map; Sketch keeps the basic composition with
sharp edges and flat colours. :func:`atlas_textures` paints the texture atlas by evaluating every
patch under its island's texels, so patterns are solid 3D patterns that meet across seams.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .parts import F64, Island, Part, Placement, box, revolve, tube

__all__ = ["NOUNS", "Style", "atlas_textures", "compose", "noun_of"]

at = Placement.at


@dataclass(frozen=True)
class Style:
    """How one material slot looks: linear RGB base colour, roughness, metalness and a pattern."""

    colour: tuple[float, float, float]
    pattern: str = "plain"
    rough: float = 0.6
    metal: float = 0.0
    accent: tuple[float, float, float] = (0.0, 0.0, 0.0)  # second colour of a pattern (grain, mortar)


@dataclass
class Builder:
    """Collects parts and styles for one object; ``detail`` is True for Regular.

    Rule for builders: draw the shared design (proportions, colours, counts) before any draw made only
    for Regular's extra parts, so one seed is one design in both tiers (Sketch its basic version).
    """

    rng: np.random.Generator
    detail: bool
    parts: list[Part] = field(default_factory=list)
    styles: list[Style] = field(default_factory=list)

    # -- styles
    def style(self, colour: tuple[float, float, float], pattern: str = "plain", **kw: float) -> int:
        jitter = self.rng.uniform(0.85, 1.15, size=3)
        c = tuple(float(min(1.0, x * j)) for x, j in zip(colour, jitter, strict=True))
        accent = kw.pop("accent_scale", 0.45)
        self.styles.append(
            Style((c[0], c[1], c[2]), pattern, accent=(c[0] * accent, c[1] * accent, c[2] * accent), **kw)
        )
        return len(self.styles) - 1

    def pick(self, options: list[tuple[float, float, float]]) -> tuple[float, float, float]:
        return options[int(self.rng.integers(len(options)))]

    # -- geometry (bevels and minimum segment counts follow the tier)
    @property
    def bevel(self) -> float:
        return 0.012 if self.detail else 0.0

    @property
    def around(self) -> int:
        return 16 if self.detail else 8

    def box(self, size: tuple[float, float, float], place: Placement, slot: int, **kw: float) -> None:
        bevel = kw.pop("bevel", self.bevel)
        self.parts.append(box(size, place, slot, bevel=bevel if self.detail else 0.0, **kw))  # type: ignore[arg-type]

    def revolve(
        self, profile: list[tuple[float, float]] | F64, place: Placement, slot: int, **kw: float
    ) -> None:
        bevel = kw.pop("bevel", self.bevel)
        self.parts.append(
            revolve(profile, place, slot, bevel=bevel if self.detail else 0.0, min_around=self.around, **kw)  # type: ignore[arg-type]
        )

    def cylinder(self, r: float, h: float, place: Placement, slot: int, r_top: float | None = None) -> None:
        rt = r if r_top is None else r_top
        self.revolve([(0.0, 0.0), (r, 0.0), (rt, h), (0.0, h)], place, slot, bevel=min(self.bevel, r * 0.3))

    def sphere(self, r: float, place: Placement, slot: int, squash: float = 1.0, **kw: float) -> None:
        a = np.linspace(-math.pi / 2, math.pi / 2, 17)
        self.revolve(np.stack([r * np.cos(a), r * squash * np.sin(a)], axis=1), place, slot, **kw)

    def rod(self, points: Sequence[Any] | F64, r: float, slot: int) -> None:
        """A round bar through ``points`` (two points: a straight one)."""
        pts = np.asarray(points, dtype=np.float64)
        if len(pts) == 2:
            pts = pts[0] + np.linspace(0.0, 1.0, 4)[:, None] * (pts[1] - pts[0])
        self.parts.append(tube(pts, r, Placement(), slot, min_around=self.around))

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))


WOODS = [(0.30, 0.14, 0.05), (0.45, 0.25, 0.10), (0.18, 0.08, 0.03), (0.55, 0.38, 0.20)]
PAINTS = [(0.55, 0.04, 0.03), (0.03, 0.12, 0.45), (0.05, 0.30, 0.10), (0.70, 0.50, 0.05), (0.6, 0.6, 0.6)]
GLAZES = [(0.05, 0.20, 0.45), (0.60, 0.25, 0.08), (0.08, 0.35, 0.30), (0.75, 0.72, 0.65), (0.40, 0.05, 0.10)]
FABRICS = [(0.35, 0.05, 0.05), (0.10, 0.18, 0.35), (0.45, 0.40, 0.30), (0.15, 0.30, 0.15)]


def _curve(ctrl: list[tuple[float, float]], n: int) -> F64:
    """A smooth (r, y) profile through control points (Catmull-Rom), ``n`` samples per span."""
    p = np.asarray(ctrl, dtype=np.float64)
    p = np.concatenate([p[:1], p, p[-1:]])
    t = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        a, b, c, d = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5 * (2 * b + (c - a) * t + (2 * a - 5 * b + 4 * c - d) * t**2 + (3 * b - a - 3 * c + d) * t**3)
        )
    out.append(p[-2:-1])
    return np.concatenate(out)


# ---------------------------------------------------------------------------- the vocabulary


def _chair(b: Builder) -> None:
    w, d, sh = b.u(0.42, 0.55), b.u(0.40, 0.50), b.u(0.42, 0.48)
    back_h, lt, st = b.u(0.38, 0.55), b.u(0.035, 0.05), 0.04
    wood = b.style(b.pick(WOODS), "wood", rough=0.55)
    b.box((w, st, d), at(0, sh - st / 2, 0), wood)
    round_legs = b.rng.random() < 0.5
    x, zf, zb = w / 2 - lt, d / 2 - lt, -(d / 2 - lt)
    for sx in (-1, 1):
        if round_legs and b.detail:  # turned legs
            b.revolve(_curve([(0.0, 0.0), (lt * 0.5, 0.0), (lt * 0.6, 0.15), (lt * 0.9, 0.30),
                              (lt * 0.6, sh - st - 0.05), (lt * 0.7, sh - st), (0.0, sh - st)], 4),
                      at(sx * x, 0, zf), wood, bevel=0.004)  # fmt: skip
        elif round_legs:
            b.cylinder(lt * 0.6, sh - st, at(sx * x, 0, zf), wood)
        else:
            b.box((lt, sh - st, lt), at(sx * x, (sh - st) / 2, zf), wood, taper=0.8)
        b.box((lt, sh + back_h, lt), at(sx * x, (sh + back_h) / 2, zb), wood)  # back post
    rail_h = 0.06
    if b.detail:
        b.box((w - 2 * lt, rail_h, lt * 0.7), at(0, sh + back_h - rail_h, zb), wood)
        if b.rng.random() < 0.5:  # vertical slats
            n = int(b.rng.integers(3, 6))
            for i in range(n):
                xi = (i + 1) / (n + 1) * (2 * x) - x
                b.box((0.025, back_h - rail_h * 1.5, 0.015), at(xi, sh + (back_h - rail_h) / 2, zb), wood)
        else:  # horizontal rails
            n = int(b.rng.integers(2, 4))
            for i in range(n):
                yi = sh + (i + 1) / (n + 1) * (back_h - rail_h)
                b.box((w - 2 * lt, 0.035, lt * 0.5), at(0, yi, zb), wood)
        ys = b.u(0.10, 0.16)  # stretchers
        for sx in (-1, 1):
            b.rod([(sx * x, ys, zf), (sx * x, ys, zb)], lt * 0.28, wood)
        b.rod([(-x, ys + 0.03, zf), (x, ys + 0.03, zf)], lt * 0.28, wood)
        if b.rng.random() < 0.5:  # a cushion
            cushion = b.style(b.pick(FABRICS), "fabric", rough=0.9)
            b.box((w * 0.92, 0.05, d * 0.9), at(0, sh + 0.02, 0.01), cushion, bevel=0.022)
    else:
        b.box((w - 2 * lt, back_h * 0.6, 0.025), at(0, sh + back_h * 0.65, zb), wood)


def _table(b: Builder) -> None:
    wood = b.style(b.pick(WOODS), "wood", rough=0.5)
    h, t = b.u(0.70, 0.78), 0.045
    if b.rng.random() < 0.6:  # rectangular, four legs
        w, d, lt = b.u(1.1, 1.6), b.u(0.7, 0.95), b.u(0.05, 0.07)
        b.box((w, t, d), at(0, h - t / 2, 0), wood, bevel=0.015)
        x, z = w / 2 - lt * 1.2, d / 2 - lt * 1.2
        for sx in (-1, 1):
            for sz in (-1, 1):
                b.box((lt, h - t, lt), at(sx * x, (h - t) / 2, sz * z), wood, taper=0.75 if b.detail else 1.0)
        if b.detail:  # apron
            for sz in (-1, 1):
                b.box((2 * x, 0.08, 0.02), at(0, h - t - 0.04, sz * z), wood)
            for sx in (-1, 1):
                b.box((0.02, 0.08, 2 * z), at(sx * x, h - t - 0.04, 0), wood)
    else:  # round, one pedestal
        r = b.u(0.45, 0.65)
        b.cylinder(r, t, at(0, h - t, 0), wood)
        if b.detail:
            b.revolve(_curve([(0.0, 0.0), (0.06, 0.0), (0.05, 0.10), (0.09, 0.25), (0.05, h - t - 0.1),
                              (0.07, h - t), (0.0, h - t)], 5), at(0, 0, 0), wood, bevel=0.005)  # fmt: skip
            n = int(b.rng.integers(3, 5))
            for i in range(n):
                a = 2 * math.pi * i / n
                b.rod(_arc_leg(a, r * 0.6), 0.025, wood)
        else:
            b.cylinder(0.06, h - t, at(0, 0, 0), wood)
            b.cylinder(r * 0.55, 0.04, at(0, 0, 0), wood)


def _arc_leg(angle: float, reach: float) -> F64:
    s = np.linspace(0.0, 1.0, 10)
    radial = 0.05 + reach * s
    y = 0.22 * (1 - s) ** 2 + 0.02
    return np.stack([radial * np.cos(angle), y, radial * np.sin(angle)], axis=1)


def _lamp(b: Builder) -> None:
    metal = b.style(
        b.pick([(0.75, 0.55, 0.25), (0.6, 0.6, 0.62), (0.05, 0.05, 0.05)]), "metal", rough=0.3, metal=0.9
    )
    shade = b.style(b.pick([(0.85, 0.80, 0.65), (0.70, 0.20, 0.10), (0.20, 0.35, 0.30)]), "fabric", rough=0.9)
    base_r, stem_h, bulge = b.u(0.12, 0.18), b.u(0.35, 0.55), b.u(0.05, 0.10)
    top, bot, sh_h = b.u(0.08, 0.16), b.u(0.18, 0.28), b.u(0.22, 0.32)
    if b.detail:
        b.revolve(_curve([(0.0, 0.0), (base_r, 0.0), (base_r, 0.025), (base_r * 0.5, 0.06), (0.02, 0.08),
                          (0.0, 0.08)], 5), at(0, 0, 0), metal, bevel=0.006)  # fmt: skip
        stem = [(0.0, 0.0), (0.02, 0.0), (bulge, stem_h * 0.35), (0.015, stem_h * 0.8), (0.012, stem_h)]
        b.revolve(_curve([*stem, (0.0, stem_h)], 6), at(0, 0.06, 0), metal, bevel=0.003)
    else:
        b.cylinder(base_r, 0.04, at(0, 0, 0), metal)
        b.cylinder(0.015, stem_h, at(0, 0.04, 0), metal)
    y0 = stem_h - sh_h * 0.35
    b.cylinder(bot, sh_h, at(0, y0, 0), shade, r_top=top)
    if b.detail:
        bulb = b.style((1.0, 0.9, 0.6), "plain", rough=0.2)
        b.sphere(0.05, at(0, y0 + 0.02, 0), bulb)
        b.sphere(0.02, at(0, y0 + sh_h + 0.03, 0), metal)  # finial
        b.rod([(bot * 0.6, y0 + 0.02, 0), (bot * 0.6, y0 - 0.12, 0)], 0.003, metal)  # pull chain
        b.sphere(0.012, at(bot * 0.6, y0 - 0.12, 0), metal)


def _vase(b: Builder) -> None:
    glaze = b.style(b.pick(GLAZES), "ceramic", rough=0.25)
    h = b.u(0.9, 1.4)
    foot, belly, neck, lip = b.u(0.15, 0.25), b.u(0.3, 0.45), b.u(0.08, 0.16), b.u(0.12, 0.25)
    bh = b.u(0.25, 0.5)
    ctrl = [(foot, 0.0), (belly, h * bh), (neck, h * 0.8), (lip, h)]
    if b.detail:
        outer = _curve(ctrl, 12)
        inner = [(lip - 0.025, h), (neck - 0.02, h * 0.8), (0.0, h * 0.7)]
        prof = np.concatenate([[[0.0, 0.0]], outer, inner])
        b.revolve(prof, at(0, 0, 0), glaze, bevel=0.01)
    else:  # a coarse, faceted profile, closed at the top
        outer = _curve(ctrl, 2)
        b.revolve(np.concatenate([[[0.0, 0.0]], outer, [[0.0, h]]]), at(0, 0, 0), glaze)


def _teapot(b: Builder) -> None:
    glaze = b.style(b.pick(GLAZES), "ceramic", rough=0.2)
    r, hh = b.u(0.45, 0.6), b.u(0.55, 0.75)
    a = np.linspace(-math.pi / 2 + 0.35, math.pi / 2 - 0.25, 24)
    body = np.stack([r * np.cos(a), hh * r * (np.sin(a) + 1.0)], axis=1)
    top_y = float(body[-1, 1])
    body = np.concatenate([[[0.0, body[0, 1]]], body, [[0.0, top_y]]])
    b.revolve(body, at(0, 0, 0), glaze, bevel=0.02)
    rr = float(body[-2, 0])
    s = np.linspace(0.0, 1.0, 16)
    sp_len = b.u(0.3, 0.42)
    spout = np.stack([r * 0.75 + sp_len * s, hh * r * 0.6 + sp_len * 1.1 * s**1.5, 0 * s], axis=1)
    b.parts.append(tube(spout, np.linspace(0.08, 0.04, 16), Placement(), glaze, min_around=b.around))
    t = np.linspace(-math.pi / 2 + 0.25, math.pi / 2 - 0.25, 20)
    hr = r * b.u(0.4, 0.5)
    handle = np.stack([-r * 0.8 - hr * 1.1 * np.cos(t), hh * r * 1.05 + hr * np.sin(t), 0 * t], axis=1)
    b.parts.append(tube(handle, 0.045, Placement(), glaze, min_around=b.around))
    if b.detail:
        b.revolve(_curve([(0.0, 0.0), (rr * 1.05, 0.0), (rr * 0.7, 0.08), (0.05, 0.13), (0.0, 0.13)], 5),
                  at(0, top_y - 0.01, 0), glaze, bevel=0.005)  # fmt: skip
        b.sphere(0.05, at(0, top_y + 0.15, 0), glaze, squash=0.8)


def _mug(b: Builder) -> None:
    glaze = b.style(b.pick(GLAZES), "ceramic", rough=0.3)
    r, h, wall = b.u(0.35, 0.45), b.u(0.75, 1.0), 0.04
    if b.detail:
        prof = [(0.0, 0.0), (r * 0.95, 0.0), (r, 0.05), (r, h), (r - wall, h), (r - wall, 0.08), (0.0, 0.08)]
        b.revolve(prof, at(0, 0, 0), glaze, bevel=0.012)
    else:
        b.cylinder(r, h, at(0, 0, 0), glaze)
    t = np.linspace(-math.pi / 2, math.pi / 2, 20)
    hr = h * b.u(0.28, 0.36)
    handle = np.stack([r - 0.03 + hr * 0.9 * np.cos(t), h * 0.5 + hr * np.sin(t), 0 * t], axis=1)
    b.parts.append(tube(handle, 0.045 if b.detail else 0.05, Placement(), glaze, min_around=b.around))


def _robot(b: Builder) -> None:
    body = b.style(b.pick(PAINTS), "metal", rough=0.35, metal=0.7)
    dark = b.style((0.06, 0.06, 0.07), "metal", rough=0.5, metal=0.8)
    eye = b.style(b.pick([(0.1, 0.8, 1.0), (1.0, 0.2, 0.1), (0.3, 1.0, 0.3)]), "plain", rough=0.1)
    tw, th, leg = b.u(0.45, 0.65), b.u(0.5, 0.7), b.u(0.35, 0.5)
    b.box((tw, th, tw * 0.6), at(0, leg + th / 2, 0), body, taper=b.u(0.8, 1.2), bevel=0.03)
    hs = b.u(0.22, 0.32)
    hy = leg + th + 0.05 + hs / 2
    b.box((hs * 1.2, hs, hs), at(0, hy, 0), body, bevel=0.03)
    for sx in (-1, 1):
        b.sphere(hs * 0.14, at(sx * hs * 0.28, hy + 0.02, hs / 2), eye)
        b.box((0.1, leg, 0.12), at(sx * tw * 0.25, leg / 2 + 0.03, 0), dark)
        b.box((0.14, 0.05, 0.2), at(sx * tw * 0.25, 0.025, 0.03), body)  # feet
        swing = b.u(-0.5, 0.5)
        sh = np.array([sx * (tw / 2 + 0.06), leg + th - 0.08, 0.0])
        hand = sh + np.array([sx * 0.12, -th * 0.8, math.sin(swing) * 0.25])
        b.rod([sh, (sh + hand) / 2 + [sx * 0.05, 0, 0], hand], 0.04, dark)
        if b.detail:
            b.sphere(0.07, at(*sh), body)  # shoulder joint
            b.box((0.03, 0.09, 0.05), at(*(hand + np.array([0, -0.06, 0.03]))), body)  # claw fingers
            b.box((0.03, 0.09, 0.05), at(*(hand + np.array([0, -0.06, -0.03]))), body)
        else:
            b.sphere(0.06, at(*hand), body)
    b.rod([(0, hy + hs / 2, 0), (0, hy + hs / 2 + 0.12, 0)], 0.012, dark)  # antenna
    b.sphere(0.03, at(0, hy + hs / 2 + 0.14, 0), eye)
    if b.detail:
        b.cylinder(0.06, 0.08, at(0, leg + th - 0.01, 0), dark)  # neck
        b.box((tw * 0.5, th * 0.35, 0.03), at(0, leg + th * 0.6, tw * 0.3), dark, bevel=0.008)
        for i in range(int(b.rng.integers(2, 5))):
            b.sphere(0.022, at(-tw * 0.15 + i * 0.06, leg + th * 0.35, tw * 0.3), eye)
        b.box((hs * 0.6, 0.04, 0.02), at(0, hy - hs * 0.25, hs / 2), dark, bevel=0.006)  # mouth


def _tree(b: Builder) -> None:
    bark = b.style((0.20, 0.11, 0.05), "bark", rough=0.9)
    leaf = b.style(b.pick([(0.05, 0.25, 0.04), (0.15, 0.35, 0.05), (0.30, 0.35, 0.05)]), "leaf", rough=0.8)
    h = b.u(0.8, 1.2)
    s = np.linspace(0.0, 1.0, 8)
    lean = b.u(-0.08, 0.08)
    trunk = np.stack([lean * s**2, h * s, 0 * s], axis=1)
    b.parts.append(tube(trunk, np.linspace(0.08, 0.045, 8), Placement(), bark, min_around=b.around))
    if b.rng.random() < 0.45:  # conifer: stacked cones
        n = int(b.rng.integers(3, 6))
        n = n if b.detail else 1
        for i in range(n):
            f = i / max(n, 1)
            r = b.u(0.45, 0.6) * (1 - 0.6 * f)
            y = h * 0.35 + f * h * 0.8
            b.cylinder(r, h * (0.9 if n == 1 else 0.55), at(lean, y, 0), leaf, r_top=0.0)
    else:
        if not b.detail:
            b.sphere(b.u(0.5, 0.65), at(lean, h + 0.3, 0), leaf, squash=0.85)
            return
        n = int(b.rng.integers(5, 10))
        for i in range(n):
            a = 2 * math.pi * i / n + b.u(-0.3, 0.3)
            rad = b.u(0.15, 0.4)
            y = h + b.u(-0.05, 0.45)
            c = np.array([lean + rad * math.cos(a), y, rad * math.sin(a)])
            b.rod([(lean * 0.5, h * 0.6, 0), (c[0] * 0.6, (h * 0.6 + y) / 2, c[2] * 0.6), c], 0.025, bark)
            waves = b.rng.normal(size=(4, 3))
            phase = b.rng.uniform(0, 2 * math.pi, 4)
            b.sphere(b.u(0.22, 0.34), at(*c), leaf, warp=_lumpy(c, waves, phase))  # type: ignore[arg-type]


def _lumpy(centre: F64, waves: F64, phase: F64) -> Callable[[F64], F64]:
    def warp(p: F64) -> F64:
        d = p - centre
        bump = np.sin(d @ waves.T * 9.0 + phase).sum(axis=-1, keepdims=True) * 0.03
        return p + d * bump / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9) * 4

    return warp


def _house(b: Builder) -> None:
    wall = b.style(b.pick([(0.55, 0.15, 0.08), (0.7, 0.65, 0.55), (0.45, 0.45, 0.5)]), "brick", rough=0.85)
    roof = b.style(b.pick([(0.35, 0.06, 0.04), (0.12, 0.12, 0.14), (0.25, 0.18, 0.1)]), "roof", rough=0.8)
    w, d, h = b.u(1.2, 1.7), b.u(0.9, 1.2), b.u(0.7, 1.0) * (1 + int(b.rng.integers(0, 2)) * 0.6)
    rh = b.u(0.35, 0.6)
    b.box((w, h, d), at(0, h / 2, 0), wall, bevel=0.0)
    b.parts.append(box((w, rh, d), at(0, h + rh / 2, 0), wall, bevel=0.0, taper=0.0, taper_x=False))
    if not b.detail:
        b.parts.append(box((w + 0.1, rh + 0.02, d + 0.14), at(0, h + rh / 2 + 0.01, 0), roof, bevel=0.0,
                           taper=0.0, taper_x=False))  # fmt: skip
        return
    slope = math.atan2(rh, d / 2)
    length = math.hypot(rh, d / 2) + 0.12
    for sz in (-1, 1):
        cz = sz * (d / 4 + 0.03)
        b.box((w + 0.16, 0.05, length), at(0, h + rh / 2 + 0.03, cz, rot_x=sz * slope), roof, bevel=0.008)
    wood = b.style(b.pick(WOODS), "wood", rough=0.6)
    glass = b.style((0.08, 0.12, 0.18), "plain", rough=0.1, metal=0.3)
    b.box((0.16, 0.3, 0.16), at(w * b.u(-0.3, 0.3), h + rh * 0.9, -d * 0.2), wall)  # chimney
    b.box((0.22, 0.42, 0.04), at(w * b.u(-0.2, 0.2), 0.21, d / 2), wood, bevel=0.006)  # door
    floors = 1 if h < 1.0 else 2
    for f in range(floors):
        y = 0.45 + f * 0.55 if floors > 1 else h * 0.6
        for side in (-1, 1):
            b.box((0.2, 0.22, 0.03), at(side * w * 0.3, y, d / 2), glass, bevel=0.004)
            b.box((0.24, 0.03, 0.05), at(side * w * 0.3, y - 0.12, d / 2), wood, bevel=0.004)  # sill
            b.box((0.03, 0.22, 0.2), at(side * w / 2, y, 0), glass, bevel=0.004)
    b.box((0.4, 0.06, 0.2), at(0, 0.03, d / 2 + 0.1), wall)  # step


def _car(b: Builder) -> None:
    paint = b.style(b.pick(PAINTS), "paint", rough=0.25, metal=0.6)
    tyre = b.style((0.02, 0.02, 0.02), "rubber", rough=0.95)
    ln, wd, bh = b.u(1.7, 2.2), b.u(0.8, 0.95), b.u(0.3, 0.4)
    clear, wr = 0.12, b.u(0.16, 0.2)
    b.box((ln, bh, wd), at(0, clear + bh / 2, 0), paint, bevel=0.06)
    cl, ch = ln * b.u(0.45, 0.6), b.u(0.25, 0.32)
    cx = -ln * b.u(0.0, 0.1)
    if b.detail:
        glass = b.style((0.05, 0.07, 0.1), "plain", rough=0.05, metal=0.2)
        b.box((cl, ch, wd * 0.86), at(cx, clear + bh + ch / 2 - 0.01, 0), glass, taper=0.72, bevel=0.03)
        b.box((cl * 0.68, 0.03, wd * 0.64), at(cx, clear + bh + ch - 0.01, 0), paint, bevel=0.01)
    else:
        b.box((cl, ch, wd * 0.86), at(cx, clear + bh + ch / 2, 0), paint, taper=0.72)
    tw = 0.12
    for sx in (-1, 1):
        for sz in (-1, 1):
            place = at(sx * ln * 0.32, wr, sz * (wd / 2 - tw / 2 + 0.02), rot_x=math.pi / 2)
            b.revolve([(0.0, -tw / 2), (wr, -tw / 2), (wr, tw / 2), (0.0, tw / 2)], place, tyre, bevel=0.04)
            if b.detail:
                hub = b.style((0.8, 0.8, 0.82), "metal", rough=0.2, metal=1.0)
                hp = at(sx * ln * 0.32, wr, sz * (wd / 2 + 0.02), rot_x=math.pi / 2)
                b.revolve(
                    [(0.0, -0.02), (wr * 0.6, -0.02), (wr * 0.5, 0.015), (0.0, 0.03)], hp, hub, bevel=0.01
                )
    if b.detail:
        light = b.style((1.0, 0.95, 0.7), "plain", rough=0.1)
        rear = b.style((0.8, 0.02, 0.02), "plain", rough=0.2)
        for sz in (-1, 1):
            b.sphere(0.05, at(ln / 2 - 0.02, clear + bh * 0.65, sz * wd * 0.32), light, squash=0.7)
            b.box((0.03, 0.05, 0.14), at(-ln / 2, clear + bh * 0.7, sz * wd * 0.32), rear, bevel=0.008)
        chrome = b.style((0.7, 0.7, 0.72), "metal", rough=0.2, metal=1.0)
        for sx in (-1, 1):
            b.box((0.06, 0.07, wd * 0.95), at(sx * (ln / 2 + 0.01), clear + 0.05, 0), chrome, bevel=0.02)


def _stool(b: Builder) -> None:
    wood = b.style(b.pick(WOODS), "wood", rough=0.55)
    r, h, n = b.u(0.17, 0.22), b.u(0.55, 0.75), int(b.rng.integers(3, 5))
    b.cylinder(r, 0.04, at(0, h - 0.04, 0), wood)
    feet = []
    for i in range(n):
        a = 2 * math.pi * i / n
        top = (r * 0.6 * math.cos(a), h - 0.04, r * 0.6 * math.sin(a))
        foot = (r * 1.3 * math.cos(a), 0.015, r * 1.3 * math.sin(a))
        b.rod([top, foot], 0.018, wood)
        feet.append(np.array(foot))
    if b.detail:
        ring = [f * 0.8 + np.array([0, h * 0.3, 0]) * 1 for f in feet]
        for i in range(n):
            b.rod([ring[i], ring[(i + 1) % n]], 0.01, wood)


def _bottle(b: Builder) -> None:
    glass = b.style(b.pick([(0.05, 0.25, 0.08), (0.35, 0.15, 0.03), (0.1, 0.2, 0.4)]), "ceramic", rough=0.1)
    r, h, neck = b.u(0.14, 0.2), b.u(0.6, 0.9), b.u(0.04, 0.06)
    ctrl = [(r, 0.0), (r, h * 0.6), (neck, h * 0.8), (neck, h)]
    outer = _curve(ctrl, 10 if b.detail else 2)
    b.revolve(np.concatenate([[[0.0, 0.0]], outer, [[0.0, h]]]), at(0, 0, 0), glass)
    cap = b.style(
        b.pick([(0.7, 0.6, 0.2), (0.6, 0.02, 0.02), (0.8, 0.8, 0.8)]), "metal", rough=0.3, metal=0.8
    )
    b.cylinder(neck * 1.15, 0.06, at(0, h - 0.04, 0), cap)
    if b.detail:
        label = b.style((0.85, 0.82, 0.7), "plain", rough=0.7)
        b.cylinder(r * 1.01, h * 0.3, at(0, h * 0.15, 0), label)


def _rocket(b: Builder) -> None:
    hull = b.style(b.pick([(0.8, 0.8, 0.8), (0.75, 0.7, 0.6)]), "paint", rough=0.3, metal=0.4)
    trim = b.style(b.pick(PAINTS), "paint", rough=0.3, metal=0.4)
    r, h = b.u(0.15, 0.2), b.u(1.3, 1.8)
    ctrl = [(r, 0.0), (r, h * 0.65), (r * 0.55, h * 0.88), (0.0, h)]
    outer = _curve(ctrl, 10 if b.detail else 2)
    b.revolve(np.concatenate([[[0.0, 0.0]], outer]), at(0, 0.1, 0), hull)
    b.cylinder(r * 0.7, 0.12, at(0, 0.0, 0), trim, r_top=r * 0.5)  # nozzle
    n = int(b.rng.integers(3, 5))
    for i in range(n):
        a = 2 * math.pi * i / n
        fin = at(math.cos(a) * r * 1.3, 0.28, math.sin(a) * r * 1.3, rot_y=-a + math.pi / 2)
        b.box((0.03, 0.35, r * 1.3), fin, trim, taper=0.5, taper_x=False)
    if b.detail:
        glass = b.style((0.1, 0.2, 0.35), "plain", rough=0.05, metal=0.3)
        for k in range(int(b.rng.integers(1, 4))):
            b.sphere(r * 0.22, at(0, h * (0.55 - 0.15 * k), r * 0.95), glass, squash=1.0)
        b.cylinder(r * 1.03, 0.05, at(0, h * 0.66, 0), trim)


NOUNS: dict[str, Callable[[Builder], None]] = {
    "chair": _chair,
    "table": _table,
    "lamp": _lamp,
    "vase": _vase,
    "teapot": _teapot,
    "mug": _mug,
    "robot": _robot,
    "tree": _tree,
    "house": _house,
    "car": _car,
    "stool": _stool,
    "bottle": _bottle,
    "rocket": _rocket,
}
_ALIASES = {"cup": "mug", "desk": "table", "kettle": "teapot", "cottage": "house", "spaceship": "rocket"}


def noun_of(prompt: str) -> str | None:
    """The first vocabulary noun in ``prompt``: whole words, any case, simple plurals (-s, -es)."""
    for word in re.findall(r"[a-z]+", prompt.lower()):
        for form in (word, word[:-1] if word.endswith("s") else "", word[:-2] if word.endswith("es") else ""):
            if form in NOUNS:
                return form
            if form in _ALIASES:
                return _ALIASES[form]
    return None


def compose(noun: str, rng: np.random.Generator, detail: bool) -> Builder:
    """Parts and styles of ``noun``, seeded by ``rng``; ``detail`` adds Regular's finer parts."""
    b = Builder(rng, detail)
    NOUNS[noun](b)
    return b


# ---------------------------------------------------------------------------- textures


@dataclass(frozen=True)
class Noise:
    """Smooth 3D noise from seeded plane waves, roughly in [-1, 1]."""

    waves: F64
    phases: F64

    @staticmethod
    def make(rng: np.random.Generator, k: int = 6) -> Noise:
        w = rng.normal(size=(k, 3))
        return Noise(w / np.linalg.norm(w, axis=1, keepdims=True), rng.uniform(0, 2 * math.pi, k))

    def __call__(self, p: F64, freq: float) -> F64:
        out: F64 = np.sin(p @ self.waves.T * freq + self.phases).mean(axis=-1) * 1.6
        return out


def _pattern(style: Style, p: F64, g: F64, noise: Noise, detail: bool) -> tuple[F64, F64]:
    """Mix weight toward the accent colour in [0, 1] and a height in [0, 1] for points ``p``."""
    if not detail:  # Sketch: flat colours
        return np.zeros(p.shape[:-1]), np.zeros(p.shape[:-1])
    axial = p @ g
    perp = np.linalg.norm(p - axial[..., None] * g, axis=-1)
    kind = style.pattern
    if kind == "wood":
        t = 0.5 + 0.5 * np.sin(perp * 90.0 + noise(p, 6.0) * 2.5 + axial * 3.0)
        mix = t**3 * 0.6
        return mix, 1 - mix
    if kind == "bark":
        ang = np.arctan2(p[..., 2], p[..., 0])
        t = 0.5 + 0.5 * np.sin(ang * 14 + noise(p, 8.0) * 3.0)
        return t * 0.7, 1 - t
    if kind == "leaf":
        t = np.clip(0.5 + 0.5 * noise(p, 30.0) + 0.3 * noise(p * 1.7, 55.0), 0, 1)
        return t * 0.8, t
    if kind == "brick":
        row = p[..., 1] / 0.07
        offset = np.floor(row) % 2 * 0.5
        along = (p[..., 0] + p[..., 2]) / 0.16 + offset
        mortar = (np.abs(row - np.round(row)) < 0.08) | (np.abs(along - np.round(along)) < 0.05)
        tint = 0.15 * noise(np.floor(np.stack([along, row, row], -1)), 1.3)
        mix = np.where(mortar, 1.0, np.clip(tint, 0, 0.3))
        return mix, np.where(mortar, 0.0, 1.0)
    if kind == "roof":
        row = p[..., 1] / 0.05
        t = row - np.floor(row)
        return t * 0.5, t
    if kind == "ceramic":
        band = (np.abs(np.sin(p[..., 1] * 25.0)) > 0.97).astype(np.float64)
        speck = (noise(p, 120.0) > 0.9).astype(np.float64)
        return np.clip(band * 0.8 + speck * 0.4, 0, 1), 1 - band * 0.5
    if kind == "metal":
        t = 0.5 + 0.5 * noise(p * np.array([40.0, 1.0, 40.0]), 3.0)
        return t * 0.25, t * 0.3
    if kind == "fabric":
        t = np.sin(p[..., 0] * 300) * np.sin((p[..., 1] + p[..., 2]) * 300)
        return 0.15 + 0.15 * t, 0.5 + 0.5 * t
    if kind == "rubber":
        ang = np.arctan2(p[..., 1], p[..., 0])
        t = (np.sin(ang * 40) > 0.6).astype(np.float64)
        return t * 0.3, 1 - t
    if kind == "paint":
        return np.clip(noise(p, 2.0) * 0.1, 0, 1), np.zeros(p.shape[:-1])
    return np.clip(noise(p, 20.0) * 0.08, 0, 1), np.zeros(p.shape[:-1])


def atlas_textures(
    parts: list[Part],
    islands: list[Island],
    styles: list[Style],
    size: int,
    margin: float,
    noise: Noise,
    detail: bool,
    *,
    shaded: bool,
) -> tuple[F64, F64, F64, F64]:
    """Per-texel base colour (linear RGB), ``(rough, metal)``, tangent-space normal and a shading normal.

    Each island is evaluated over its rectangle plus ``margin`` (UV units) with clamped (or wrapped)
    patch coordinates, which dilates the island so mipmaps do not pull in the background.
    """
    colour = np.full((size, size, 3), 0.18)
    mr = np.zeros((size, size, 2))
    mr[..., 0] = 0.8
    nmap = np.zeros((size, size, 3))
    nmap[..., 2] = 1.0
    shade_n = np.zeros((size, size, 3))
    shade_n[..., 1] = 1.0
    k = 0
    for part in parts:
        style = styles[part.slot]
        g = np.asarray(part.grain)
        for patch in part.patches:
            isl = islands[k]
            k += 1
            c0 = max(0, math.floor((isl.x - margin) * size))
            c1 = min(size, math.ceil((isl.x + isl.w + margin) * size))
            r0 = max(0, math.floor((isl.y - margin) * size))
            r1 = min(size, math.ceil((isl.y + isl.h + margin) * size))
            cu = ((np.arange(c0, c1) + 0.5) / size - isl.x) / isl.w
            cv = ((np.arange(r0, r1) + 0.5) / size - isl.y) / isl.h
            cu = np.mod(cu, 1.0) if patch.wrap_u else np.clip(cu, 0.0, 1.0)
            cv = np.clip(cv, 0.0, 1.0)
            vv, uu = np.meshgrid(cv, cu, indexing="ij")  # rows follow v, columns u
            p = patch.fn(uu, vv)
            mix, height = _pattern(style, p, g, noise, detail)
            base = np.asarray(style.colour) * (1 - mix[..., None]) + np.asarray(style.accent) * mix[..., None]
            colour[r0:r1, c0:c1] = base
            mr[r0:r1, c0:c1, 0] = np.clip(style.rough + 0.15 * (mix - 0.5) * detail, 0.04, 1.0)
            mr[r0:r1, c0:c1, 1] = style.metal
            if detail and height.shape[0] > 1 and height.shape[1] > 1:
                gy, gx = np.gradient(height)
                nrm = np.stack([-gx * 1.5, gy * 1.5, np.ones_like(height)], axis=-1)
                nmap[r0:r1, c0:c1] = nrm / np.linalg.norm(nrm, axis=-1, keepdims=True)
            if not shaded:
                continue
            e = 1e-3
            du = patch.fn(np.clip(uu + e, 0, 1), vv) - patch.fn(np.clip(uu - e, 0, 1), vv)
            dv = patch.fn(uu, np.clip(vv + e, 0, 1)) - patch.fn(uu, np.clip(vv - e, 0, 1))
            n = np.cross(du, dv)
            ln = np.linalg.norm(n, axis=-1, keepdims=True)
            shade_n[r0:r1, c0:c1] = np.where(ln > 1e-12, n / np.maximum(ln, 1e-12), [0.0, 1.0, 0.0])
    return colour, mr, nmap, shade_n
