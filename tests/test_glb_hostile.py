"""Hostile GLB files: every reader refuses them with AssetError, quickly, and nothing crashes.

Each file is built here (struct-packed GLBs; PNG headers declaring huge sizes over a few bytes of data).
The entry points run in a subprocess with a memory cap, because on the code before this test a crash in
VTK killed the whole process (pytest included): the subprocess must exit 0 and print what each entry
point raised.
"""

from __future__ import annotations

import base64
import json
import os
import re
import resource
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rodin_nb as rn
from rodin_nb import glbcheck, modelfiles
from rodin_nb.glbcheck import check_glb
from rodin_nb.modelfiles import read_checked

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "glb"
ROOT = Path(__file__).resolve().parents[1]
CHILD_MEMORY = 6 * 1024**3  # address-space cap of the subprocess running the entry points


# --------------------------------------------------------------------------- building files


def glb(doc: dict[str, Any] | None, blob: bytes = b"", raw_json: bytes | None = None) -> bytes:
    """A GLB container around ``doc`` (or raw JSON bytes) and an optional BIN chunk."""
    text = raw_json if raw_json is not None else json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<I4s", len(text), b"JSON") + text
    if blob:
        blob += b"\0" * (-len(blob) % 4)
        body += struct.pack("<I4s", len(blob), b"BIN\0") + blob
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


