"""Offline preview images (PNG) of 3D results, for galleries, run-log tables and static notebook outputs.

One function renders every preview in the toolkit, the sandbox's included: :func:`render_png`.

Renderer: VTK, off-screen (``vtkEGLRenderWindow`` over Mesa or a GPU; ``vtkOSOpenGLRenderWindow`` where
only OSMesa exists). VTK is maintained by Kitware, its PyPI wheels select the OpenGL platform at run
time (no display, no Xvfb), and its own glTF importer reads the file: PBR metallic-roughness materials,
textures and samplers, node transforms, vertex colours, non-indexed primitives. Where VTK or a GL
platform is missing, a small vectorised numpy rasteriser (base colour and Lambert shading only) takes
over, so a preview always exists. ``docs/viewer.md`` explains the choice against pyrender, trimesh's
pyglet path and matplotlib.

Determinism: the same bytes give the same PNG on a given machine and renderer (fixed camera, lights and
PNG encoder settings, no timestamps, every VTK call in one worker process); the sandbox relies on it for
byte-identical results.
"""

from __future__ import annotations

import ctypes.util
import io
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from ._renderproc import WORKER, WorkerDied
from .errors import AssetError
from .glbcheck import check_glb
from .modelfiles import check_other_format, read_checked

if TYPE_CHECKING:
    from .jobs import Run

__all__ = [
    "VIEW_AZIMUTH_DEG",
    "VIEW_ELEVATION_DEG",
    "fit_distance",
    "preview_png",
    "render_png",
    "renderer_name",
    "view_direction",
]

log = logging.getLogger("rodin_nb.preview")

#: The three-quarter view shared by previews and the viewer's initial camera (degrees, glTF Y-up).
VIEW_AZIMUTH_DEG = 35.0
VIEW_ELEVATION_DEG = 22.0

RendererName = Literal["vtk-egl", "vtk-osmesa", "software"]

# Every VTK call runs in one worker process (rodin_nb/_renderproc.py) on its main thread, which owns the
# GL context: one render at a time, and the same context every time. (A context reused from several
# threads gave history-dependent pixels with Mesa; a fresh context per render is deterministic but
# compiles every shader again, ~3x slower.) A crash or a runaway allocation in VTK ends that process,
# never the caller's; files are checked first (rodin_nb/glbcheck.py) so that should not happen at all.
_PROBED: dict[str, bool] = {}
_WINDOWS: dict[str, Any] = {}
_SUPERSAMPLE = 2  # render at 2x and average 2x2 blocks: anti-aliasing that stays deterministic

F64 = NDArray[np.float64]


def view_direction() -> F64:
    """Unit vector from the model's centre towards the camera (azimuth about +Y from +Z, then elevation)."""
    az, el = math.radians(VIEW_AZIMUTH_DEG), math.radians(VIEW_ELEVATION_DEG)
    return np.array([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])


def fit_distance(bounds: F64, fov_deg: float, aspect: float = 1.0, margin: float = 1.08) -> float:
    """Camera distance from the bounding box's centre, along :func:`view_direction`, that frames the box.

    Every corner of the box ends up inside the perspective frustum (vertical ``fov_deg``, ``aspect`` =
    width / height) with ``margin`` to spare: a tight fit for flat or long models, where the bounding
    sphere would leave them small in the frame.
    """
    lo, hi = np.asarray(bounds, dtype=np.float64)
    centre = (lo + hi) / 2
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    back = view_direction()
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    rel = corners - centre
    x, y, z = rel @ right, rel @ up, rel @ back
    tan_v = math.tan(math.radians(fov_deg) / 2) / margin
    tan_h = tan_v * aspect
    need = np.maximum(z + np.abs(x) / tan_h, z + np.abs(y) / tan_v)
    radius = float(np.linalg.norm(hi - lo)) / 2
    return max(float(need.max()), radius * 1e-3, 1e-9)


# --------------------------------------------------------------------------- public face


