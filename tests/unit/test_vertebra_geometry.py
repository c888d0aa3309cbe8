"""Parametric lumbar vertebra: groups, frame, dimensions, shell layer and element validity.

Meshes are coarse (size 4 mm) so the module runs in well under a minute.
Frame: RAS, origin at the body centroid, mm.
"""

from __future__ import annotations

import threading

import gmsh
import meshio
import numpy as np
import pytest

from fembone.core.errors import InputError
from fembone.spine.geometry import (
    SURFACE_GROUPS,
    VOLUME_GROUPS,
    generate_vertebra,
    vertebra_dims,
    vertebra_landmarks,
)

SIZE = 4.0
LEVEL = "L1"
T_SHELL = 1.0


def _generate_in_thread(path, **kw):
    """Run the generator in a worker thread, as a GUI or a pool would."""
    box: dict = {}

    def work():
        try:
            box["path"] = generate_vertebra(path, **kw)
        except BaseException as exc:  # pragma: no cover - re-raised below
            box["error"] = exc

    th = threading.Thread(target=work)
    th.start()
    th.join()
    if "error" in box:
        raise box["error"]
    return box["path"]


@pytest.fixture(scope="module")
def mesh1(tmp_path_factory):
    path = tmp_path_factory.mktemp("vertebra") / "L1_tet4.msh"
    out = _generate_in_thread(path, level=LEVEL, size=SIZE, order=1, shell_thickness=T_SHELL)
    assert not gmsh.isInitialized(), "gmsh left initialised after generate_vertebra"
    return meshio.read(out)


@pytest.fixture(scope="module")
def mesh2(tmp_path_factory):
    # coarser (size 5, 1.5 mm shell) to keep the module fast; only tet10 properties are checked
    path = tmp_path_factory.mktemp("vertebra") / "L1_tet10.msh"
    return meshio.read(generate_vertebra(path, level=LEVEL, size=5.0, order=2, shell_thickness=1.5))


# ----------------------------------------------------------------------------- helpers


def _tets(mesh, ctype="tetra"):
    return mesh.cells_dict[ctype]


def _group(mesh, name, ctype):
    return np.asarray(mesh.cell_sets_dict[name][ctype])


def _signed_volumes(points, tets):
    a, b, c, d = (points[tets[:, i]] for i in range(4))
    return np.einsum("ij,ij->i", np.cross(b - a, c - a), d - a) / 6.0


def _tet_faces(tets):
    """(4 n, 3) faces and the opposite vertex of each."""
    f = np.concatenate([tets[:, [1, 2, 3]], tets[:, [0, 2, 3]], tets[:, [0, 1, 3]], tets[:, [0, 1, 2]]])
    opp = np.concatenate([tets[:, 0], tets[:, 1], tets[:, 2], tets[:, 3]])
    return f, opp


def _boundary_faces(tets):
    """Faces used by exactly one tet of ``tets`` (sorted vertex ids) and their opposite vertex."""
    f, opp = _tet_faces(tets)
    key = np.sort(f, axis=1)
    _, idx, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
    once = idx[counts == 1]
    return key[once], opp[once]


def _areas(points, tri):
    a, b, c = (points[tri[:, i]] for i in range(3))
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def _outward_normals(points, tri, tets):
    """Unit normals of boundary triangles, pointing away from the tet they bound."""
    f, opp = _tet_faces(tets)
    lookup = {tuple(k): o for k, o in zip(np.sort(f, axis=1).tolist(), opp.tolist())}
    a, b, c = (points[tri[:, i]] for i in range(3))
    n = np.cross(b - a, c - a)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    o = np.array([lookup[tuple(k)] for k in np.sort(tri, axis=1).tolist()])
    inward = points[o] - (a + b + c) / 3.0
    n[np.einsum("ij,ij->i", n, inward) > 0] *= -1.0
    return n


# ----------------------------------------------------------------------------- groups and validity


def test_groups_present_and_nonempty(mesh1):
    sets = mesh1.cell_sets_dict
    for name in VOLUME_GROUPS:
        assert name in sets and len(sets[name].get("tetra", [])) > 0, f"volume group {name}: {sets.get(name)}"
    for name in SURFACE_GROUPS:
        assert name in sets and len(sets[name].get("triangle", [])) > 0, f"surface group {name}: {sets.get(name)}"
    assert set(mesh1.cells_dict) == {"tetra", "triangle"}, f"cell types {set(mesh1.cells_dict)}"