def png_header(width: int, height: int, intact: bool = False) -> bytes:
    """A PNG signature and IHDR declaring ``width`` x ``height`` RGBA, then one tiny IDAT and IEND
    (``intact``: an IDAT holding every pixel, for a small image that decodes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * (height * (1 + 4 * width) if intact else 64)))
        + chunk(b"IEND", b"")
    )


def triangle(**tweak: Any) -> tuple[dict[str, Any], bytearray]:
    """One valid indexed triangle: positions (36 bytes) then uint16 indices (6 bytes, padded to 8)."""
    blob = bytearray(struct.pack("<9f", 0, 0, 0, 1, 0, 0, 0, 1, 0) + struct.pack("<3H", 0, 1, 2) + b"\0\0")
    doc: dict[str, Any] = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        "buffers": [{"byteLength": 44}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": 36},
            {"buffer": 0, "byteOffset": 36, "byteLength": 6},
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": 3,
                "type": "VEC3",
                "min": [0, 0, 0],
                "max": [1, 1, 0],
            },
            {"bufferView": 1, "componentType": 5123, "count": 3, "type": "SCALAR"},
        ],
    }
    doc.update(tweak)
    return doc, blob


def with_images(
    *sizes: tuple[int, int], intact: bool = False, change: Callable[[dict[str, Any]], None] | None = None
) -> bytes:
    """The triangle with UVs and one texture per declared PNG size (the PNGs hold almost no data unless
    ``intact``); ``change`` edits the glTF JSON last."""
    doc, blob = triangle()
    uv = struct.pack("<6f", 0, 0, 1, 0, 0, 1)
    doc["bufferViews"].append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(uv)})
    blob += uv
    doc["accessors"].append({"bufferView": 2, "componentType": 5126, "count": 3, "type": "VEC2"})
    doc["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_0"] = 2
    doc["images"], doc["textures"], doc["materials"] = [], [], []
    for w, h in sizes:
        png = png_header(w, h, intact)
        blob += b"\0" * (-len(blob) % 4)
        doc["bufferViews"].append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(png)})
        blob += png
        doc["images"].append({"bufferView": len(doc["bufferViews"]) - 1, "mimeType": "image/png"})
        doc["textures"].append({"source": len(doc["images"]) - 1})
        doc["materials"].append(
            {"pbrMetallicRoughness": {"baseColorTexture": {"index": len(doc["textures"]) - 1}}}
        )
    doc["meshes"][0]["primitives"][0]["material"] = 0
    blob += b"\0" * (-len(blob) % 4)
    doc["buffers"][0]["byteLength"] = len(blob)
    if change is not None:
        change(doc)
    return glb(doc, bytes(blob))


def tweaked(change: Callable[[dict[str, Any]], None]) -> bytes:
    doc, blob = triangle()
    change(doc)
    return glb(doc, bytes(blob))


def instances(n: int) -> bytes:
    """``n`` nodes drawing one small mesh (the 1.6 MB, 5,000-instance file that grew a renderer to 23 GB)."""
    doc, blob = triangle()
    doc["nodes"] = [{"children": list(range(1, n + 1))}] + [
        {"mesh": 0, "translation": [float(i % 100), float(i // 100), 0.0]} for i in range(n)
    ]
    return glb(doc, bytes(blob))


def bufferless(mode: int, count: int, primitives: int, targets: int = 0) -> bytes:
    """The triangle file plus a mesh of ``primitives`` primitives (``mode``) over zero-filled accessors of
    ``count`` VEC3 each (no buffer view: allowed, the spec says zeros), ``targets`` morph targets each."""
    doc, blob = triangle()
    first = len(doc["accessors"])
    doc["accessors"] += [{"componentType": 5126, "count": count, "type": "VEC3"}] * primitives
    doc["meshes"].append(
        {
            "primitives": [
                {"attributes": {"POSITION": first + i}, "mode": mode}
                | ({"targets": [{"POSITION": first + i}] * targets} if targets else {})
                for i in range(primitives)
            ]
        }
    )
    doc["nodes"].append({"mesh": 1})
    doc["scenes"][0]["nodes"].append(1)
    return glb(doc, bytes(blob))


def shared_points(count: int, primitives: int) -> bytes:
    """``primitives`` point primitives sharing one zero-filled accessor of ``count`` VEC3."""
    doc, blob = triangle()
    doc["accessors"].append({"componentType": 5126, "count": count, "type": "VEC3"})
    doc["meshes"].append({"primitives": [{"attributes": {"POSITION": 2}, "mode": 0}] * primitives})
    doc["nodes"].append({"mesh": 1})
    doc["scenes"][0]["nodes"].append(1)
    return glb(doc, bytes(blob))


def deep_json(levels: int) -> bytes:
    return glb(None, raw_json=b'{"asset":{"version":"2.0"},"extras":' + b"[" * levels + b"]" * levels + b"}")


def set_in(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *keys, last = path.split(".")
        node: Any = doc
        for key in keys:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return change


# name -> (file bytes, what the message must say)
HOSTILE: dict[str, tuple[bytes, str]] = {
    "json-array-28-bytes": (glb(None, raw_json=b"[1,2,3]"), "not an object"),
    "node-own-child": (tweaked(set_in("nodes.0.children", [0])), "own child"),
    "node-cycle": (tweaked(set_in("nodes", [{"mesh": 0, "children": [1]}, {"children": [0]}])), "cycle"),
    "node-two-parents": (
        tweaked(set_in("nodes", [{"children": [2]}, {"children": [2]}, {"mesh": 0}])),
        "two parents",
    ),
    "child-out-of-range": (tweaked(set_in("nodes.0.children", [7])), "has child 7"),
    "png-12000": (with_images((12000, 12000)), r"12000x12000 pixels; the limit is 8192"),
    "png-30000": (with_images((30000, 30000)), r"30000x30000 pixels; the limit is 8192"),
    "png-total-too-big": (with_images((8192, 8192), (8192, 8192)), "MB decoded; the limit is 256 MB"),
    "accessor-count": (tweaked(set_in("accessors.0.count", 10**9)), "beyond the data"),
    "accessor-offset": (tweaked(set_in("accessors.0.byteOffset", 2**40)), "beyond the data"),
    "view-stride": (tweaked(set_in("bufferViews.0.byteStride", 252)), "beyond the data"),
    "view-stride-invalid": (tweaked(set_in("bufferViews.0.byteStride", 4096)), "byteStride = 4096"),
    "view-offset": (tweaked(set_in("bufferViews.0.byteOffset", 10**6)), "of a 44-byte buffer"),
    "buffer-length": (tweaked(set_in("buffers.0.byteLength", 10**9)), "bytes are present"),
    "component-type": (tweaked(set_in("accessors.0.componentType", 5127)), "not a glTF component type"),
    "index-beyond-vertices": (tweaked(set_in("accessors.0.count", 2)), "index 2 but the primitive has 2"),
    "deep-json": (deep_json(100_000), "nested 100001 levels deep"),
    "truncated": (with_images((16, 16))[:-40], "truncated"),
    "5000-instances": (instances(5000), "5,000 mesh instances"),
    # 1 KB files that decoded to 9 GB: points and lines draw no triangles, accessors need no data
    "points-bufferless": (bufferless(0, 50_000_000, 8), r"4,578 MB decoded.*limit is 512 MB"),
    "lines-bufferless": (bufferless(1, 50_000_000, 8), r"4,578 MB decoded.*limit is 512 MB"),
    "points-shared-accessor": (shared_points(2_000_000, 10), r"20,000,00\d vertices drawn.*limit 15,000,000"),
    "morph-targets-per-use": (bufferless(0, 1_000_000, 1, targets=64), r"take 744 MB decoded"),
    # files the checker passed that crashed VTK's importer (SIGSEGV, SIGABRT)
    "scene-index": (tweaked(set_in("scene", 7)), "default scene = 7 but the file has 1 scenes"),
    "skin-joint": (
        tweaked(lambda d: (d.update(skins=[{"joints": [99999]}]), d["nodes"][0].update(skin=0))),
        "has joint 99999",
    ),
    "animation-refs": (
        tweaked(
            set_in(
                "animations",
                [
                    {
                        "channels": [{"sampler": 0, "target": {"node": 999}}],
                        "samplers": [{"input": 1, "output": 0}],
                    }
                ],
            )
        ),
        "node = 999 but the file has 1 nodes",
    ),
    "scene-dup-roots": (tweaked(set_in("scenes.0.nodes", [0] * 200_000)), "lists node 0 twice"),
    "root-and-child": (
        tweaked(lambda d: d.update(nodes=[{"children": [1]}, {"mesh": 0}], scenes=[{"nodes": [0, 1]}])),
        "node 1 as a root but it is a child of node 0",
    ),
    "image-truncated-pixels": (with_images((16, 16)), r"images\[0\] has broken or truncated image data"),
    "texcoord-99": (
        with_images(
            (16, 16),
            intact=True,
            change=set_in("materials.0.pbrMetallicRoughness.baseColorTexture.texCoord", 99),
        ),
        "texCoord 99 but has no TEXCOORD_99 attribute",
    ),
    "sampler-values": (
        with_images(
            (16, 16),
            intact=True,
            change=lambda d: (
                d.update(samplers=[{"wrapT": -5, "magFilter": "x"}]),
                d["textures"][0].update(sampler=0),
            ),
        ),
        r"samplers\[0\]\.magFilter = x is not a glTF value",
    ),
    "sampler-index": (
        with_images((16, 16), intact=True, change=set_in("textures.0.sampler", 3)),
        "sampler = 3 but the file has 0 samplers",
    ),
    "texture-source": (
        with_images((16, 16), intact=True, change=set_in("textures.0.source", 5)),
        "source = 5 but the file has 1 images",
    ),
    "morph-target-count": (
        tweaked(
            lambda d: (
                d["accessors"].append({"componentType": 5126, "count": 50_000, "type": "VEC3"}),
                d["meshes"][0]["primitives"][0].update(targets=[{"POSITION": 2}]),
            )
        ),
        "accessor 2 has 50,000 elements but the primitive has 3 vertices",
    ),
}


def split_glb(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON and BIN chunk of a GLB built by :func:`glb`."""
    (json_len,) = struct.unpack_from("<I", data, 12)
    doc = json.loads(data[20 : 20 + json_len])
    start = 20 + json_len
    blob = data[start + 8 :] if len(data) > start + 8 else b""
    return doc, blob


