"""The viewer, headless: GLB -> buffers -> pythreejs widgets, grids, toolbar, static fallback.

Outside a kernel ipywidgets opens a dummy comm, so widgets are built and driven in plain pytest. Every
file in tests/fixtures/glb (files from other tools) and real sandbox results go through the same checks:
triangle counts equal trimesh's, 1-D uint32 indices, float32 C-contiguous attributes, materials and
textures where the file has them, node transforms applied, and a camera that frames the bounding box.
"""

from __future__ import annotations

import base64
import io
import json
import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh
from PIL import Image

import rodin_nb as rn
from rodin_nb.sandbox import serve
from rodin_nb.sandbox.meshgen import make_glb
from rodin_nb.viewer import Grid, View, compare, compare_runs, load_model, show
from rodin_nb.viewer._three import _environment_png, column_major

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "glb"
GLBS = sorted(FIXTURES.glob("*.glb"))
TEXTURED = {"Duck.glb", "BoxTextured.glb"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def trimesh_scene(source: Path | bytes) -> Any:
    if isinstance(source, bytes):
        return trimesh.load(io.BytesIO(source), file_type="glb", force="scene", process=False)
    return trimesh.load(source, force="scene", process=False)


def drawn_triangles(scene: Any) -> int:
    """Triangles trimesh would draw: every node's geometry, instances counted."""
    return sum(len(scene.geometry[scene.graph[node][1]].faces) for node in scene.graph.nodes_geometry)


def corners(bounds: np.ndarray) -> np.ndarray:
    lo, hi = bounds
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def quaternion_matrix(q: tuple[float, ...]) -> np.ndarray:
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def assert_framed(view: View | Grid, world_bounds: np.ndarray, cell: int = 0) -> None:
    """Every corner of the model's box, through the fit transform, lies inside the camera's frustum."""
    c = view.cells[cell]
    built = c.item.built if c.item else None
    assert built is not None
    fit = np.array(built.group.matrix).reshape(4, 4).T  # three.js stores column-major
    pts = corners(world_bounds) @ fit[:3, :3].T + fit[:3, 3]
    cam = c.camera
    rot = quaternion_matrix(cam.quaternion)
    local = (pts - np.array(cam.position)) @ rot  # world -> camera coordinates
    depth = -local[:, 2]
    assert (depth > cam.near).all() and (depth < cam.far).all()
    tan_v = math.tan(math.radians(cam.fov) / 2)
    assert (np.abs(local[:, 1]) / depth <= tan_v * 1.0001).all()
    assert (np.abs(local[:, 0]) / depth <= tan_v * cam.aspect * 1.0001).all()
    # ...and fills a fair part of it (not a speck in the middle).
    assert (
        max(
            (np.abs(local[:, 1]) / depth).max() / tan_v,
            (np.abs(local[:, 0]) / depth).max() / (tan_v * cam.aspect),
        )
        > 0.6
    )
    target = np.array(c.controls.target)
    assert np.allclose(target, 0.0)  # the orbit centre is the model's centre (origin after the fit)


def attribute_array(geometry: Any, name: str) -> np.ndarray:
    return np.asarray(geometry.attributes[name].array)


class _RecordingComm:
    """Stand-in for ``comm.create_comm``: counts the bytes every widget message would put on the wire."""

    def __init__(self) -> None:
        self.json_bytes = 0
        self.buffer_bytes = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from comm.base_comm import BaseComm

        recorder = self

        class Comm(BaseComm):  # type: ignore[misc]
            def publish_msg(
                self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
            ) -> None:
                recorder.json_bytes += len(json.dumps(data, default=str))
                recorder.buffer_bytes += sum(memoryview(b).nbytes for b in buffers or [])

        return Comm(*args, **kwargs)


# ---------------------------------------------------------------------------- loading


class TestLoad:
    @pytest.mark.parametrize("path", GLBS, ids=lambda p: p.name)
    def test_buffers_match_trimesh(self, path: Path) -> None:
        """Counts equal trimesh's; indices are 1-D uint32; attributes float32 and C-contiguous."""
        scene = trimesh_scene(path)
        model = load_model(path)
        assert model.stats.triangles == drawn_triangles(scene)
        assert sum(p.triangles for p in model.primitives) == sum(
            len(g.faces) for g in scene.geometry.values()
        )
        for prim in model.primitives:
            assert prim.index.dtype == np.uint32 and prim.index.ndim == 1
            assert prim.index.max() < len(prim.position)
            for array in (prim.position, prim.normal, prim.uv, prim.color):
                if array is not None:
                    assert array.dtype == np.float32 and array.flags.c_contiguous
                    assert type(array) is np.ndarray  # never a trimesh TrackedArray
        assert np.allclose(model.bounds, scene.bounds, atol=1e-5)

    def test_textures_are_the_files_own_bytes(self) -> None:
        """Embedded images go out as stored (no decode/re-encode), with their size in the stats."""
        model = load_model(FIXTURES / "Duck.glb")
        (texture,) = model.textures
        raw = (FIXTURES / "Duck.glb").read_bytes()
        assert texture.mime == "image/png" and texture.data in raw and texture.srgb
        assert model.stats.textures == ((512, 512),)
        assert model.primitives[0].material.maps["map"] is texture

    def test_node_transforms_are_kept_per_instance(self) -> None:
        """Duck's mesh sits under scaled and rotated nodes: the instance carries trimesh's world matrix."""
        scene = trimesh_scene(FIXTURES / "Duck.glb")
        model = load_model(FIXTURES / "Duck.glb")
        (inst,) = model.instances
        matrix, _ = scene.graph[inst.name]
        assert not np.allclose(matrix, np.eye(4))
        assert np.allclose(inst.matrix, matrix)

    def test_vertex_colours_and_default_material(self) -> None:
        model = load_model(FIXTURES / "cubevc.glb")
        (prim,) = model.primitives
        assert prim.color is not None and prim.color.shape == (len(prim.position), 3)
        assert np.allclose(prim.color[0], [1.0, 0.0, 1.0])
        assert prim.material.default and model.stats.materials == 0

    def test_no_indices_and_several_nodes(self) -> None:
        model = load_model(FIXTURES / "no_indices_3storybuilding.glb")
        assert len(model.instances) == 3 and model.stats.triangles == 72
        for prim in model.primitives:
            assert len(prim.index) == len(prim.position)  # one index per stored vertex

    def test_pbr_maps_and_samplers_from_the_file(self) -> None:
        """A PBR result: base colour, metallic-roughness and normal maps; clamp-to-edge as in its sampler."""
        model = load_model(make_glb({"prompt": "a bronze helmet", "seed": 3, "quality": "extra-low"}))
        material = model.primitives[0].material
        assert set(material.maps) == {"map", "metalnessRoughnessMap", "normalMap"}
        assert material.maps["map"].srgb and not material.maps["normalMap"].srgb
        assert material.maps["map"].sampler.wrap_s == "ClampToEdgeWrapping"
        assert material.metalness == 1.0 and material.roughness == 1.0

    @pytest.mark.parametrize(
        ("content", "why"),
        [
            (b"", "empty"),
            (b"not a model at all", "text"),
            (b"glTF" + struct.pack("<II", 2, 400) + b"\x00" * 20, "truncated"),
        ],
    )
    def test_unreadable_files_name_the_file(self, tmp_path: Path, content: bytes, why: str) -> None:
        path = tmp_path / f"broken-{why}.glb"
        path.write_bytes(content)
        with pytest.raises(rn.AssetError, match=f"broken-{why}.glb"):
            load_model(path)
        with pytest.raises(rn.RodinError, match=f"broken-{why}.glb"):
            show(path)

    def test_missing_file_and_wrong_type(self, tmp_path: Path) -> None:
        with pytest.raises(rn.AssetError, match=r"nowhere\.glb"):
            show(tmp_path / "nowhere.glb")
        with pytest.raises(TypeError, match="Run, a path"):
            show(42)


# ---------------------------------------------------------------------------- one view


class TestView:
    @pytest.mark.parametrize("path", GLBS, ids=lambda p: p.name)
    def test_widgets_for_every_fixture(self, path: Path) -> None:
        """Geometry, materials, transforms and framing for files made by other tools."""
        scene = trimesh_scene(path)
        view = rn.show(path)
        built = view.built
        assert isinstance(view, View) and built is not None
        assert sum(len(attribute_array(m.geometry, "position")) for m in built.meshes) == sum(
            len(scene.geometry[scene.graph[n][1]].vertices) for n in scene.graph.nodes_geometry
        )
        triangles = 0
        for mesh in built.meshes:
            index = np.asarray(mesh.geometry.index.array)
            assert index.dtype == np.uint32 and index.ndim == 1
            triangles += len(index) // 3
            for name in mesh.geometry.attributes:
                array = attribute_array(mesh.geometry, name)
                assert array.dtype == np.float32 and array.flags.c_contiguous, name
                assert mesh.geometry.attributes[name].normalized is False
            matrix, _ = scene.graph[mesh.name]
            assert mesh.matrixAutoUpdate is False
            assert np.allclose(mesh.matrix, column_major(matrix))
            assert mesh.material.envMap is not None  # metals reflect something
        assert triangles == drawn_triangles(scene)
        if path.name in TEXTURED:
            assert all(m.material.map is not None for m in built.meshes)
            assert built.textures and built.textures[0].imageUri.startswith("data:image/png;base64,")
        else:
            assert all(m.material.map is None for m in built.meshes)
        if path.name == "cubevc.glb":
            assert built.meshes[0].material.vertexColors == "VertexColors"
            assert "color" in built.meshes[0].geometry.attributes
        assert_framed(view, scene.bounds)
        assert f"{drawn_triangles(scene):,} triangles" in view.cell.stats.value

    def test_framing_is_independent_of_size_and_position(self) -> None:
        """A tiny model far from the origin and a huge one are framed alike."""
        box = trimesh.creation.box(extents=(1.0, 2.0, 0.5))
        poses = []
        # (float32 positions: a millimetre box may sit metres away, not kilometres, and stay a box)
        for scale, offset in ((1e-3, (40.0, -25.0, 10.0)), (1e4, (0.0, 0.0, 0.0))):
            mesh = box.copy()
            mesh.apply_scale(scale)
            mesh.apply_translation(offset)
            glb = trimesh.Scene(mesh).export(file_type="glb")
            view = show(glb)
            assert_framed(view, mesh.bounds)
            poses.append(view.cell.camera.position)
        assert np.allclose(poses[0], poses[1], atol=1e-3)

    def test_toolbar(self) -> None:
        """Wireframe, flat shading, textures off/on, dark background and reset act on the widgets."""
        view = show(FIXTURES / "Duck.glb")
        built = view.built
        assert built is not None
        material = built.materials[0]
        texture = material.map
        view.wireframe_button.value = True
        assert material.wireframe is True
        view.flat_button.value = True
        assert material.flatShading is True
        view.textures_button.value = False
        assert material.map is None
        view.textures_button.value = True
        assert material.map is texture
        view.dark_button.value = True
        assert view.cell.scene.background == "#1f2328" and view.state["background"] == "dark"
        start = view.cell.camera.position
        view.cell.camera.position = (5.0, 5.0, 5.0)
        view.reset_button.click()
        assert view.cell.camera.position == start
        assert not view.reset_button.disabled  # re-enabled after the action

    def test_options_are_checked(self) -> None:
        with pytest.raises(ValueError, match="background"):
            show(FIXTURES / "Duck.glb", background="blue")
        with pytest.raises(ValueError, match="width"):
            show(FIXTURES / "Duck.glb", width=10)

    def test_initial_toggles(self) -> None:
        view = show(FIXTURES / "Duck.glb", wireframe=True, textures=False, background="dark")
        material = view.built.materials[0]  # type: ignore[union-attr]
        assert material.wireframe and material.map is None
        assert view.cell.scene.background == "#1f2328"

    def test_static_fallback_bundle(self) -> None:
        """Without a widget front end the display still has a preview image and the stats."""
        view = show(FIXTURES / "BoxTextured.glb")
        bundle = view._repr_mimebundle_()
        assert WIDGET_VIEW in bundle
        png = base64.b64decode(bundle["image/png"])
        assert Image.open(io.BytesIO(png)).size[0] >= 200
        assert "12 triangles" in bundle["text/html"] and "data:image/png;base64," in bundle["text/html"]
        assert "BoxTextured.glb" in bundle["text/html"]
        assert WIDGET_VIEW in show(FIXTURES / "Duck.glb", static=False)._repr_mimebundle_()
        assert "image/png" not in show(FIXTURES / "Duck.glb", static=False)._repr_mimebundle_()

    def test_payload_is_binary_and_close_to_raw(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Geometry goes as binary buffers: the wire carries about the raw bytes, JSON stays small."""
        import comm

        recorder = _RecordingComm()
        monkeypatch.setattr(comm, "create_comm", recorder)
        glb = make_glb({"prompt": "a carved chair", "seed": 5, "quality": "extra-low"})
        model = load_model(glb)
        show(glb, static=False)
        geometry = sum(p.nbytes for p in model.primitives)
        assert recorder.buffer_bytes == geometry
        images = sum(len(t.data) for t in model.textures) + len(_environment_png())
        # JSON: the images as base64 data URIs, plus a fixed ~60 kB of widget state (toolbar, lights...).
        assert recorder.json_bytes < images * 4 / 3 + 80_000


# ---------------------------------------------------------------------------- grids


class TestGrid:
    def test_two_by_two_with_linked_cameras(self) -> None:
        grid = compare(GLBS[:4])
        assert isinstance(grid, Grid) and len(grid.cells) == 4 and grid.pages == 1
        cameras = {id(c.camera) for c in grid.cells}
        assert len(cameras) == 4
        linked = {(id(link.source[0]), link.source[1], id(link.target[0])) for link in grid._links}
        for a, b in zip(grid.cells, grid.cells[1:], strict=False):
            for attr in ("position", "quaternion", "zoom"):
                assert (id(a.camera), attr, id(b.camera)) in linked
            assert (id(a.controls), "target", id(b.controls)) in linked
        poses = {c.camera.position for c in grid.cells}
        assert len(poses) == 1  # one pose frames every cell
        for k, path in enumerate(GLBS[:4]):
            assert_framed(grid, trimesh_scene(path).bounds, cell=k)
        assert [c.title.value.count(p.name) > 0 for c, p in zip(grid.cells, GLBS[:4], strict=True)] == [
            True
        ] * 4

    def test_pages_when_more_cells_than_live_renderers(self) -> None:
        """Never more renderers than max_live; the rest is reached by paging, each cell says what it is."""
        targets = [*GLBS, *GLBS[:2]]  # 7 models
        grid = compare(targets, cols=2, max_live=4)
        assert len(grid.cells) == 4 and grid.pages == 2
        assert "page 1 of 2" in grid._status.value
        first = [c.item.target for c in grid.cells]
        grid._next.click()
        assert grid.page == 1 and "page 2 of 2" in grid._status.value
        shown = [c.item.target for c in grid.cells if c.item is not None]
        assert shown == targets[4:] and shown != first
        assert grid.cells[3].box.layout.display == "none"  # the 8th slot of a 7-model grid is hidden
        grid._next.click()
        assert grid.page == 0
        with pytest.raises(ValueError, match="max_live"):
            compare(targets, max_live=9)

    def test_shared_scale_keeps_relative_sizes(self) -> None:
        grid = compare(
            [FIXTURES / "BoxTextured.glb", FIXTURES / "no_indices_3storybuilding.glb"], scale="shared"
        )
        small, big = (c.item.built for c in grid.cells)
        assert small is not None and big is not None
        assert small.fit[0, 0] == pytest.approx(big.fit[0, 0])

    def test_static_grid_shows_every_cell(self) -> None:
        grid = compare([*GLBS, *GLBS[:2]], max_live=2)
        bundle = grid._repr_mimebundle_()
        assert bundle["text/html"].count("<img") == 7
        sheet = Image.open(io.BytesIO(base64.b64decode(bundle["image/png"])))
        assert sheet.size[0] >= 3 * 200

    def test_labels(self) -> None:
        grid = compare(GLBS[:2], labels=["left", "right"])
        assert "left" in grid.cells[0].title.value and "right" in grid.cells[1].title.value
        with pytest.raises(ValueError, match="labels has 1 entries for 2"):
            compare(GLBS[:2], labels=["only one"])
        with pytest.raises(ValueError, match="2x1 grid has 2 cells"):
            compare(GLBS[:3], rows=2, cols=1)


# ---------------------------------------------------------------------------- sandbox results


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Any]]:
    """Four real results from the sandbox: seeds 1 and 2 times two tiers."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("SCENARIO_SDK_API_KEY", "SCENARIO_SDK_API_SECRET", "SCENARIO_BASE_URL", "RODIN_NB_HOME"):
            mp.delenv(name, raising=False)
        with serve(job_seconds=0.3, parallel_jobs=4) as sb:
            client = rn.connect(base_url=sb.url, workspace=tmp_path_factory.mktemp("ws"), quiet=True)
            try:
                # Sketch always runs at medium quality; Regular is asked for the smallest meshes.
                tiers = ({"tier": "Regular", "quality": "extra-low"}, {"tier": "Sketch"})
                started = [
                    client.generate(prompt="a carved wooden chair", seed=seed, **tier)
                    for seed in (1, 2)
                    for tier in tiers
                ]
                yield [run.wait(timeout=60) for run in started]
            finally:
                client.close()


class TestSandboxResults:
    def test_run_show(self, runs: list[Any]) -> None:
        run = runs[0]
        view = run.show()
        scene = trimesh_scene(run.glb)
        built = view.built
        assert built is not None
        assert sum(len(np.asarray(m.geometry.index.array)) // 3 for m in built.meshes) == drawn_triangles(
            scene
        )
        material = built.meshes[0].material
        assert material.map is not None and material.metalnessMap is material.roughnessMap is not None
        assert material.normalMap is not None
        assert_framed(view, scene.bounds)
        assert "seed=1" in view.cell.title.value and "tier=Regular" in view.cell.title.value
        assert view.model is not None and view.model.stats.triangles == run.mesh_stats["faces"]

    def test_static_bundle_uses_the_service_preview(self, runs: list[Any]) -> None:
        run = runs[0]
        bundle = rn.show(run)._repr_mimebundle_()
        assert base64.b64decode(bundle["image/png"]) == run.preview.read_bytes()

    def test_compare_runs_by_seed_and_tier(self, runs: list[Any]) -> None:
        grid = compare_runs(runs, rows="seed", cols="tier")
        assert grid._layout.row_headers == ["seed=1", "seed=2"]
        assert grid._layout.col_headers == ["tier=Regular", "tier=Sketch"]
        assert [c.item.target for c in grid.cells] == runs
        for cell, run in zip(grid.cells, runs, strict=True):
            scene = trimesh_scene(run.glb)
            built = cell.item.built
            assert sum(len(np.asarray(m.geometry.index.array)) // 3 for m in built.meshes) == drawn_triangles(
                scene
            )
        # Sketch forces medium quality: the counts differ across the columns.
        assert runs[0].mesh_stats["faces"] != runs[1].mesh_stats["faces"]
        same = rn.compare(runs, rows="seed", cols="tier")
        assert same._layout.table == grid._layout.table

    def test_auto_labels_and_missing_cells(self, runs: list[Any]) -> None:
        grid = rn.compare(runs)
        assert "seed=1 · tier=Regular" in grid.cells[0].title.value
        partial = compare_runs(runs[:3], rows="seed", cols="tier")
        assert "no run for seed=2, tier=Sketch" in partial.cells[3].message.value
        assert partial.cells[3].renderer.layout.display == "none"

    def test_compare_runs_refuses_ambiguous_axes(self, runs: list[Any]) -> None:
        with pytest.raises(ValueError, match="share the cell seed=1; they differ in quality, tier"):
            compare_runs(runs, rows="seed", cols=None)
        with pytest.raises(ValueError, match="'sede' is not a parameter"):
            compare_runs(runs, rows="sede", cols="tier")

    def test_run_without_a_glb(self, runs: list[Any]) -> None:
        """A run with no file yet: show() says so and how to wait; a grid cell explains it in words."""

        class Pending:
            run_id, status, error, params, glb, preview = (
                "run_x",
                "in-progress",
                None,
                {"seed": 9},
                None,
                None,
            )

        with pytest.raises(rn.AssetError, match=r"run run_x has no GLB file: status in-progress; wait"):
            show(Pending())
        grid = compare([runs[0], Pending()])
        assert "no GLB file" in grid.cells[1].message.value
        assert grid.cells[1].renderer.layout.display == "none"


# ---------------------------------------------------------------------------- static export


@pytest.mark.kernel
def test_static_html_export_shows_previews_and_stats(tmp_path: Path) -> None:
    """Executed in a real kernel: each display is the widget plus a separate static output (preview
    image and stats), which nbconvert's HTML keeps with widget state (next to the widget view) and
    without it (alone)."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    (tmp_path / "Duck.glb").write_bytes((FIXTURES / "Duck.glb").read_bytes())
    (tmp_path / "cubevc.glb").write_bytes((FIXTURES / "cubevc.glb").read_bytes())
    cells = ["import rodin_nb as rn\nrn.show('Duck.glb')", "rn.compare(['Duck.glb', 'cubevc.glb'])"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    for cell in nb.cells:
        live, static = cell.outputs
        assert set(live["data"]) == {WIDGET_VIEW, "text/plain"}
        assert {"image/png", "text/html", "text/plain"} <= set(static["data"])
        token = static["transient"]["display_id"] if "transient" in static else None
        assert token is None or token in static["data"]["text/html"]
        assert "rodin-nb-static-" in static["data"]["text/html"]
    assert "widgets" in nb.metadata  # live state saved: a widget front end shows the 3D view
    with_state, _ = HTMLExporter().from_notebook_node(nb)
    config = Config()
    config.ClearMetadataPreprocessor.enabled = True  # drop widget state: what GitHub and offline HTML see
    without_state, _ = HTMLExporter(config=config).from_notebook_node(nb)
    for body in (with_state, without_state):
        assert body.count("data:image/png;base64,") >= 3  # one view + two grid cells
        assert "4,212 triangles" in body and "48 triangles" in body
    view_tag = '<script type="application/vnd.jupyter.widget-view+json">'
    assert with_state.count(view_tag) == 2 and view_tag not in without_state


def _capture_displays(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any], str | None]]:
    """What ``rodin_nb.statics`` publishes, as (kind, bundle, display_id), with a kernel pretended."""
    import IPython.display

    from rodin_nb import progress

    shown: list[tuple[str, dict[str, Any], str | None]] = []
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(
        IPython.display,
        "display",
        lambda data, raw=False, display_id=None: shown.append(("display", data, display_id)),
    )
    monkeypatch.setattr(
        IPython.display,
        "update_display",
        lambda data, raw=False, display_id=None: shown.append(("update", data, display_id)),
    )
    return shown


@pytest.mark.parametrize("paths", [["Duck.glb"], ["Duck.glb", "cubevc.glb"]])
def test_display_is_the_widget_then_its_static_copy(
    monkeypatch: pytest.MonkeyPatch, paths: list[str]
) -> None:
    """In a kernel: the widget view (empty text/plain), then a separate static output (an <img> per
    model, the stats, a PNG) whose class the widget's hidden <style> hides where widgets render."""
    shown = _capture_displays(monkeypatch)
    targets = [FIXTURES / p for p in paths]
    view = show(targets[0]) if len(targets) == 1 else compare(targets)
    view._ipython_display_()
    (_, live, _), (_, static, token) = shown
    assert set(live) == {WIDGET_VIEW, "text/plain"} and live["text/plain"] == ""
    assert token and token.startswith("rodin-nb-static-")
    page = static["text/html"]
    assert f'class="rodin-nb-static {token}"' in page
    assert page.count("<img ") == len(paths) and "4,212 triangles" in page
    assert "text-align:left" in page and "margin:0" in page  # pinned left: not centred, not pushed right
    assert Image.open(io.BytesIO(base64.b64decode(static["image/png"]))).width > 0
    # The hider lives inside the live widget (an HTML child of the box displayed).
    from ipywidgets.widgets.widget import _instances  # Widget.widgets is deprecated in ipywidgets 8

    box = _instances[live[WIDGET_VIEW]["model_id"]]
    assert f".{token}{{display:none!important}}" in box.children[0].value
    assert box.children[1] is view


def test_static_false_and_outside_a_kernel_are_one_output(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown: list[dict[str, Any]] = []
    monkeypatch.setattr(
        IPython.display, "display", lambda data, raw=False, display_id=None: shown.append(data)
    )
    show(FIXTURES / "Duck.glb")._ipython_display_()  # not in a kernel: the whole bundle, once
    (bundle,) = shown
    assert {WIDGET_VIEW, "text/html", "image/png"} <= set(bundle)
    shown.clear()
    monkeypatch.setattr("rodin_nb.progress.in_notebook", lambda: True)
    show(FIXTURES / "Duck.glb", static=False)._ipython_display_()
    (bundle,) = shown
    assert WIDGET_VIEW in bundle and "text/html" not in bundle