def test_every_tet_in_exactly_one_volume_group(mesh1):
    n = len(_tets(mesh1))
    count = np.zeros(n, int)
    for name in VOLUME_GROUPS:
        np.add.at(count, _group(mesh1, name, "tetra"), 1)
    assert np.all(count == 1), f"tets in 0 groups: {(count == 0).sum()}, in >1: {(count > 1).sum()} of {n}"


def test_all_tets_have_positive_volume(mesh1):
    v = _signed_volumes(mesh1.points, _tets(mesh1))
    assert v.min() > 1e-6, f"min tet volume {v.min():.3e} mm^3 ({(v <= 0).sum()} non-positive of {len(v)})"


def test_mesh_is_coarse_at_size_4(mesh1):
    n = len(mesh1.points)
    assert 3_000 <= n <= 20_000, f"{n} nodes at size {SIZE} mm"


# ----------------------------------------------------------------------------- frame and dimensions


def _body_tets(mesh):
    t = _tets(mesh)
    return t[np.concatenate([_group(mesh, "cortical_shell", "tetra"), _group(mesh, "trabecular", "tetra")])]


def test_body_dimensions_match_table(mesh1):
    d = vertebra_dims(LEVEL)
    pts = mesh1.points[np.unique(_body_tets(mesh1))]
    ext = pts.max(axis=0) - pts.min(axis=0)
    want = np.array([d.body_width, d.body_depth, d.body_height])
    rel = ext / want - 1.0
    # 5 %: the section is exact in width/depth/height; only facet chords cut the curved extremes
    assert np.all(np.abs(rel) < 0.05), f"body extent x,y,z {ext.round(2)} mm vs table {want} (rel {rel.round(4)})"


def test_body_centroid_at_origin(mesh1):
    t = _body_tets(mesh1)
    v = _signed_volumes(mesh1.points, t)
    c = (mesh1.points[t].mean(axis=1) * v[:, None]).sum(axis=0) / v.sum()
    assert np.linalg.norm(c) < 1.0, f"body centroid {c.round(3)} mm, volume {v.sum():.0f} mm^3"


def test_posterior_elements_lie_behind_the_body(mesh1):
    lm = vertebra_landmarks(LEVEL)
    t = _tets(mesh1)[_group(mesh1, "posterior_elements", "tetra")]
    cy = mesh1.points[t].mean(axis=1)[:, 1]
    body_pts = mesh1.points[np.unique(_body_tets(mesh1))]
    body_back = body_pts[:, 1].min()
    v = _signed_volumes(mesh1.points, t)
    ahead = v[cy > lm["posterior_wall_y"]].sum() / v.sum()
    # only the pedicle stubs wrapping the posterolateral corners may lie ahead of the wall
    assert ahead < 0.05, (
        f"{100 * ahead:.2f} % of the posterior-element volume lies ahead of the posterior wall "
        f"(y > {lm['posterior_wall_y']:.2f} mm)"
    )
    cv = (cy * v).sum() / v.sum()
    assert cv < body_back, f"posterior elements centroid y {cv:.2f} mm vs body back {body_back:.2f} mm"
    # pedicle stubs join the body only on its posterior half
    assert mesh1.points[np.unique(t)][:, 1].max() < 0.0, "posterior elements reach the anterior half of the body"


def test_endplate_and_posterior_wall_normals(mesh1):
    d = vertebra_dims(LEVEL)
    tets = _tets(mesh1)
    tri = mesh1.cells_dict["triangle"]
    cases = {"endplate_superior": (2, 1.0), "endplate_inferior": (2, -1.0), "posterior_wall": (1, -1.0)}
    for name, (axis, sign) in cases.items():
        f = tri[_group(mesh1, name, "triangle")]
        n = _outward_normals(mesh1.points, f, tets)
        a = _areas(mesh1.points, f)
        mean = sign * (n[:, axis] * a).sum() / a.sum()
        worst = (sign * n[:, axis]).min()
        lim_worst = 0.85 if axis == 2 else 0.5  # dish rim slope ~10 deg; posterior wall curves into the corners
        assert mean > 0.95 and worst > lim_worst, (
            f"{name}: area-mean outward n[{axis}]*sign {mean:.4f}, worst {worst:.4f}"
        )
    zs = mesh1.points[np.unique(tri[_group(mesh1, "endplate_superior", "triangle")])][:, 2]
    zi = mesh1.points[np.unique(tri[_group(mesh1, "endplate_inferior", "triangle")])][:, 2]
    h = 0.5 * d.body_height
    assert abs(zs.max() - h) < 0.05 and zs.min() > h - d.endplate_dish - 0.05, f"superior z {zs.min():.2f}..{zs.max():.2f}"
    assert abs(zi.min() + h) < 0.05 and zi.max() < -h + d.endplate_dish + 0.05, f"inferior z {zi.min():.2f}..{zi.max():.2f}"