def to_gltf(data: bytes, uri: str | None = None) -> bytes:
    """A ``.gltf`` of a GLB: its BIN chunk as a ``data:`` URI (or ``uri``, for a file beside it)."""
    doc, blob = split_glb(data)
    for buffer in doc.get("buffers", []):
        buffer["uri"] = uri or "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
    return json.dumps(doc).encode()


# name -> (.gltf bytes, what the message must say); the readers used to hand .gltf to trimesh unchecked
HOSTILE_GLTF: dict[str, tuple[bytes, str]] = {
    "gltf-5000-instances": (to_gltf(instances(5000)), "5,000 mesh instances"),
    "gltf-index-beyond-vertices": (
        to_gltf(HOSTILE["index-beyond-vertices"][0]),
        "index 2 but the primitive has 2",
    ),
    "gltf-node-cycle": (to_gltf(HOSTILE["node-cycle"][0]), "cycle"),
    "gltf-points-bufferless": (to_gltf(HOSTILE["points-bufferless"][0]), "4,578 MB decoded"),
    "gltf-png-30000": (to_gltf(HOSTILE["png-30000"][0]), "30000x30000 pixels"),
    "gltf-parent-dir": (
        to_gltf(triangle_glb := glb(*triangle()), "../data.bin"),
        "only data: URIs and files in",
    ),
    "gltf-parent-dir-quoted": (to_gltf(triangle_glb, "%2E%2E/data.bin"), "only data: URIs and files in"),
    "gltf-absolute": (to_gltf(triangle_glb, "/etc/hostname"), "only data: URIs and files in"),
    "gltf-url": (to_gltf(triangle_glb, "https://example.com/data.bin"), "only data: URIs and files in"),
    "gltf-missing": (to_gltf(triangle_glb, "data.bin"), "'data.bin', which is missing"),
}