def render_png(
    source: bytes | str | os.PathLike[str],
    size: int = 256,
    *,
    renderer: Literal["auto", "vtk", "software"] | None = None,
) -> bytes:
    """Render a 3D file to a square PNG preview.

    Parameters
    ----------
    source : GLB bytes, or a path to any file trimesh reads (GLB/glTF are read by VTK directly).
    size : edge of the square image in pixels.
    renderer : ``"vtk"``, ``"software"`` or ``"auto"`` (default; also ``$RODIN_NB_PREVIEW_RENDERER``):
        VTK off-screen when it and a GL platform are available, else the numpy rasteriser.

    Returns
    -------
    bytes
        An RGB PNG, ``size`` x ``size``; equal input gives equal bytes on a given machine and renderer.

    Raises
    ------
    AssetError : the file cannot be read (the message names it).
    """
    if size < 8 or size > 4096:
        raise ValueError(f"size must be between 8 and 4096 pixels, got {size}")
    glb, name = _as_glb(source)
    choice = renderer or os.environ.get("RODIN_NB_PREVIEW_RENDERER") or "auto"
    if choice not in ("auto", "vtk", "software"):
        raise ValueError(f"renderer must be 'auto', 'vtk' or 'software', got {choice!r}")
    if choice != "software":
        platform = _vtk_platform()
        if platform is not None:
            return _render_vtk(glb, name, size, platform)
        if choice == "vtk":
            raise RuntimeError(
                "VTK off-screen rendering is not available: pip install 'rodin_nb[preview]' and provide EGL "
                "(Debian: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri) or OSMesa (libosmesa6)"
            )
    return _render_software(glb, name, size)


def renderer_name() -> RendererName:
    """The renderer :func:`render_png` uses here by default: ``vtk-egl``, ``vtk-osmesa`` or ``software``."""
    if os.environ.get("RODIN_NB_PREVIEW_RENDERER") == "software":
        return "software"
    platform = _vtk_platform()
    return "software" if platform is None else ("vtk-egl" if platform == "egl" else "vtk-osmesa")


def preview_png(target: Run | bytes | str | os.PathLike[str], size: int = 256) -> bytes:
    """The preview of a result as PNG: the service's preview image when the run has one, else a render."""
    preview = getattr(target, "preview", None)
    if isinstance(preview, Path) and preview.is_file():
        data = preview.read_bytes()
        return data if data.startswith(b"\x89PNG") else _to_png(data, preview)
    glb = getattr(target, "glb", None)
    if glb is None and not isinstance(target, (bytes, str, os.PathLike)):
        raise AssetError(f"{target!r} has no GLB file to preview")
    return render_png(glb if glb is not None else target, size)  # type: ignore[arg-type]


def _to_png(data: bytes, path: Path) -> bytes:
    """A service preview in another format (JPEG, WebP) converted, so callers always get PNG."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return _png(np.asarray(image.convert("RGB")))
    except (UnidentifiedImageError, OSError) as exc:
        raise AssetError(f"cannot read preview image {path}: {exc}") from exc


# --------------------------------------------------------------------------- input


def _as_glb(source: bytes | str | os.PathLike[str]) -> tuple[bytes, str]:
    """GLB bytes of ``source`` and a name for messages; other formats are converted with trimesh."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "<GLB bytes>"
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise AssetError(f"cannot read 3D file {name}: no such file")
        checked = read_checked(path, name)  # a GLB as it is, a .gltf packed into one GLB; both checked
        if checked is not None:
            return checked, name
        check_other_format(path, name)
        data = _convert_to_glb(path)
    if not data.startswith(b"glTF"):
        raise AssetError(f"cannot read 3D file {name}: not a binary glTF (GLB) file")
    check_glb(data, name)
    return data, name


def _convert_to_glb(path: Path) -> bytes:
    import trimesh

    try:
        scene: Any = trimesh.load(str(path), force="scene", process=False)
        out: bytes = scene.export(file_type="glb")
    except Exception as exc:
        raise AssetError(f"cannot read 3D file {path}: {exc}") from exc
    return out


# --------------------------------------------------------------------------- VTK


def _vtk_platform() -> str | None:
    """``"egl"`` or ``"osmesa"`` when VTK can render off-screen here, else None (probed once)."""
    for platform, library in (("egl", "EGL"), ("osmesa", "OSMesa")):
        if platform not in _PROBED:
            _PROBED[platform] = ctypes.util.find_library(library) is not None and _probe(platform)
        if _PROBED[platform]:
            return platform
    return None


def _window(platform: str) -> Any:
    """The off-screen window for ``platform``, made once and reused (preview thread only).

    Reuse keeps VTK's compiled shaders: after the first preview a render costs about a third of what a
    fresh window (new GL context, every shader compiled again) does.
    """
    window = _WINDOWS.get(platform)
    if window is None:
        from vtkmodules import vtkRenderingOpenGL2 as gl

        window = gl.vtkEGLRenderWindow() if platform == "egl" else gl.vtkOSOpenGLRenderWindow()
        window.SetOffScreenRendering(1)
        window.SetMultiSamples(0)
        _WINDOWS[platform] = window
    return window


