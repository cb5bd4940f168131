"""Mesh statistics of a downloaded result, computed once and stored in the run log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["MESH_STAT_KEYS", "mesh_stats"]

#: The statistics :func:`mesh_stats` returns, each also a run-log column and a ``Run.mesh_stats`` key.
MESH_STAT_KEYS = ("faces", "vertices", "bbox", "textures")


def mesh_stats(path: Path) -> dict[str, Any]:
    """Faces, vertices, bounding box and texture sizes of a GLB (any glTF scene trimesh reads).

    ``process=False`` keeps the file's own vertices (no merging), so the counts are what a viewer draws.
    """
    import trimesh

    scene: Any = trimesh.load(path, force="scene", process=False)
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