# --------------------------------------------------------------------------- in this process (pure Python)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_checker_names_the_problem_quickly(case: str) -> None:
    data, expected = HOSTILE[case]
    with pytest.raises(rn.AssetError, match=expected) as caught:
        check_glb(data, f"{case}.glb")
    assert f"{case}.glb" in str(caught.value)


@pytest.mark.parametrize("case", sorted(HOSTILE_GLTF))
def test_gltf_is_packed_and_checked(case: str, tmp_path: Path) -> None:
    data, expected = HOSTILE_GLTF[case]
    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / f"{case}.gltf"
    path.write_bytes(data)
    (tmp_path / "data.bin").write_bytes(b"\0" * 64)  # what ../data.bin would reach
    with pytest.raises(rn.AssetError, match=expected) as caught:
        read_checked(path)
    assert f"{case}.gltf" in str(caught.value)


def test_gltf_with_data_uris_past_the_json_chunk_limit_loads(tmp_path: Path) -> None:
    """A .gltf's JSON holds its data base64-encoded: 40 MB of it is more than a GLB's JSON chunk may be."""
    doc, blob = triangle()
    padded = bytes(blob) + b"\1" * 30_000_000
    doc["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(padded).decode()
    path = tmp_path / "big.gltf"
    path.write_text(json.dumps(doc))
    assert path.stat().st_size > glbcheck.MAX_JSON_BYTES
    packed = read_checked(path)
    assert packed is not None and check_glb(packed).triangles == 1


def test_gltf_symlink_out_of_its_folder_is_refused(tmp_path: Path) -> None:
    doc, blob = triangle()
    (tmp_path / "outside.bin").write_bytes(bytes(blob))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "data.bin").symlink_to(tmp_path / "outside.bin")
    path = tmp_path / "models" / "m.gltf"
    path.write_bytes(to_gltf(glb(doc, bytes(blob)), "data.bin"))
    with pytest.raises(rn.AssetError, match="outside the file's folder"):
        read_checked(path)