def _probe(platform: str) -> bool:
    try:
        import vtkmodules  # ImportError: VTK is not installed

        version = tuple(int(p) for p in vtkmodules.__version__.split(".")[:2])
        if version < (9, 4):
            log.info("VTK %s is too old for off-screen previews (need 9.4+)", vtkmodules.__version__)
            return False
        ok = bool(WORKER.call("probe", platform, timeout=max(120.0, _timeout())))
    except Exception as exc:  # WorkerDied, ImportError, missing shared libraries, driver trouble
        log.debug("VTK %s rendering unavailable: %s", platform, exc)
        return False
    if not ok:
        log.info("VTK found no usable OpenGL context through %s", platform)
    return ok


def _timeout() -> float:
    from ._renderproc import render_timeout_s

    return render_timeout_s()


def _supports_opengl(platform: str) -> bool:
    with _quiet_vtk():
        return bool(_window(platform).SupportsOpenGL())


class _quiet_vtk:
    """Route VTK's error output into Python logging for the duration of a render."""

    def __enter__(self) -> _quiet_vtk:
        from vtkmodules.vtkCommonCore import vtkLogger, vtkOutputWindow, vtkStringOutputWindow

        self._previous = vtkOutputWindow.GetInstance()
        self._capture = vtkStringOutputWindow()
        vtkOutputWindow.SetInstance(self._capture)
        self._verbosity = vtkLogger.GetCurrentVerbosityCutoff()
        vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_OFF)
        return self

    def __exit__(self, *exc: object) -> None:
        from vtkmodules.vtkCommonCore import vtkLogger, vtkOutputWindow

        vtkOutputWindow.SetInstance(self._previous)
        vtkLogger.SetStderrVerbosity(self._verbosity)
        text = self._capture.GetOutput().strip()
        if text:
            log.debug("VTK said: %s", text)
        self.output = text


def _render_vtk(glb: bytes, name: str, size: int, platform: str) -> bytes:
    """Render in the worker process; a crash or timeout there becomes AssetError here."""
    try:
        png: bytes = WORKER.call("render", glb, name, size, platform)
    except WorkerDied as exc:
        raise AssetError(f"cannot render 3D file {name}: the preview renderer {exc.reason}") from None
    return png


def _render_in_worker(glb: bytes, name: str, size: int, platform: str) -> bytes:
    """The worker process's side of :func:`_render_vtk`: draw, supersample down, encode."""
    return _png(_downsample(_draw_vtk(glb, name, size * _SUPERSAMPLE, platform), _SUPERSAMPLE))


