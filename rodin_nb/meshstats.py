"""Mesh statistics of a downloaded result, computed once and stored in the run log."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from .errors import AssetError
from .modelfiles import check_other_format, read_checked

__all__ = ["MESH_STAT_KEYS", "mesh_stats"]

#: The statistics :func:`mesh_stats` returns, each also a run-log column and a ``Run.mesh_stats`` key.
MESH_STAT_KEYS = ("faces", "vertices", "bbox", "textures")


def mesh_stats(path: Path) -> dict[str, Any]:
    """Faces, vertices, bounding box and texture sizes of a GLB (any glTF scene trimesh reads).

    ``process=False`` keeps the file's own vertices (no merging), so the counts are what a viewer draws.

    Raises
    ------
    AssetError : the file is missing, hostile or unreadable (checked by :mod:`rodin_nb.glbcheck` first).
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise AssetError(f"cannot read 3D file {path}: no such file")
    raw = read_checked(path, str(path))  # a GLB as it is, a .gltf packed into one GLB; both checked
    if raw is not None:
        source: dict[str, Any] = {"file_obj": io.BytesIO(raw), "file_type": "glb"}
    else:
        check_other_format(path, str(path))
        source = {"file_obj": str(path)}
    try:
        scene: Any = trimesh.load(**source, force="scene", process=False)
    except Exception as exc:  # trimesh raises anything from struct.error to KeyError on bad input
        raise AssetError(f"cannot read 3D file {path}: {type(exc).__name__}: {exc}") from exc
    faces = 0
    vertices = 0
    textures: list[list[int]] = []
    for geometry in scene.geometry.values():
        faces += len(getattr(geometry, "faces", ()))
        vertices += len(getattr(geometry, "vertices", ()))
        material = getattr(getattr(geometry, "visual", None), "material", None)
        for attribute in ("baseColorTexture", "metallicRoughnessTexture", "normalTexture", "image"):
            image = getattr(material, attribute, None)
            if image is not None and hasattr(image, "size"):
                textures.append([int(image.size[0]), int(image.size[1])])
    bounds = scene.bounds
    bbox = [[round(float(v), 6) for v in corner] for corner in bounds] if bounds is not None else None
    return {"faces": faces, "vertices": vertices, "bbox": bbox, "textures": textures}