def test_gltf_with_files_beside_it_loads_like_the_glb(tmp_path: Path) -> None:
    """Buffer and image in files next to the .gltf (one name URL-quoted): every reader sees the packed GLB."""
    from rodin_nb.meshstats import mesh_stats
    from rodin_nb.preview import render_png
    from rodin_nb.viewer import load_model

    data = with_images((16, 16), intact=True)
    doc, blob = split_glb(data)
    view = doc["bufferViews"][doc["images"][0]["bufferView"]]
    png = blob[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
    doc["images"][0] = {"uri": "tex.png"}
    doc["buffers"][0]["uri"] = "scene%20data.bin"
    (tmp_path / "scene data.bin").write_bytes(blob)
    (tmp_path / "tex.png").write_bytes(png)
    path = tmp_path / "model.gltf"
    path.write_text(json.dumps(doc))
    packed = read_checked(path)
    assert packed is not None and check_glb(packed).images == ((16, 16),)
    from_gltf, from_glb = load_model(path), load_model(data)
    assert from_gltf.stats.triangles == from_glb.stats.triangles == 1
    assert from_gltf.stats.textures == from_glb.stats.textures == ((16, 16),)
    assert mesh_stats(path)["faces"] == 1
    assert render_png(path, 64, renderer="software") == render_png(data, 64, renderer="software")


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.glb")), ids=lambda p: p.name)
def test_checker_accepts_real_files(path: Path) -> None:
    summary = check_glb(path.read_bytes(), path.name)
    assert summary.triangles > 0 and summary.instances >= 1


def test_checker_accepts_small_intact_textures() -> None:
    summary = check_glb(with_images((16, 16), (4, 2), intact=True))
    assert summary.images == ((16, 16), (4, 2))


def test_checker_accepts_the_sandbox_results() -> None:
    from rodin_nb.sandbox.meshgen import make_glb

    for quality in ("extra-low", "high"):
        assert check_glb(make_glb({"prompt": "a chair", "seed": 5, "quality": quality})).triangles > 0


def test_limits_are_documented_values() -> None:
    assert glbcheck.MAX_IMAGE_SIDE == 8192 and glbcheck.MAX_IMAGE_BYTES == 256 * 2**20
    assert glbcheck.MAX_DRAWN_TRIANGLES == 5_000_000 and glbcheck.MAX_JSON_DEPTH == 64
    assert glbcheck.MAX_DRAWN_VERTICES == 15_000_000 and glbcheck.MAX_ACCESSOR_BYTES == 512 * 2**20
    assert modelfiles.MAX_GLTF_TEXT_BYTES == 256 * 2**20 and modelfiles.MAX_GLTF_RESOURCE_BYTES == 2**30
    assert modelfiles.MAX_OTHER_FORMAT_BYTES == 256 * 2**20


# --------------------------------------------------------------------------- every entry point (subprocess)

ENTRY_POINTS = r"""
import sys, time, traceback
from pathlib import Path
import rodin_nb as rn
from rodin_nb.meshstats import mesh_stats
from rodin_nb.preview import preview_png, render_png
from rodin_nb.store import check_format
from rodin_nb.viewer import load_model

good = Path(sys.argv[2])
# Warm up imports and the VTK worker on a good file, so the timings below are the checks' own.
load_model(good); mesh_stats(good); rn.show(good); render_png(good, renderer=sys.argv[3])

def fmt(path):
    problem = check_format(path, path.suffix)
    if problem is None:
        raise AssertionError("check_format accepted it")
    raise rn.AssetError(problem)

entries = {
    "show": lambda p: rn.show(p),
    "static-preview": lambda p: preview_png(p),
    "render_png-vtk": lambda p: render_png(p, renderer=sys.argv[3]),
    "load_model": load_model,
    "mesh_stats": mesh_stats,
    "check_format": fmt,
}
for path in sorted(Path(sys.argv[1]).glob("*.gl*")):
    for entry, fn in entries.items():
        began = time.perf_counter()
        try:
            fn(path)
            print(f"ACCEPTED {path.name} {entry}", flush=True)
        except rn.AssetError as exc:
            took = time.perf_counter() - began
            print(f"ASSETERROR {path.name} {entry} {took:.3f} {exc}", flush=True)
        except BaseException as exc:
            print(f"OTHER {path.name} {entry} {type(exc).__name__}: {exc}", flush=True)
print("DONE", flush=True)
"""


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))


def run_child(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONFAULTHANDLER="1")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        preexec_fn=_capped,
    )


def vtk_or_software() -> str:
    from rodin_nb.preview import renderer_name

    return "software" if renderer_name() == "software" else "vtk"