def _draw_vtk(glb: bytes, name: str, px: int, platform: str) -> NDArray[np.uint8]:
    """Import and draw the GLB at ``px`` x ``px``; the RGB pixels, top row first (preview thread)."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOCore import vtkMemoryResourceStream
    from vtkmodules.vtkIOImport import vtkGLTFImporter
    from vtkmodules.vtkRenderingCore import vtkLightKit, vtkRenderer, vtkWindowToImageFilter

    with _quiet_vtk() as quiet:
        window = _window(platform)
        renderer = vtkRenderer()
        try:
            window.SetSize(px, px)
            window.AddRenderer(renderer)
            stream = vtkMemoryResourceStream()
            stream.SetBuffer(glb, len(glb), True)
            importer = vtkGLTFImporter()
            importer.SetStream(stream)
            importer.SetRenderWindow(window)
            if not importer.Update() or renderer.GetActors().GetNumberOfItems() == 0:
                raise AssetError(f"cannot read 3D file {name}: {_first_error(quiet) or 'no meshes to draw'}")
            renderer.SetBackground(*_BG_BOTTOM)
            renderer.SetBackground2(*_BG_TOP)
            renderer.GradientBackgroundOn()
            renderer.RemoveAllLights()
            kit = vtkLightKit()
            kit.SetKeyLightIntensity(1.6)
            kit.AddLightsToRenderer(renderer)
            b = renderer.ComputeVisiblePropBounds()
            box = np.array([[b[0], b[2], b[4]], [b[1], b[3], b[5]]])
            centre = box.mean(axis=0)
            distance = fit_distance(box, _PREVIEW_FOV)
            camera = renderer.GetActiveCamera()
            camera.SetViewAngle(_PREVIEW_FOV)
            camera.SetFocalPoint(*centre)
            camera.SetPosition(*(centre + view_direction() * distance))
            camera.SetViewUp(0.0, 1.0, 0.0)
            renderer.ResetCameraClippingRange()
            window.Render()
            grab = vtkWindowToImageFilter()
            grab.SetInput(window)
            grab.SetInputBufferTypeToRGB()
            grab.ReadFrontBufferOff()
            grab.Update()
            image = grab.GetOutput()
            width, height, _ = image.GetDimensions()
            pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, 3)[::-1].copy()
        finally:
            renderer.ReleaseGraphicsResources(window)  # textures and buffers of this model only
            window.RemoveRenderer(renderer)
    out: NDArray[np.uint8] = pixels
    return out


def _first_error(quiet: _quiet_vtk) -> str:
    text = getattr(quiet, "_capture", None)
    output = text.GetOutput() if text is not None else ""
    lines = [line for line in output.splitlines() if line and not line.startswith(("ERROR:", "Warning:"))]
    return lines[0] if lines else ""


_CHUNK = 1 << 21  # candidate pixels per rasterisation pass of the software renderer (~100 MB of arrays)
_PREVIEW_FOV = 30.0  # narrower than the viewer's 45 degrees: less perspective distortion in thumbnails

# Light grey vertical gradient, the same in every preview (VTK's Background is the bottom colour).
_BG_TOP = (0.93, 0.93, 0.93)
_BG_BOTTOM = (0.78, 0.78, 0.78)


def _downsample(pixels: NDArray[np.uint8], factor: int) -> NDArray[np.uint8]:
    h, w = pixels.shape[0] // factor, pixels.shape[1] // factor
    blocks = pixels[: h * factor, : w * factor].reshape(h, factor, w, factor, -1).astype(np.uint32)
    total = blocks.sum(axis=(1, 3))
    out: NDArray[np.uint8] = ((total + (factor * factor) // 2) // (factor * factor)).astype(np.uint8)
    return out


def _png(pixels: NDArray[np.uint8]) -> bytes:
    """PNG with fixed encoder settings and no metadata chunks, so equal pixels give equal bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue()


# --------------------------------------------------------------------------- software fallback


