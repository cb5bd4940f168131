"""The sandbox's procedural meshes: generation time per tier/quality and a nouns x tiers contact sheet.

    PYTHONPATH=. python bench/bench_sandbox_meshes.py [--sheet test-artifacts/sandbox_meshes.png]

Prints seconds per mesh (median of a few runs, one fresh request each: the artifact cache is not used)
and triangles, then renders every vocabulary noun (plus the fallback) in both tiers with the project's
own preview renderer (rodin_nb.preview.render_png) into one PNG, to look at.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

from PIL import Image, ImageDraw

from rodin_nb.preview import render_png
from rodin_nb.sandbox.artifacts import glb_properties
from rodin_nb.sandbox.meshgen import make_glb
from rodin_nb.sandbox.objects import NOUNS


def timing(noun: str, tier: str, quality: str, runs: int = 3) -> tuple[float, int]:
    times = []
    faces = 0
    for seed in range(runs):
        t0 = time.perf_counter()
        glb = make_glb({"prompt": f"a {noun}", "seed": seed, "tier": tier, "quality": quality})
        times.append(time.perf_counter() - t0)
        faces = glb_properties(glb)["faceCount"]
    return statistics.median(times), faces


def sheet(path: Path, seed: int, cell: int) -> None:
    nouns = [*NOUNS, "gem"]  # "a gem": the fallback shape
    tiers = ["Sketch", "Regular"]
    img = Image.new("RGB", (cell * len(nouns), cell * len(tiers) + 20), "white")
    draw = ImageDraw.Draw(img)
    for i, noun in enumerate(nouns):
        draw.text((i * cell + 4, 4), noun, fill="black")
        for j, tier in enumerate(tiers):
            glb = make_glb({"prompt": f"a {noun}", "seed": seed, "tier": tier, "quality": "medium"})
            png = Image.open(io.BytesIO(render_png(glb, size=cell)))
            img.paste(png, (i * cell, 20 + j * cell))
            draw.text((i * cell + 4, 20 + j * cell + cell - 14), tier, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    print(f"contact sheet: {path}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sheet", type=Path, default=Path("test-artifacts/sandbox_meshes.png"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cell", type=int, default=192)
    ap.add_argument("--no-timing", action="store_true")
    args = ap.parse_args()
    if not args.no_timing:
        print(f"{'noun':8} {'tier':8} {'quality':9} {'seconds':>8} {'triangles':>10}")
        for noun in ("chair", "teapot", "gem"):
            for tier, quality in [
                ("Sketch", "medium"),
                *[("Regular", q) for q in ("high", "medium", "low", "extra-low")],
            ]:
                s, faces = timing(noun, tier, quality)
                print(f"{noun:8} {tier:8} {quality:9} {s:8.3f} {faces:10,}")
    sheet(args.sheet, args.seed, args.cell)


if __name__ == "__main__":
    main()