def test_every_entry_point_refuses_every_hostile_file(tmp_path: Path) -> None:
    for case, (data, _) in HOSTILE.items():
        (tmp_path / f"{case}.glb").write_bytes(data)
    for case, (data, _) in HOSTILE_GLTF.items():
        (tmp_path / f"{case}.gltf").write_bytes(data)
    proc = run_child(ENTRY_POINTS, str(tmp_path), str(FIXTURES / "Duck.glb"), vtk_or_software())
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[-1] == "DONE"
    seen = 0
    for line in lines[:-1]:
        verdict, filename, entry, *rest = line.split(" ", 3)
        assert verdict == "ASSETERROR", line
        _took, message = rest[0].split(" ", 1)  # printed for the log; speed is no test assertion
        case, suffix = filename.rsplit(".", 1)
        _, expected = (HOSTILE if suffix == "glb" else HOSTILE_GLTF)[case]
        assert re.search(expected, message), line
        if entry != "check_format":
            assert filename in message, line
        seen += 1
    assert seen == (len(HOSTILE) + len(HOSTILE_GLTF)) * 6


# --------------------------------------------------------------------------- the worker process

WORKER_CRASH = r"""
import os, signal, sys, time
import rodin_nb as rn
from rodin_nb import preview
from rodin_nb._renderproc import WORKER
from rodin_nb.preview import render_png

good = open(sys.argv[1], "rb").read()
first = render_png(good)
platform = preview._vtk_platform()
pid = WORKER._proc.pid
# A file that skips the check and crashes VTK: the worker dies, the caller gets AssetError.
hostile = bytes.fromhex(sys.argv[2])
try:
    preview._render_vtk(hostile, "unchecked.glb", 64, platform)
    print("RENDERED unchecked")
except rn.AssetError as exc:
    print("ASSETERROR", exc)
# A render past its timeout: the worker is killed, AssetError says so.
os.environ["RODIN_NB_PREVIEW_TIMEOUT"] = "0.001"
try:
    render_png(good)
except rn.AssetError as exc:
    print("ASSETERROR", exc)
del os.environ["RODIN_NB_PREVIEW_TIMEOUT"]
# The next preview gets a fresh worker and the same pixels.
assert render_png(good) == first
print("RESTARTED", WORKER.started, WORKER._proc.pid != pid)
"""


@pytest.mark.skipif(vtk_or_software() == "software", reason="VTK off-screen rendering not available here")
def test_a_crash_or_timeout_in_the_worker_is_an_asset_error() -> None:
    hostile, _ = HOSTILE["node-own-child"]
    proc = run_child(WORKER_CRASH, str(FIXTURES / "Duck.glb"), hostile.hex())
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "took longer than 0.001 s and was stopped" in out, out
    assert "RESTARTED" in out and out.strip().endswith("True"), out
    # VTK 9.4-9.5 dies of SIGSEGV on this file; whatever it does, the caller gets AssetError naming the file.
    assert "ASSETERROR cannot render 3D file unchecked.glb: the preview renderer crashed (SIG" in out or (
        "ASSETERROR cannot read 3D file unchecked.glb" in out
    ), out


# --------------------------------------------------------------------------- fuzz

FUZZ = r"""
import sys, time
from hypothesis import HealthCheck, given, settings, strategies as st
import rodin_nb as rn
from rodin_nb.glbcheck import check_glb
from rodin_nb.modelfiles import read_checked
from rodin_nb.meshstats import mesh_stats
from rodin_nb.preview import render_png
from rodin_nb.viewer import load_model
from pathlib import Path

seed = open(sys.argv[1], "rb").read()
renderer = sys.argv[2]
tmp = Path(sys.argv[3]) / "fuzz.glb"
counts = {"ok": 0, "asset": 0}

@st.composite
def mutated(draw):
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= 1 << draw(st.integers(0, 7))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)

@settings(max_examples=int(sys.argv[4]), deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(mutated())
def fuzz(data):
    tmp.write_bytes(data)
    for fn in (lambda: check_glb(data), lambda: load_model(tmp), lambda: mesh_stats(tmp),
               lambda: render_png(data, 64, renderer=renderer)):
        try:
            fn()
            counts["ok"] += 1
        except rn.AssetError:
            counts["asset"] += 1

started = time.perf_counter()
fuzz()
print("FUZZ", counts, f"{time.perf_counter() - started:.1f}s")
"""


