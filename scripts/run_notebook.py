"""Execute a notebook with nbclient and write the executed copy and its HTML next to each other.

python scripts/run_notebook.py notebooks/01_quickstart.ipynb OUTDIR

The HTML works offline, 3D views included: the widget state is embedded (as nbconvert does) and so is
the JavaScript that renders it (require.js and the widget manager ``@jupyter-widgets/html-manager``,
fetched once from the npm registry into a cache and checked against pinned sha512 digests; pythreejs's
own front end from the installed package). Without that JavaScript (no cache and no network) the HTML
still shows every rodin_nb widget's static copy: preview images, statistics, the progress's last line
(see ``rodin_nb/statics.py``).

Static copies follow runs and sweeps still going when they were shown: after the last cell a hidden
extra cell waits for them to end and publishes their final state, then is removed again.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
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

#: Run after the last cell (then removed): runs and sweeps shown while still going end, and their
#: static copies are published with the final state (rodin_nb.statics.settle).
SETTLE_CELL = (
    "try:\n    import rodin_nb.statics as _rodin_nb_statics\nexcept ImportError:\n    pass\n"
    "else:\n    _rodin_nb_statics.settle(timeout=300)"
)

#: (npm package, version, file in the tarball, the tarball's sha512 as the registry lists it)
WIDGET_JS = {
    "require": (
        "requirejs",
        "2.3.7",
        "package/require.js",
        "sha512-DouTG8T1WanGok6Qjg2SXuCMzszOo0eHeH9hDZ5Y4x8Je+9JB38HdTLT4/VA8OaUhBa0JPVHJ0pyBkM1z+pDsw==",
    ),
    "embed": (
        "@jupyter-widgets/html-manager",
        "1.0.15",
        "package/dist/embed-amd.js",
        "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
    ),
}

#: The lab template with the widget JavaScript inline instead of from CDNs.
TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}
<script>{{ resources.rodin_nb_js.require }}</script>
{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}
{%- if "widgets" in nb.metadata -%}
<script>{{ resources.rodin_nb_js.three }}</script>
<script>{{ resources.rodin_nb_js.threejs }}</script>
<script>{{ resources.rodin_nb_js.embed }}</script>
{%- endif -%}
{% endblock jupyter_widgets %}
"""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rodin_nb" / "widget-js"


def _npm_file(package: str, version: str, member: str, integrity: str) -> str:
    """One file of an npm package: from the cache, else from the registry (tarball digest checked)."""
    cached = _cache_dir() / f"{package.replace('/', '__')}@{version}" / Path(member).name
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    name = package.rsplit("/", 1)[-1]
    url = f"https://registry.npmjs.org/{package}/-/{name}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=60) as response:
        tarball = response.read()
    algorithm, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode("ascii")
    if digest != expected:
        raise OSError(f"{url}: {algorithm} digest {digest} is not the pinned {expected}")
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        member_file = tar.extractfile(member)
        if member_file is None:
            raise OSError(f"{url} has no {member}")
        text = member_file.read().decode("utf-8")
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(text, encoding="utf-8")
    return text


def _pythreejs_js() -> tuple[str, str]:
    """pythreejs's front end (three.js r97 and jupyter-threejs) as named AMD modules, from the package."""
    folder = Path(sys.prefix) / "share" / "jupyter" / "nbextensions" / "jupyter-threejs"
    three = (folder / "three.js").read_text(encoding="utf-8")
    threejs = (folder / "index.js").read_text(encoding="utf-8")
    # Inline scripts cannot hold anonymous AMD modules: name them as the widget manager asks for them.
    anonymous_three, anonymous_threejs = 'define(["exports"],', 'define(["module","three",'
    if three.count(anonymous_three) != 1 or threejs.count(anonymous_threejs) != 1:
        raise OSError(f"unexpected module format in {folder}")
    three = three.replace(anonymous_three, 'define("three",["exports"],')
    threejs = threejs.replace(anonymous_threejs, 'define("jupyter-threejs",["module","three",', 1)
    return three, threejs


def widget_js() -> dict[str, str]:
    """The JavaScript an exported page needs to render widgets offline (script-safe)."""
    js = {key: _npm_file(*spec) for key, spec in WIDGET_JS.items()}
    js["three"], js["threejs"] = _pythreejs_js()
    return {key: text.replace("</script", "<\\/script") for key, text in js.items()}


def to_html(nb: nbformat.NotebookNode) -> str:
    """The notebook as one HTML file whose widgets render offline; static copies if that cannot be."""
    try:
        js = widget_js()
    except OSError as exc:
        sys.stderr.write(
            f"note: widget JavaScript unavailable ({exc}); the HTML shows static previews instead of "
            "interactive 3D views\n"
        )
        nb = nbformat.from_dict(nb)
        nb.metadata.pop("widgets", None)  # no widget views: each one's static copy shows alone
        html, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
        return html
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "rodin_nb_offline.html.j2").write_text(TEMPLATE, encoding="utf-8")
        exporter = HTMLExporter(
            template_name="lab", extra_template_paths=[folder], template_file="rodin_nb_offline.html.j2"
        )
        html, _ = exporter.from_notebook_node(nb, resources={"rodin_nb_js": js})
    return html


def main(source: str, outdir: str) -> None:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(source, as_version=4)
    data = Path(source).parent / "data"
    if data.is_dir():  # the notebook's own files (its pictures), where it runs: next to its copy
        shutil.copytree(data, out / "data", dirs_exist_ok=True)
    nb.cells.append(nbformat.v4.new_code_cell(SETTLE_CELL))
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        store_widget_state=True,  # the 3D views stay interactive in the HTML, offline too
        config=kernel_config(),
        resources={"metadata": {"path": str(out)}},
    )
    try:
        client.execute()
    finally:
        nb.cells.pop()  # the settle cell is ours, not the notebook's
    executed = out / Path(source).name
    nbformat.write(nb, executed)
    executed.with_suffix(".html").write_text(to_html(nb), encoding="utf-8")
    sys.stdout.write(f"wrote {executed} and {executed.with_suffix('.html')}\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