def test_shell_volume_equals_area_times_thickness(mesh1):
    tets = _tets(mesh1)
    shell = tets[_group(mesh1, "cortical_shell", "tetra")]
    core = tets[_group(mesh1, "trabecular", "tetra")]
    vol = _signed_volumes(mesh1.points, shell).sum()
    faces, _ = _boundary_faces(shell)
    core_faces, _ = _boundary_faces(core)
    inner_keys = {tuple(k) for k in core_faces.tolist()}
    is_inner = np.array([tuple(k) in inner_keys for k in faces.tolist()])
    a = _areas(mesh1.points, faces)
    a_out, a_in = a[~is_inner].sum(), a[is_inner].sum()
    # A layer of thickness t has V = t (A_out + A_in)/2 up to O((kappa t)^2) (0.3 % for kappa ~ 1/17 mm^-1)
    # and O(t^3) corner terms; the facet chords change V and the areas alike.  3 % covers both.
    est = T_SHELL * 0.5 * (a_out + a_in)
    # V = t A_out (1 - kappa_mean t): the body's mean curvature (~1/35 mm^-1 averaged) costs ~3-6 %.
    ratio_out = vol / (T_SHELL * a_out)
    assert abs(vol / est - 1.0) < 0.03, (
        f"shell V {vol:.0f} mm^3, t(A_out+A_in)/2 {est:.0f} mm^3 (A_out {a_out:.0f}, A_in {a_in:.0f} mm^2)"
    )
    assert 0.88 < ratio_out <= 1.0, f"shell V / (t A_out) = {ratio_out:.4f} (V {vol:.0f}, A_out {a_out:.0f})"


# ----------------------------------------------------------------------------- order 2


_TET10_EDGES = [(0, 1), (1, 2), (0, 2), (0, 3), (1, 3), (2, 3)]  # meshio/VTK order of nodes 4..9


