"""Turn a :class:`~._load.Model` into pythreejs widgets: geometry buffers, PBR materials, lights, camera.

Geometry goes over the widget comm as binary buffers (ipydatawidgets): the arrays from ``_load`` are
handed over as they are, so nothing is copied into JSON lists. Textures go as the file's own encoded
images in data URIs (``ImageTexture``), which survive saving and export; ``DataTexture`` would send raw
RGBA, several times larger.

Each model is drawn under a *fit* transform that moves its bounding box's centre to the origin and
scales its half-diagonal to 1. Cameras, lights and clipping planes are then the same for every model,
whatever its size or position, and linked cameras in a comparison grid frame every cell alike.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pythreejs as p3
from ipywidgets import widget_serialization
from numpy.typing import NDArray
from traitlets import Instance

from ..preview import fit_distance, view_direction
from ._load import MaterialData, Model, TextureData

__all__ = ["FOV", "Built", "CameraPose", "StandardMaterial", "build", "environment_texture", "pose_for"]

F64 = NDArray[np.float64]
FOV = 45.0


class StandardMaterial(p3.MeshStandardMaterial):
    """``MeshStandardMaterial`` whose ``envMap`` also takes a plain (equirectangular) ``Texture``.

    pythreejs 2.4 types ``envMap`` as ``CubeTexture``, and its ``CubeTexture`` cannot load images, so
    metals would render black. three.js r97 accepts an equirectangular map there; only the Python
    trait needed widening (the JS model is unchanged: same ``_model_name``).
    """

    envMap = Instance(p3.Texture, allow_none=True).tag(sync=True, **widget_serialization)


@dataclass
class Built:
    """The widgets of one model, grouped under its fit transform."""

    group: Any  # p3.Group
    meshes: list[Any]
    materials: list[StandardMaterial]
    geometries: list[Any]
    textures: list[Any]
    fit: F64  # 4x4, model space -> unit space
    bounds_unit: F64  # (2, 3) the model's box after the fit transform
    maps: dict[int, dict[str, Any]] = field(default_factory=dict)  # id(material) -> slot -> texture

    def set_textures(self, on: bool) -> None:
        """Show or hide every texture map (a clay view shows shape only)."""
        for material in self.materials:
            slots = self.maps.get(id(material), {})
            if not slots:
                continue
            with material.hold_sync():
                for slot, texture in slots.items():
                    setattr(material, slot, texture if on else None)
            material.needsUpdate = True  # new shader defines (pythreejs sends a custom message)

    def set_wireframe(self, on: bool) -> None:
        for material in self.materials:
            material.wireframe = on

    def set_flat(self, on: bool) -> None:
        for material in self.materials:
            material.flatShading = on
            material.needsUpdate = True


@dataclass(frozen=True)
class CameraPose:
    """Where a camera sits (unit space): position, orientation quaternion (x, y, z, w), orbit target."""

    position: tuple[float, float, float]
    quaternion: tuple[float, float, float, float]
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    near: float = 0.01
    far: float = 100.0


def pose_for(boxes: Sequence[F64], aspect: float) -> CameraPose:
    """One initial three-quarter view (unit space) that frames every box at ``aspect`` = width / height.

    Models are centred by their fit transform, so the orbit target is the origin; the distance is the
    largest any box needs, so linked cells share one pose.
    """
    distance = max((fit_distance(b, FOV, aspect) for b in boxes), default=3.0)
    eye = view_direction() * distance
    return CameraPose(
        position=_t3(eye),
        quaternion=_look_at(eye, np.zeros(3)),
        target=(0.0, 0.0, 0.0),
        near=max(distance / 200.0, 1e-4),
        far=distance * 20.0 + 10.0,
    )


def _t3(v: F64) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


def _look_at(eye: F64, target: F64) -> tuple[float, float, float, float]:
    """Quaternion (three.js order x, y, z, w) of a camera at ``eye`` looking at ``target``, +Y up."""
    z = eye - target
    z = z / np.linalg.norm(z)
    x = np.cross([0.0, 1.0, 0.0], z)
    if np.linalg.norm(x) < 1e-9:  # looking straight down or up
        x = np.array([1.0, 0.0, 0.0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.stack([x, y, z], axis=1)  # columns are the camera axes
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 0.5 / math.sqrt(trace + 1.0)
        q = (
            (m[2, 1] - m[1, 2]) * s,
            (m[0, 2] - m[2, 0]) * s,
            (m[1, 0] - m[0, 1]) * s,
            0.25 / s,
        )
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = (0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s)
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = ((m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s)
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = ((m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s)
    return (float(q[0]), float(q[1]), float(q[2]), float(q[3]))


def column_major(matrix: F64) -> tuple[float, ...]:
    """A numpy 4x4 (row-major, column vectors) as three.js ``Matrix4.elements`` (column-major)."""
    return tuple(float(v) for v in np.asarray(matrix, dtype=np.float64).T.ravel())


def fit_matrix(bounds: F64) -> F64:
    """Translate the box's centre to the origin and scale its half-diagonal to 1."""
    lo, hi = np.asarray(bounds, dtype=np.float64)
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(hi - lo)) / 2
    scale = 1.0 / radius if radius > 1e-12 else 1.0
    m = np.eye(4)
    m[:3, :3] *= scale
    m[:3, 3] = -centre * scale
    return m


