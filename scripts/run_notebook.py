"""Execute a notebook with nbclient and write the executed copy and its HTML next to each other.

python scripts/run_notebook.py notebooks/rodin_demo.ipynb OUTDIR
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rodin_nb._optional import require

nbformat = require("nbformat", "notebook", "Running notebooks")
NotebookClient = require("nbclient", "notebook", "Running notebooks").NotebookClient
HTMLExporter = require("nbconvert", "notebook", "Exporting notebooks to HTML").HTMLExporter


def kernel_config() -> Any:
    """Encrypt the kernel's connection (CurveZMQ keys provisioned by the kernel manager) where possible.

    Without it ipykernel logs "Kernel is running over TCP without encryption" to the terminal on every
    run. ``transport_encryption="auto"`` gives the kernel keys when its kernelspec declares support
    (ipykernel's does); older jupyter_client versions ignore the setting, and a pyzmq without CurveZMQ
    keeps the default.
    """
    from traitlets.config import Config

    config = Config()
    zmq = require("zmq", "notebook", "Running notebooks")
    if zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"
    return config


def main(source: str, outdir: str) -> None:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(source, as_version=4)
    # Without stored widget state the HTML export shows each view's static fallback (preview image and
    # stats), which renders anywhere; embedded widget state would need the widget JS from a CDN.
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        store_widget_state=False,
        config=kernel_config(),
        resources={"metadata": {"path": str(out)}},
    )
    client.execute()
    executed = out / Path(source).name
    nbformat.write(nb, executed)
    html, _ = HTMLExporter().from_notebook_node(nb)
    executed.with_suffix(".html").write_text(html, encoding="utf-8")
    sys.stdout.write(f"wrote {executed} and {executed.with_suffix('.html')}\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