def _tet10_det_j(x, xi):
    """det J of tet10 cells (n, 10, 3) at reference point xi = (r, s, t)."""
    r, s, t = xi
    lam = np.array([1.0 - r - s - t, r, s, t])
    dlam = np.array([[-1.0, -1.0, -1.0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    dn = np.zeros((10, 3))
    for i in range(4):
        dn[i] = (4.0 * lam[i] - 1.0) * dlam[i]
    for k, (i, j) in enumerate(_TET10_EDGES):
        dn[4 + k] = 4.0 * (lam[i] * dlam[j] + lam[j] * dlam[i])
    jac = np.einsum("nai,aj->nij", x, dn)
    return np.linalg.det(jac)


def test_order2_gives_tet10_with_midedge_nodes(mesh2):
    assert set(mesh2.cells_dict) == {"tetra10", "triangle6"}, f"cell types {set(mesh2.cells_dict)}"
    t = mesh2.cells_dict["tetra10"]
    p = mesh2.points
    assert t.shape[1] == 10
    # mid-edge nodes of edges not on a CAD surface must sit exactly at the midpoint;
    # those on the (curved) body and group interfaces may follow the surface
    on_surface = set()
    for name in VOLUME_GROUPS:
        cells = t[_group(mesh2, name, "tetra10")]
        corner_faces, _ = _boundary_faces(cells[:, :4])
        on_surface.update(np.unique(corner_faces).tolist())
    n_checked, worst_interior, worst_any = 0, 0.0, 0.0
    for k, (i, j) in enumerate(_TET10_EDGES):
        mid = 0.5 * (p[t[:, i]] + p[t[:, j]])
        dev = np.linalg.norm(p[t[:, 4 + k]] - mid, axis=1) / np.linalg.norm(p[t[:, i]] - p[t[:, j]], axis=1)
        interior = ~(np.isin(t[:, i], list(on_surface)) & np.isin(t[:, j], list(on_surface)))
        n_checked += interior.sum()
        worst_interior = max(worst_interior, dev[interior].max())
        worst_any = max(worst_any, dev.max())
    assert n_checked > 0.25 * 6 * len(t), f"only {n_checked} of {6 * len(t)} edges are off the CAD surfaces"
    assert worst_interior < 1e-9, f"interior mid-edge node off the midpoint by {worst_interior:.2e} x edge length"
    assert worst_any < 0.2, f"a boundary mid-edge node is {worst_any:.3f} x edge length off the chord midpoint"
    # positive Jacobian at the corners, the edge midpoints and the centroid
    x = p[t]
    pts = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0.5, 0, 0), (0.5, 0.5, 0), (0, 0.5, 0),
           (0, 0, 0.5), (0.5, 0, 0.5), (0, 0.5, 0.5), (0.25, 0.25, 0.25)]
    dmin = min(_tet10_det_j(x, xi).min() for xi in pts)
    assert dmin > 0.0, f"min det J of tet10 {dmin:.3e}"
    # same corner mesh as order 1: the straight-tet volume is positive too
    v = _signed_volumes(p, t[:, :4])
    assert v.min() > 0.0, f"min corner-tet volume {v.min():.3e} mm^3"


# ----------------------------------------------------------------------------- errors and landmarks


def test_unknown_level_names_it():
    with pytest.raises(InputError) as err:
        vertebra_dims("L7")
    msg = str(err.value)
    assert "L7" in msg and all(lv in msg for lv in ("L1", "L2", "L3", "L4", "L5")), msg


def test_generate_rejects_bad_input_and_leaves_gmsh_clean(tmp_path):
    with pytest.raises(InputError, match="T12"):
        generate_vertebra(tmp_path / "x.msh", level="T12")
    with pytest.raises(InputError, match="order"):
        generate_vertebra(tmp_path / "x.msh", order=3)
    with pytest.raises(InputError, match="shell_thickness"):
        generate_vertebra(tmp_path / "x.msh", shell_thickness=20.0)
    assert not gmsh.isInitialized()
    assert not (tmp_path / "x.msh").exists()


def test_gmsh_failure_is_reported_and_gmsh_finalised(tmp_path, monkeypatch):
    from fembone.core.errors import FemboneError
    from fembone.spine.geometry import vertebra

    def boom(gmsh_mod, *args):
        gmsh_mod.model.occ.addBox(0, 0, 0, 1, 1, 1)
        raise Exception("simulated OpenCASCADE failure")

    monkeypatch.setattr(vertebra, "_build_and_mesh", boom)
    with pytest.raises(FemboneError, match="L2.*simulated"):
        generate_vertebra(tmp_path / "x.msh", level="L2", size=SIZE)
    assert not gmsh.isInitialized(), "gmsh left initialised after a failed generation"


@pytest.mark.parametrize("level", ["L1", "L2", "L3", "L4", "L5"])
def test_landmarks_are_consistent(level):
    d = vertebra_dims(level)
    lm = vertebra_landmarks(d)
    assert lm["body_anterior_y"] - lm["body_posterior_y"] == pytest.approx(d.body_depth, rel=1e-9)
    for side, sgn in (("right", 1.0), ("left", -1.0)):
        s = lm[side]
        u = s["direction"]
        assert np.linalg.norm(u) == pytest.approx(1.0)
        assert u[1] > 0.0 and sgn * u[0] < 0.0, f"{side} axis {u} must point anteriorly and medially"
        ang = np.degrees(np.arctan2(abs(u[0]), u[1]))
        assert ang == pytest.approx(d.pedicle_angle_deg), f"{side} convergence {ang:.2f} deg"
        assert sgn * s["isthmus"][0] > 0.5 * d.canal_width, f"{side} isthmus {s['isthmus']} inside the canal"
        assert s["entry"][1] < lm["canal_posterior_y"] < s["isthmus"][1] < lm["body_posterior_y"]
        # a 40-50 mm lumbar screw fits between the entry and the anterior cortex
        assert 35.0 < s["length_to_anterior_cortex"] < 70.0, f"{side} {s['length_to_anterior_cortex']:.1f} mm"
    assert np.allclose(lm["left"]["entry"] * [-1, 1, 1], lm["right"]["entry"])


def test_landmarks_lie_in_the_meshed_posterior_elements(mesh1):
    lm = vertebra_landmarks(LEVEL)
    t = _tets(mesh1)[_group(mesh1, "posterior_elements", "tetra")]
    pts = mesh1.points[np.unique(t)]
    for side in ("right", "left"):
        for key in ("entry", "isthmus"):
            dist = np.linalg.norm(pts - lm[side][key], axis=1).min()
            assert dist < SIZE, f"{side} {key} {lm[side][key].round(2)} is {dist:.2f} mm from the posterior elements"