# --------------------------------------------------------------------------- environment


def _environment_png(width: int = 256, height: int = 128) -> bytes:
    """An equirectangular studio environment: soft sky, bright horizon, darker floor, two soft boxes.

    Generated (no asset file), small (a few kB as PNG) and smooth, so rough metals read as metal instead
    of black. Rows run from the zenith (top) to the nadir, as three.js's equirectangular mapping expects.
    """
    from PIL import Image

    v = (np.arange(height) + 0.5) / height
    u = (np.arange(width) + 0.5) / width
    elevation = (0.5 - v)[:, None] * math.pi * np.ones((1, width))
    azimuth = (u * 2.0 * math.pi)[None, :] * np.ones((height, 1))
    up = np.sin(elevation)[..., None]
    sky = np.array([0.42, 0.47, 0.55])
    horizon = np.array([0.78, 0.78, 0.76])
    floor = np.array([0.10, 0.095, 0.09])
    img = np.where(
        up >= 0,
        horizon * (1 - np.abs(up) ** 0.6) + sky * np.abs(up) ** 0.6,
        horizon * 0.55 * (1 - np.abs(up) ** 0.35) + floor * np.abs(up) ** 0.35,
    )
    for az0, el0, width_rad, gain in ((0.7, 0.7, 0.3, 1.2), (3.9, 0.35, 0.4, 0.5)):
        cos_angle = np.sin(elevation) * math.sin(el0) + np.cos(elevation) * math.cos(el0) * np.cos(
            azimuth - az0
        )
        img = img + gain * np.exp((cos_angle - 1.0) / (width_rad**2 * 0.5))[..., None]
    srgb = np.clip(img, 0.0, 1.0) ** (1 / 2.2)
    buf = io.BytesIO()
    Image.fromarray((srgb * 255 + 0.5).astype(np.uint8)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def _environment_uri() -> str:
    return "data:image/png;base64," + base64.b64encode(_environment_png()).decode("ascii")


def environment_texture() -> Any:
    """A fresh environment-map texture widget (one per view; the PNG itself is made once)."""
    return p3.ImageTexture(
        imageUri=_environment_uri(),
        mapping="EquirectangularReflectionMapping",
        encoding="sRGBEncoding",
        wrapS="RepeatWrapping",
        minFilter="LinearMipMapLinearFilter",
    )


# --------------------------------------------------------------------------- model


def _hex(rgb: tuple[float, float, float]) -> str:
    r, g, b = (round(min(max(c, 0.0), 1.0) * 255) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def _texture_widget(texture: TextureData) -> Any:
    s = texture.sampler
    return p3.ImageTexture(
        imageUri=f"data:{texture.mime};base64," + base64.b64encode(texture.data).decode("ascii"),
        encoding="sRGBEncoding" if texture.srgb else "LinearEncoding",
        wrapS=s.wrap_s,
        wrapT=s.wrap_t,
        magFilter=s.mag_filter,
        minFilter=s.min_filter,
    )


def _material_widget(
    data: MaterialData, vertex_colours: bool, env: Any, textures: dict[int, Any]
) -> tuple[StandardMaterial, dict[str, Any]]:
    maps: dict[str, Any] = {}
    for slot, texture in data.maps.items():
        key = id(texture)
        if key not in textures:
            textures[key] = _texture_widget(texture)
        widget = textures[key]
        if slot == "metalnessRoughnessMap":
            # glTF packs roughness in G and metalness in B; three reads exactly those channels.
            maps["metalnessMap"] = widget
            maps["roughnessMap"] = widget
        else:
            maps[slot] = widget
    options: dict[str, Any] = {
        "name": data.name,
        "color": "#ffffff" if vertex_colours and data.default else _hex(data.color),
        "metalness": data.metalness,
        "roughness": data.roughness,
        "emissive": _hex(data.emissive),
        "side": "DoubleSide" if data.double_sided else "FrontSide",
        "envMap": env,
        "envMapIntensity": 1.0,
        "vertexColors": "VertexColors" if vertex_colours else "NoColors",
    }
    if "normalMap" in maps:
        options["normalScale"] = (1.0, 1.0)  # matched three's own GLTFLoader on the same files
    if data.alpha_mode == "BLEND":
        options.update(transparent=True, opacity=data.opacity, depthWrite=False)
    elif data.alpha_mode == "MASK":
        options["alphaTest"] = data.alpha_cutoff
    return StandardMaterial(**options, **maps), maps


def build(model: Model, env: Any | None = None) -> Built:
    """pythreejs widgets for ``model``: one ``Mesh`` per node, geometry and materials shared."""
    env = env if env is not None else environment_texture()
    fit = fit_matrix(model.bounds)
    textures: dict[int, Any] = {}
    materials: dict[tuple[int, bool], StandardMaterial] = {}
    maps: dict[int, dict[str, Any]] = {}
    geometries: list[Any] = []
    parts: list[tuple[Any, StandardMaterial]] = []
    for prim in model.primitives:
        attributes: dict[str, Any] = {
            "position": p3.BufferAttribute(array=prim.position, normalized=False),
            "normal": p3.BufferAttribute(array=prim.normal, normalized=False),
        }
        if prim.uv is not None:
            attributes["uv"] = p3.BufferAttribute(array=prim.uv, normalized=False)
            if "aoMap" in prim.material.maps:
                attributes["uv2"] = attributes["uv"]  # r97's aoMap reads uv2; same widget, sent once
        if prim.color is not None:
            attributes["color"] = p3.BufferAttribute(array=prim.color, normalized=False)
        geometry = p3.BufferGeometry(
            attributes=attributes, index=p3.BufferAttribute(array=prim.index, normalized=False)
        )
        geometries.append(geometry)
        key = (id(prim.material), prim.color is not None)
        if key not in materials:
            material, slots = _material_widget(prim.material, prim.color is not None, env, textures)
            materials[key] = material
            maps[id(material)] = slots
        parts.append((geometry, materials[key]))
    meshes = [
        p3.Mesh(
            geometry=parts[inst.primitive][0],
            material=parts[inst.primitive][1],
            name=inst.name,
            matrixAutoUpdate=False,
            matrix=column_major(inst.matrix),
        )
        for inst in model.instances
    ]
    group = p3.Group(children=tuple(meshes), matrixAutoUpdate=False, matrix=column_major(fit))
    lo, hi = model.bounds
    bounds_unit = np.array([lo, hi]) @ fit[:3, :3].T + fit[:3, 3]
    return Built(
        group=group,
        meshes=meshes,
        materials=list(materials.values()),
        geometries=geometries,
        textures=list(textures.values()),
        fit=fit,
        bounds_unit=bounds_unit,
        maps=maps,
    )


def lights() -> list[Any]:
    """Scene lights (unit space): ambient and hemisphere fill, a key light; the headlight rides the camera.

    Directional lights get explicit ``target`` and ``shadow`` widgets: left unset, pythreejs sends a
    placeholder string that its front end tries to listen to ("Error setting state: t.on is not a
    function" in the console).
    """
    return [
        p3.AmbientLight(color="#ffffff", intensity=0.05),
        p3.HemisphereLight(color="#ffffff", groundColor="#5a5550", intensity=0.15),
        _directional(position=(2.0, 4.0, 3.0), intensity=0.45),
    ]


def _directional(position: tuple[float, float, float], intensity: float) -> Any:
    shadow = p3.DirectionalLightShadow(camera=p3.OrthographicCamera(-1, 1, 1, -1, 0.5, 10))
    return p3.DirectionalLight(
        color="#ffffff", intensity=intensity, position=position, target=p3.Object3D(), shadow=shadow
    )


def headlight() -> Any:
    """A light fixed to the camera, slightly above and left of the eye, aimed at the origin."""
    return _directional(position=(-0.3, 0.5, 0.0), intensity=0.35)
