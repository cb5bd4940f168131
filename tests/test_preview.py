"""Offline previews: one renderer path (VTK off-screen, numpy fallback) for results and the sandbox."""

from __future__ import annotations

import ctypes.util
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import rodin_nb as rn
from rodin_nb import preview
from rodin_nb.preview import fit_distance, preview_png, render_png, renderer_name
from rodin_nb.sandbox.meshgen import make_glb, make_preview

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "glb"
GLBS = sorted(FIXTURES.glob("*.glb"))


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def covers_centre(img: np.ndarray) -> bool:
    """Something other than the background (the corner's colour) fills the middle of the image."""
    h, w = img.shape[:2]
    centre = img[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].astype(int)
    return bool((np.abs(centre - img[2, 2].astype(int)).sum(axis=-1) > 30).mean() > 0.2)


class TestRenderPng:
    @pytest.mark.parametrize("path", GLBS, ids=lambda p: p.name)
    def test_every_fixture_renders(self, path: Path) -> None:
        img = pixels(render_png(path, size=128))
        assert img.shape == (128, 128, 3)
        assert covers_centre(img) or path.name.startswith("no_indices")  # a flat, irregular footprint

    def test_deterministic_and_shared_with_the_sandbox(self) -> None:
        """Same bytes in, same PNG out; the sandbox's preview is this very renderer's output."""
        glb = make_glb({"prompt": "a lamp", "seed": 3, "quality": "extra-low"})
        first = render_png(glb)
        assert first == render_png(glb) == make_preview(glb)
        assert first.startswith(b"\x89PNG\r\n\x1a\n") and b"tIME" not in first  # no timestamp chunk

    def test_software_fallback(self) -> None:
        glb = (FIXTURES / "Duck.glb").read_bytes()
        png = render_png(glb, size=96, renderer="software")
        assert png == render_png(glb, size=96, renderer="software")
        img = pixels(png)
        assert img.shape == (96, 96, 3) and covers_centre(img)

    def test_environment_selects_the_software_renderer(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("RODIN_NB_PREVIEW_RENDERER", "software")
        assert renderer_name() == "software"
        glb = (FIXTURES / "BoxTextured.glb").read_bytes()
        assert render_png(glb, 64) == render_png(glb, 64, renderer="software")

    def test_gl_renderer_is_used_where_the_test_command_installs_it(self) -> None:
        """scripts/test installs VTK and EGL; CI must not quietly fall back to the coarse renderer."""
        has_gl = ctypes.util.find_library("EGL") or ctypes.util.find_library("OSMesa")
        if not has_gl and os.environ.get("RODIN_NB_REQUIRE_GL") != "1":
            pytest.skip("no EGL/OSMesa here: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri")
        assert renderer_name() in ("vtk-egl", "vtk-osmesa")

    @pytest.mark.parametrize("content", [b"", b"glTF\x02\x00\x00\x00", b"hello", b"glTF" + b"\x00" * 40])
    def test_bad_input_names_the_file(self, tmp_path: Path, content: bytes) -> None:
        path = tmp_path / "bad.glb"
        path.write_bytes(content)
        with pytest.raises(rn.AssetError, match=r"bad\.glb"):
            render_png(path)
        with pytest.raises(rn.AssetError, match="GLB"):
            render_png(content)

    def test_missing_file_and_bad_options(self, tmp_path: Path) -> None:
        with pytest.raises(rn.AssetError, match=r"absent\.glb"):
            render_png(tmp_path / "absent.glb")
        with pytest.raises(ValueError, match="size"):
            render_png(FIXTURES / "Duck.glb", size=4)
        with pytest.raises(ValueError, match="renderer"):
            render_png(FIXTURES / "Duck.glb", renderer="opengl")  # type: ignore[arg-type]

    def test_other_formats_go_through_trimesh(self, tmp_path: Path) -> None:
        import trimesh

        path = tmp_path / "box.stl"
        trimesh.creation.box(extents=(1, 2, 3)).export(path)
        assert covers_centre(pixels(render_png(path, size=64)))


class TestPreviewOf:
    def test_service_preview_wins(self, tmp_path: Path) -> None:
        """A run's own preview (from the service) is used as is; without one the GLB is rendered."""

        class FakeRun:
            glb = FIXTURES / "Duck.glb"
            preview = tmp_path / "service.png"

        FakeRun.preview.write_bytes(b"\x89PNG service")
        assert preview_png(FakeRun()) == b"\x89PNG service"
        jpeg = io.BytesIO()
        Image.new("RGB", (8, 8), "red").save(jpeg, format="JPEG")
        FakeRun.preview.write_bytes(jpeg.getvalue())
        assert pixels(preview_png(FakeRun())).shape == (8, 8, 3)  # converted to PNG
        FakeRun.preview = tmp_path / "gone.png"
        assert preview_png(FakeRun(), size=64) == render_png(FIXTURES / "Duck.glb", 64)

    def test_nothing_to_preview(self) -> None:
        class Pending:
            glb = None
            preview = None

        with pytest.raises(rn.AssetError, match="no GLB"):
            preview_png(Pending())


def test_fit_distance_frames_flat_models_tightly() -> None:
    """A tight fit of the box corners, not of the bounding sphere (a slab would look tiny)."""
    cube = np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    slab = np.array([[-1.0, -0.05, -1.0], [1.0, 0.05, 1.0]])
    assert fit_distance(slab, 30.0) < fit_distance(cube, 30.0)
    scaled = fit_distance(cube * 1000.0, 30.0)
    assert scaled == pytest.approx(1000.0 * fit_distance(cube, 30.0))
    assert preview.view_direction() @ preview.view_direction() == pytest.approx(1.0)
