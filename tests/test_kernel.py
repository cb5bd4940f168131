"""wait() and top-level await in a real Jupyter kernel (nbclient), not only in pytest."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.kernel


def test_wait_and_await_work_in_a_kernel(tmp_path: Path) -> None:
    cells = [
        "import rodin_nb as rn\n"
        "from rodin_nb.sandbox import serve\n"
        "sb = serve(job_seconds=0.3)\n"
        f"client = rn.connect(base_url=sb.url, workspace={str(tmp_path / 'ws')!r}, quiet=True)",
        "run = client.generate(prompt='a carved wooden chair', tier='Sketch', seed=7)\n"
        "run.wait(timeout=60)\n"
        "print('GLB', run.glb.suffix, run.status)",
        "other = client.generate(prompt='a teapot', seed=8, quality='extra-low')\n"
        "done = await other\n"
        "print('AWAITED', done.status, done.glb is not None)",
        "try:\n"
        "    client.generate(prompt='a lamp', seed=9, quality='extra-low', job_seconds=1)\n"
        "except rn.ValidationError as exc:\n"
        "    print('REFUSED', exc.fields)",
        "sweep = client.sweep(prompt='a vase', seed=[1, 2], tier=['Sketch', 'Regular'])\n"
        "df = sweep.run(budget=1000)\n"
        "print('SWEPT', len(df), sorted(set(df['status'])))",
        "client.close(); sb.stop()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = ["".join(out.get("text", "") for out in cell.get("outputs", [])) for cell in nb.cells]
    assert "GLB .glb success" in outputs[1]
    assert "AWAITED success True" in outputs[2]
    assert "REFUSED ['job_seconds']" in outputs[3]
    assert "SWEPT 4 ['success']" in outputs[4]
    widget_views = [
        out
        for out in nb.cells[4].outputs
        if "application/vnd.jupyter.widget-view+json" in out.get("data", {})
    ]
    assert widget_views, "sweep.run() shows a live progress widget in a notebook"
    # Saved and exported notebooks show how the sweep ended: the widget's static copy, a separate output
    # (rodin_nb/statics.py), carries the final line as text and HTML.
    copies = [
        out["data"]
        for out in nb.cells[4].outputs
        if "text/html" in out.get("data", {})
        and "application/vnd.jupyter.widget-view+json" not in out["data"]
    ]
    assert copies, "the progress widget has a static copy for exports"
    final = copies[-1]
    assert final["text/plain"].startswith("100% 4/4 done") and "<progress" in final["text/html"]