def test_fuzz_bit_flips_and_truncations(tmp_path: Path) -> None:
    """Only AssetError or success from every reader; no crash (exit 0), no hang (timeout), memory capped."""
    pytest.importorskip("hypothesis")
    proc = run_child(  # the timeout is the hang guard
        FUZZ, str(FIXTURES / "BoxTextured.glb"), vtk_or_software(), str(tmp_path), "50", timeout=90
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "FUZZ" in proc.stdout


# --------------------------------------------------------------------------- many instances


def test_many_instances_are_refused_quickly_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "instances.glb"
    path.write_bytes(instances(5000))
    script = r"""
import resource, sys, time
import rodin_nb as rn
from rodin_nb.preview import render_png
from rodin_nb.viewer import load_model
for fn in (load_model, lambda p: render_png(p, renderer="software"), rn.show):
    began = time.perf_counter()
    try:
        fn(sys.argv[1])
        print("ACCEPTED")
    except rn.AssetError as exc:
        print(f"ASSETERROR {time.perf_counter() - began:.3f} {exc}")
print("RSS_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""
    proc = run_child(script, str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    refusals = [line for line in lines if line.startswith("ASSETERROR")]
    assert len(refusals) == 3, proc.stdout
    for line in refusals:
        assert "5,000 mesh instances" in line  # refused before anything is built
    # The whole interpreter (pandas, trimesh, pythreejs included) stays near its import size; this file
    # once grew a renderer to about 23 GB.
    assert int(lines[-1].split()[1]) < 2048


def test_instances_under_the_limit_load_fast_with_per_mesh_bounds() -> None:
    """Bounds cost is per unique mesh plus 8 corners per instance: 1,500 instances load quickly."""
    from rodin_nb.viewer import load_model

    data = instances(1500)
    model = load_model(data)
    assert model.stats.instances == 1500 and model.stats.triangles == 1500
    assert model.bounds.tolist() == [[0.0, 0.0, 0.0], [100.0, 15.0, 0.0]]


# --------------------------------------------------------------------------- other formats trimesh reads

OTHER_FORMATS: dict[str, tuple[bytes, str]] = {
    "huge-index.obj": (b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 999999999\n", "out of bounds"),
    "stl-huge.stl": (b"\0" * 80 + struct.pack("<I", 2**31) + b"\0" * 50, "declares 2,147,483,648 triangles"),
    "ply-huge.ply": (
        b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
        b"property float z\nelement face 900000000\nproperty list uchar int vertex_indices\nend_header\n",
        "900,000,000 faces; limit 5,000,000",
    ),
    "renamed-png30000.obj": (HOSTILE["png-30000"][0], "30000x30000 pixels"),  # a GLB by its magic
}


@pytest.mark.parametrize("filename", sorted(OTHER_FORMATS))
def test_other_formats_are_bounded_or_refused(filename: str, tmp_path: Path) -> None:
    from rodin_nb.meshstats import mesh_stats
    from rodin_nb.preview import render_png
    from rodin_nb.viewer import load_model

    data, expected = OTHER_FORMATS[filename]
    path = tmp_path / filename
    path.write_bytes(data)
    for fn in (load_model, mesh_stats, lambda p: render_png(p, 64, renderer="software"), rn.show):
        with pytest.raises(rn.AssetError, match=expected) as caught:
            fn(path)
        assert filename in str(caught.value)


def test_obj_with_too_many_faces_is_refused_before_trimesh(tmp_path: Path) -> None:
    path = tmp_path / "many.obj"
    path.write_bytes(b"v 0 0 0\nv 1 0 0\nv 0 1 0\n" + b"f 1 2 3\n" * (glbcheck.MAX_DRAWN_TRIANGLES + 1))
    with pytest.raises(rn.AssetError, match="5,000,001 faces; limit 5,000,000"):
        modelfiles.check_other_format(path)
    small = tmp_path / "small.obj"
    small.write_bytes(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    modelfiles.check_other_format(small)  # no error