def _render_software(glb: bytes, name: str, size: int) -> bytes:
    """A z-buffered, textured, Lambert-shaded orthographic view; numpy only, vectorised over pixels."""
    import trimesh

    try:
        mesh: Any = trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh", process=False)
    except Exception as exc:
        raise AssetError(f"cannot read 3D file {name}: {exc}") from exc
    verts = np.asarray(getattr(mesh, "vertices", ()), dtype=np.float64).reshape(-1, 3)
    tris = np.asarray(getattr(mesh, "faces", ()), dtype=np.int64).reshape(-1, 3)
    if len(tris) == 0:
        raise AssetError(f"cannot read 3D file {name}: no triangle meshes to draw")
    normals = np.asarray(mesh.vertex_normals, dtype=np.float64)
    colours = _vertex_colours(mesh, len(verts))

    # The shared three-quarter view, orthographic, fitted to the bounding sphere.
    light = np.array([0.35, 0.6, 0.72])
    light /= np.linalg.norm(light)
    d = view_direction()
    forward = -d
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    rot = np.stack([right, up, -forward])  # rows: camera x, y, z (camera looks down -z)
    centre = (verts.max(axis=0) + verts.min(axis=0)) / 2
    v = (verts - centre) @ rot.T
    nv = normals @ rot.T
    radius = max(float(np.linalg.norm(v, axis=1).max()), 1e-9)
    scale = (size * 0.46) / radius
    sx = size / 2 + v[:, 0] * scale
    sy = size / 2 - v[:, 1] * scale
    depth = -v[:, 2]  # smaller is nearer

    x0, x1, x2 = sx[tris[:, 0]], sx[tris[:, 1]], sx[tris[:, 2]]
    y0, y1, y2 = sy[tris[:, 0]], sy[tris[:, 1]], sy[tris[:, 2]]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    keep = np.abs(area) > 1e-12
    tris, x0, x1, x2, y0, y1, y2, area = (a[keep] for a in (tris, x0, x1, x2, y0, y1, y2, area))
    xmin = np.clip(np.floor(np.minimum(np.minimum(x0, x1), x2)), 0, size - 1).astype(np.int64)
    xmax = np.clip(np.ceil(np.maximum(np.maximum(x0, x1), x2)), 0, size - 1).astype(np.int64)
    ymin = np.clip(np.floor(np.minimum(np.minimum(y0, y1), y2)), 0, size - 1).astype(np.int64)
    ymax = np.clip(np.ceil(np.maximum(np.maximum(y0, y1), y2)), 0, size - 1).astype(np.int64)
    w = xmax - xmin + 1
    h = ymax - ymin + 1
    counts = w * h
    # Rasterise in chunks of at most _CHUNK candidate pixels against one z-buffer: memory stays bounded
    # however many (or however large) the triangles; ties keep the earlier triangle, as one pass would.
    zbuf = np.full(size * size, np.inf)
    colour = np.zeros((size * size, 3))
    cum = np.cumsum(counts)
    start = 0
    while start < len(counts):
        base = int(cum[start - 1]) if start else 0
        stop = max(int(np.searchsorted(cum, base + _CHUNK, "right")), start + 1)
        sl = slice(start, stop)
        start = stop
        cnt = counts[sl]
        owner = np.repeat(np.arange(sl.start, sl.stop), cnt)
        local = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        px = xmin[owner] + local % w[owner]
        py = ymin[owner] + local // w[owner]
        cx, cy = px + 0.5, py + 0.5
        a = owner
        l1 = ((x2[a] - cx) * (y0[a] - cy) - (x0[a] - cx) * (y2[a] - cy)) / area[a]
        l2 = ((x0[a] - cx) * (y1[a] - cy) - (x1[a] - cx) * (y0[a] - cy)) / area[a]
        l0 = 1.0 - l1 - l2
        inside = (l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9)
        owner, px, py, l0, l1, l2 = owner[inside], px[inside], py[inside], l0[inside], l1[inside], l2[inside]
        t = tris[owner]
        bary = np.stack([l0, l1, l2], axis=1)[:, :, None]
        z = (depth[t] * bary[:, :, 0]).sum(axis=1)
        pixel = py * size + px
        order = np.lexsort((z, pixel))  # nearest first within each pixel
        first = np.unique(pixel[order], return_index=True)[1]
        win = order[first]
        win = win[z[win] < zbuf[pixel[win]]]
        if not len(win):
            continue
        n = (nv[t[win]] * bary[win]).sum(axis=1)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        n *= np.where(n[:, 2:3] < 0, -1.0, 1.0)  # light back faces as if seen from the front
        shade = 0.28 + 0.72 * np.clip(n @ light, 0.0, 1.0)
        zbuf[pixel[win]] = z[win]
        colour[pixel[win]] = (colours[t[win]] * bary[win]).sum(axis=1) * shade[:, None]
    drawn = np.isfinite(zbuf)

    grad = np.linspace(_BG_TOP[0], _BG_BOTTOM[0], size)[:, None, None] * np.ones((1, size, 3))
    img = grad.reshape(-1, 3)
    img[drawn] = colour[drawn]
    return _png(np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8).reshape(size, size, 3))


def _vertex_colours(mesh: Any, count: int) -> F64:
    """Per-vertex colour in [0, 1]: base colour texture at the vertex UV, else vertex colours or factor."""
    visual = getattr(mesh, "visual", None)
    material = getattr(visual, "material", None)
    texture = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
    uv = getattr(visual, "uv", None)
    if texture is not None and uv is not None and len(uv) == count:
        tex = np.asarray(texture.convert("RGB"), dtype=np.float64) / 255.0
        th, tw = tex.shape[:2]
        uvs = np.asarray(uv, dtype=np.float64)
        # trimesh flips glTF's V on load; undo it to index image rows.
        col = np.clip((uvs[:, 0] % 1.0) * tw, 0, tw - 1).astype(np.int64)
        row = np.clip((1.0 - (uvs[:, 1] % 1.0)) * th, 0, th - 1).astype(np.int64)
        out: F64 = tex[row, col]
        return out
    if visual is not None and getattr(visual, "kind", None) in ("vertex", "face"):
        vc: F64 = np.asarray(visual.vertex_colors, dtype=np.float64)[:, :3] / 255.0
        return vc
    factor = getattr(material, "baseColorFactor", None)
    if factor is not None:
        rgb = np.asarray(factor, dtype=np.float64)[:3]
        if rgb.max() > 1.0:
            rgb = rgb / 255.0
        return np.tile(rgb, (count, 1))
    return np.full((count, 3), 0.7)
