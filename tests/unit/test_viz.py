"""Off-screen pictures of result fields (fembone.apps.viz, ``fembone view``): no display needed."""

from __future__ import annotations

import json

import numpy as np
import pytest

pv = pytest.importorskip("pyvista")
from PIL import Image  # noqa: E402  (pillow comes with pyvista/matplotlib)

from fembone.apps import viz# noqa: E402
from fembone.core.analysis import solve  # noqa: E402
from fembone.cases import build_model  # noqa: E402
from fembone.apps.cli import main  # noqa: E402
from fembone.core.errors import InputError  # noqa: E402
from fembone.core.meshgen import box_mesh, write_mesh  # noqa: E402
from fembone.core.output import write_results  # noqa: E402

SIZE = (320, 240)  # small pictures keep software rendering fast


def _box_case(mesh_file, name="box", traction=-2.0):
    return {
        "name": name,
        "mesh": {"file": str(mesh_file), "order": 1},
        "materials": {"bone": {"E": 500.0, "nu": 0.3}},
        "constraints": [{"where": {"set": "zmin"}, "fix": ["x", "y", "z"]}],
        "loadcases": {
            "press": [{"where": {"set": "zmax"}, "traction": [0.0, 0.0, traction]}],
            "shear": [{"where": {"set": "zmax"}, "traction": [1.0, 0.0, 0.0]}],
        },
    }


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Two solved boxes (10 x 8 x 16 mm, centred on the origin) written as result folders."""
    base = tmp_path_factory.mktemp("viz")
    mesh_file = base / "box.msh"
    write_mesh(box_mesh((10.0, 8.0, 16.0), (3, 3, 5), origin=(-5.0, -4.0, -8.0)), mesh_file)
    out = {}
    for name, t in (("soft", -2.0), ("stiff", -1.0)):
        model = build_model(_box_case(mesh_file, name, t), base=base, source=f"{name}.yaml")
        result = solve(model)
        write_results(result, base / name)
        out[name] = (base / name, result)
    return out


@pytest.fixture(scope="module")
def overlay_vtu(results, tmp_path_factory):
    """The box result with lesion/cement fractions, yielded elements and two screws (line cells)."""
    folder, _ = results["soft"]
    g = pv.read(folder / "press.vtu")
    centres = g.cell_centers().points
    r = np.linalg.norm(centres - [0.0, 0.0, 2.0], axis=1)
    n = g.n_cells
    ps = np.array(g.cell_data["principal_strain"])
    ps[centres[:, 2] < -4.0, 0] = -0.02  # beyond the compressive yield strain near the support
    tets = np.asarray(g.cell_connectivity).reshape(n, 4)
    pts = np.vstack([g.points, [[-6.0, -2.0, 0.0], [3.0, 2.0, 0.0], [-6.0, 2.0, 4.0], [3.0, -2.0, 4.0]]])
    m = len(g.points)
    segs = np.array([[m, m + 1], [m + 2, m + 3]])
    grid = pv.UnstructuredGrid({pv.CellType.TETRA: tets, pv.CellType.LINE: segs}, pts)

    def pad(a, fill=np.nan):
        a = np.asarray(a, float)
        extra = np.full((2,) + a.shape[1:], fill)
        return np.concatenate([a, extra])

    for k in g.cell_data:
        grid.cell_data[k] = pad(g.cell_data[k]) if k != "principal_strain" else pad(ps)
    grid.cell_data["lesion_fraction"] = pad((r < 3.0).astype(float))
    grid.cell_data["cement_fraction"] = pad(((r >= 3.0) & (r < 4.5)).astype(float))
    grid.cell_data["screw_von_mises"] = np.concatenate([np.full(n, np.nan), [120.0, 300.0]])
    grid.cell_data["screw_radius"] = np.concatenate([np.full(n, np.nan), [1.0, 1.0]])
    for k in g.point_data:
        grid.point_data[k] = np.vstack([np.asarray(g.point_data[k]).reshape(m, -1), np.zeros((4, np.asarray(g.point_data[k]).reshape(m, -1).shape[1]))]).squeeze()
    path = tmp_path_factory.mktemp("overlay") / "press.vtu"
    grid.save(path)
    return path


def _image(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=float)


def assert_not_blank(path, min_share=0.03, min_std=10.0):
    img = _image(path)
    background = np.all(img > 250, axis=2)  # white background
    share = 1.0 - background.mean()
    assert share > min_share, f"{path}: only {share:.1%} of the pixels are not background"
    assert img.std() > min_std, f"{path}: nearly uniform image (std {img.std():.1f})"
    return img


@pytest.mark.parametrize("clip", ["sagittal", "axial", "coronal", "none"])
def test_views_render_and_fields_differ(results, tmp_path, clip):
    folder, _ = results["soft"]
    a = viz.plot(folder, "von_mises", clip, screenshot=tmp_path / "vm.png", window_size=SIZE)
    b = viz.plot(folder, "min_principal_strain", clip, screenshot=tmp_path / "e.png", window_size=SIZE, deform=50.0)
    ia, ib = assert_not_blank(a), assert_not_blank(b)
    assert ia.shape == ib.shape == (SIZE[1], SIZE[0], 3)
    assert np.abs(ia - ib).mean() > 2.0, "two different fields gave the same picture"


def test_clip_removes_half(results, tmp_path):
    folder, _ = results["soft"]
    full = assert_not_blank(viz.plot(folder, "displacement", "none", screenshot=tmp_path / "a.png", window_size=SIZE))
    cut = assert_not_blank(viz.plot(folder, "displacement", "sagittal", screenshot=tmp_path / "b.png", window_size=SIZE))
    fg = lambda img: (~np.all(img > 250, axis=2)).sum()  # noqa: E731
    assert fg(cut) < 0.9 * fg(full)


def test_field_names_map_to_arrays(results):
    folder, _ = results["soft"]
    g = viz.read_grid(folder, "press")
    e = np.asarray(g.cell_data["principal_strain"])
    v, assoc, spec = viz.field_values(g, "min_principal_strain")
    assert assoc == "cell" and np.allclose(v, e[:, 0]) and spec.unit == "-"
    v, _, _ = viz.field_values(g, "max_principal_strain")
    assert np.allclose(v, e[:, 2])
    v, assoc, spec = viz.field_values(g, "displacement")
    assert assoc == "point" and spec.unit == "mm"
    assert np.allclose(v, np.linalg.norm(g.point_data["displacement"], axis=1))
    v, _, spec = viz.field_values(g, "von_mises")
    assert spec.title == "von Mises stress (MPa)"
    v, _, _ = viz.field_values(g, "stress_zz")
    assert np.allclose(v, np.asarray(g.cell_data["stress"])[:, 2])
    lo, hi = viz.field_range(e[:, 0], viz.FIELDS["min_principal_strain"])
    assert lo == -hi  # signed fields: white at zero
    with pytest.raises(InputError, match="unknown field 'nope'"):
        viz.field_values(g, "nope")
    with pytest.raises(InputError, match="no load case 'x'"):
        viz.find_vtu(folder, "x")
    with pytest.raises(InputError, match="unknown clip"):
        viz.plot(folder, clip="oblique", screenshot="x.png")


def test_overlays_lesion_cement_yield_screws(overlay_vtu, tmp_path):
    g = viz.read_grid(overlay_vtu)
    parts = viz.split(g)
    assert parts.lines is not None and parts.lines.n_cells == 2
    assert parts.solid.n_cells == g.n_cells - 2
    with_ = viz.plot(overlay_vtu, "von_mises", "sagittal", screenshot=tmp_path / "o.png", window_size=(480, 360))
    img = assert_not_blank(with_)
    red = (img[..., 0] > 180) & (img[..., 1] < 110) & (img[..., 2] < 110)
    assert red.sum() > 20, "no red 'beyond yield strain' region"
    pl = viz._new_plotter(True, (480, 360))
    view = viz.add_result(pl, parts, "von_mises", "sagittal")
    pl.close()
    assert [name for name, _ in view.labels] == ["lesion", "cement", "beyond yield strain", "screws"]
    plain = viz.plot(overlay_vtu, "von_mises", "none", screenshot=tmp_path / "p.png", window_size=(480, 360))
    assert_not_blank(plain)


def test_screws_as_written_by_fembone_output(overlay_vtu):
    """Line cells marked by a 'screw' index carry the screw stress in their own 'von_mises'."""
    g = viz.read_grid(overlay_vtu)
    n = g.n_cells
    del g.cell_data["screw_von_mises"]
    g.cell_data["screw"] = np.concatenate([np.full(n - 2, -1), [0, 1]]).astype(np.int32)
    vm = np.array(g.cell_data["von_mises"])
    vm[-2:] = [50.0, 80.0]
    g.cell_data["von_mises"] = vm
    parts = viz.split(g, screw_radius=viz.screw_radius({"screws": [{"core_diameter": 2.0}]}))
    assert parts.screw_radius == 1.0
    pl = viz._new_plotter(True, (320, 240))
    viz.add_result(pl, parts, "von_mises", "axial")
    titles = set(pl.scalar_bars.keys())
    pl.close()
    assert {"von Mises stress (MPa)", "screw von Mises stress (MPa)"} <= titles
    # the bone's colour scale ignores the screw cells
    v, _, spec = viz.field_values(parts.solid, "von_mises")
    assert len(v) == n - 2 and viz.field_range(v, spec)[1] < 50.0


def test_write_previews(results, tmp_path):
    _, result = results["soft"]
    written = viz.write_previews(result, tmp_path)
    assert sorted(p.name for p in written) == ["press.png", "shear.png"]
    for p in written:
        img = assert_not_blank(p)
        assert img.shape == (600, 800, 3)


def test_compare_panel_shared_scale(results, tmp_path):
    dirs = [results["soft"][0], results["stiff"][0], results["soft"][0]]
    png = viz.compare_panel(dirs, tmp_path / "panel.png", field="von_mises", titles=["a", "b", "c"], panel_size=(300, 260))
    img = assert_not_blank(png)
    h, w, _ = img.shape
    assert w > h and w == 3 * 300
    views = img[120:380]  # the row of 3D views, between the titles and the colour bar
    for k in range(3):  # every panel shows something
        col = views[:, k * 300:(k + 1) * 300]
        assert (~np.all(col > 250, axis=2)).mean() > 0.05
    # soft is loaded twice as hard: on one scale its picture differs from the stiff one's,
    # and the same case looks the same in two panels
    assert np.abs(views[:, :300] - views[:, 300:600]).mean() > 5.0
    assert np.abs(views[:, :300] - views[:, 600:]).mean() < 0.5
    with pytest.raises(InputError):
        viz.compare_panel(dirs, tmp_path / "x.png", titles=["only one"])


def test_metrics_text():
    s = {"loadcases": {"standing": {"max_von_mises": 3.0, "risk": {"axial_stiffness": 45128.0, "posterior_wall_bulge": 0.009, "factor_of_risk": 0.27}}}}
    text = viz.metrics_text(s, "standing")
    assert "axial stiffness: 45,128 N/mm" in text and "factor of risk: 0.270" in text and "bulge: 0.009 mm" in text
    assert "max von Mises" in viz.metrics_text({"loadcases": {"a": {"max_von_mises": 3.0}}}, "a")


def test_cli_view(results, tmp_path, capsys):
    folder, _ = results["soft"]
    png = tmp_path / "v.png"
    rc = main(["view", str(folder), "--field", "max_principal_strain", "--clip", "coronal", "--loadcase", "shear",
               "--deform", "auto", "--screenshot", str(png), "--size", "320x240"])
    assert rc == 0 and "written" in capsys.readouterr().out
    assert_not_blank(png)
    # off-screen without --screenshot: next to the VTU
    rc = main(["view", str(folder / "press.vtu"), "--off-screen", "--size", "320x240"])
    assert rc == 0 and (folder / "press.png").is_file()
    assert main(["view", str(folder), "--field", "nope"]) == 2
    assert "unknown field" in capsys.readouterr().err
    assert main(["view", str(tmp_path / "missing")]) == 2
    assert main(["view", str(folder), "--deform", "x"]) == 2


def test_summary_files_used(results):
    folder, _ = results["soft"]
    s = json.loads((folder / "summary.json").read_text())
    assert viz.find_vtu(folder).name == s["files"]["press"]
