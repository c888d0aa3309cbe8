"""Interactive HTML export (vtk.js): the file opens in headless Chromium and draws the model.

Chromium comes from Debian's packages ``chromium`` and ``chromium-driver``; when it is
missing and we are root, the session fixture installs it with apt-get (CI machines start
bare).  WebGL runs on the CPU (SwiftShader): no GPU or display is needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pv = pytest.importorskip("pyvista")
from PIL import Image  # noqa: E402

from fembone.apps import viz# noqa: E402
from fembone.core.analysis import solve  # noqa: E402
from fembone.cases import build_model  # noqa: E402
from fembone.apps.cli import main  # noqa: E402
from fembone.core.errors import InputError  # noqa: E402
from fembone.core.meshgen import box_mesh, write_mesh  # noqa: E402
from fembone.core.output import write_results  # noqa: E402

BASE_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=10000", "--window-size=800,600",
]
#: WebGL without a GPU: tried in this order until the canvas shows something
GL_FLAGS = [
    ["--enable-unsafe-swiftshader"],
    ["--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--use-gl=angle"],
    ["--use-gl=swiftshader"],
]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium():
    """Path of a Chromium binary; installed from Debian's packages when missing (as root)."""
    path = _chromium()
    if path:
        return path
    if not sys.platform.startswith("linux") or not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("chromium is not installed and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
    log = ""
    for attempt in range(2):
        try:
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            pytest.skip("installing chromium with apt-get timed out")
        log = (r.stdout + r.stderr)[-2000:]
        if r.returncode == 0:
            break
        if attempt == 0:  # stale package lists: update once and retry
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True, timeout=600)
    path = _chromium()
    if path is None:
        pytest.skip(f"could not install chromium with apt-get: {log.strip().splitlines()[-1:] or log}")
    return path


@pytest.fixture(scope="module")
def result_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("html")
    mesh_file = base / "box.msh"
    write_mesh(box_mesh((10.0, 8.0, 16.0), (3, 3, 5), origin=(-5.0, -4.0, -8.0)), mesh_file)
    case = {
        "name": "box",
        "mesh": {"file": str(mesh_file), "order": 1},
        "materials": {"bone": {"E": 500.0, "nu": 0.3}},
        "constraints": [{"where": {"set": "zmin"}, "fix": ["x", "y", "z"]}],
        "loadcases": {"press": [{"where": {"set": "zmax"}, "traction": [0.5, 0.0, -2.0]}]},
    }
    write_results(solve(build_model(case, base=base, source="box.yaml")), base / "box")
    return base / "box"


def _screenshot(chromium: str, html, png, tmp_path, gl: list[str]) -> None:
    profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
    cmd = [chromium, *BASE_FLAGS, *gl, f"--user-data-dir={profile}", f"--screenshot={png}", f"file://{html}"]
    subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def _drawn(png) -> tuple[float, float]:
    """(share of non-background pixels, pixel std) in the canvas, left of the colour bar."""
    img = np.asarray(Image.open(png).convert("RGB"), dtype=float)[:, :680]
    bg = img[2, 2]
    share = float((np.abs(img - bg).sum(axis=2) > 30).mean())
    return share, float(img.std())


def test_export_html_renders_in_chromium(result_dir, tmp_path, chromium):
    pytest.importorskip("trame_pyvista") if viz._version(pv.__version__) >= (0, 49) else pytest.importorskip("trame")
    html = viz.export_html(result_dir, tmp_path / "scene.html", field="von_mises", clip="sagittal")
    text = html.read_text(errors="replace")
    assert html.stat().st_size > 10_000 and "<html" in text.lower()
    png = tmp_path / "shot.png"
    tried = []
    for gl in GL_FLAGS:
        png.unlink(missing_ok=True)
        _screenshot(chromium, html, png, tmp_path, gl)
        if png.is_file():
            share, std = _drawn(png)
            tried.append((gl, round(share, 4), round(std, 1)))
            if share > 0.02 and std > 5.0:
                break
        else:
            tried.append((gl, "no screenshot"))
    else:
        pytest.fail(f"the exported scene drew nothing in headless chromium: {tried}")


def test_cli_view_html(result_dir, tmp_path, capsys):
    pytest.importorskip("trame_pyvista") if viz._version(pv.__version__) >= (0, 49) else pytest.importorskip("trame")
    html = tmp_path / "v.html"
    assert main(["view", str(result_dir), "--field", "displacement", "--clip", "none", "--html", str(html)]) == 0
    assert html.is_file() and "written" in capsys.readouterr().out


def test_missing_package_is_a_clear_input_error(result_dir, tmp_path, monkeypatch, capsys):
    for mod, _ in viz.html_requirements():
        monkeypatch.setitem(sys.modules, mod, None)  # import fails as if not installed
    with pytest.raises(InputError, match="trame"):
        viz.export_html(result_dir, tmp_path / "x.html")
    assert main(["view", str(result_dir), "--html", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert "fembone: error: HTML export needs the package" in err and "pip install" in err
    assert not (tmp_path / "x.html").exists()
