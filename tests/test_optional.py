"""Optional parts: a missing one is named in one line with the extra that installs it (issue 11)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from rodin_nb import preview
from rodin_nb._optional import EXTRAS, MissingExtra, install_hint, require
from rodin_nb.logframe import export_frame
from rodin_nb.runlog import RunLog

ROOT = Path(__file__).resolve().parents[1]


def test_require_names_the_extra_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    with pytest.raises(MissingExtra) as info:
        require("pyarrow", "parquet", "Parquet export")
    message = str(info.value)
    assert message == "Parquet export needs pyarrow, which is not installed: pip install 'rodin_nb[parquet]'"
    assert isinstance(info.value, ImportError) and info.value.__suppress_context__
    assert require("json", "parquet", "anything").dumps([]) == "[]"
    with pytest.raises(ValueError, match="no extra 'nope'"):
        install_hint("nope")


def test_a_broken_install_says_it_failed_to_import(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "brokenpkg").mkdir()
    (tmp_path / "brokenpkg" / "__init__.py").write_text("import no_such_library_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingExtra, match=r"brokenpkg, which failed to import .*no_such_library_xyz.*"):
        require("brokenpkg", "preview", "Previews")


def test_parquet_export_without_pyarrow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with RunLog(tmp_path / "ws", create=True) as log:
        frame = log.df
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtra, match=r"pip install 'rodin_nb\[parquet\]'"):
        export_frame(frame, tmp_path / "out" / "runs.parquet")
    assert not (tmp_path / "out").exists()  # nothing created
    assert export_frame(frame, tmp_path / "out" / "runs.csv").is_file()  # CSV needs no extra


def test_vtk_previews_name_the_preview_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preview, "_vtk_platform", lambda: None)
    glb = (Path(__file__).parent / "fixtures" / "glb" / "BoxTextured.glb").read_bytes()
    with pytest.raises(RuntimeError, match=r"pip install 'rodin_nb\[preview\]'"):
        preview.render_png(glb, 32, renderer="vtk")
    assert preview.render_png(glb, 32)[:4] == b"\x89PNG"  # auto: the numpy rasteriser stands in


def test_extras_match_pyproject() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    required = " ".join(project["dependencies"])
    for name in ("pandas", "ipywidgets", "pythreejs", "requests", "numpy", "trimesh", "pillow"):
        assert name in required, f"{name} must come with a plain `pip install rodin_nb`"
    assert set(EXTRAS) <= set(extras)
    pip_names = {"vtkmodules": "vtk", "ipykernel": "ipykernel"}
    for extra, modules in EXTRAS.items():
        listed = " ".join(extras[extra])
        for module in modules:
            assert pip_names.get(module, module) in listed, f"{module} is not in the {extra!r} extra"


# Optional modules are imported through require() (rodin_nb/_optional.py), never directly, so each
# missing one says which extra installs it. preview.py probes VTK itself: without it a numpy rasteriser
# draws the preview, and only renderer="vtk" fails (naming the preview extra).
_OPTIONAL_MODULES = {module.split(".")[0] for modules in EXTRAS.values() for module in modules} | {"vtk"}
_ALLOWED = {("preview.py", "vtkmodules")}


def test_no_direct_import_of_an_optional_module() -> None:
    found = []
    for path in sorted((ROOT / "rodin_nb").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in _OPTIONAL_MODULES and (path.name, top) not in _ALLOWED:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not found, "use rodin_nb._optional.require(...) instead:\n" + "\n".join(found)
