"""Parametric vertebra with conforming inclusions, voids, PMMA caps, half discs and no posterior elements.

Reference values are closed forms (sphere and lens volumes, inscribed-polyhedron bounds) or
geometric facts of the set-up (flat faces at the requested height); meshes are coarse (3 mm).
Frame: RAS, origin at the body centroid, mm.
"""

from __future__ import annotations

import math

import gmsh
import meshio
import numpy as np
import pytest

from fembone.core.errors import InputError
from fembone.spine.geometry import (
    Inclusion,
    generate_vertebra,
    generator_fingerprint,
    inclusion_volumes,
    solve_inclusion_radius,
    vertebra_dims,
    vertebra_landmarks,
)

LEVEL = "L1"
SIZE = 3.0
DIMS = vertebra_dims(LEVEL)
H = DIMS.body_height
DISH = DIMS.endplate_dish  # depth of the endplate concavity below the rim, mm

LESION = Inclusion("lesion0", (0.0, 4.0, -1.0), (7.0, 7.0, 7.0))
CEMENT = Inclusion("cement0", (4.0, 4.0, -1.0), (4.0, 4.0, 4.0))
HOLE = Inclusion("hole0", (-9.0, -5.0, 4.0), (4.0, 4.0, 4.0))
CAP = 3.0
DISC = 5.0


def _sphere(r):
    return 4.0 / 3.0 * math.pi * r**3


def _lens(r1, r2, d):
    """Volume of the intersection of two spheres, centres d apart (|r1 - r2| < d < r1 + r2)."""
    return math.pi * (r1 + r2 - d) ** 2 * (d * d + 2.0 * d * (r1 + r2) - 3.0 * (r1 - r2) ** 2) / (12.0 * d)


@pytest.fixture(scope="module")
def caps_mesh(tmp_path_factory):
    path = tmp_path_factory.mktemp("regions") / "caps.msh"
    generate_vertebra(path, LEVEL, SIZE, 1, 1.0, inclusions=[LESION, CEMENT, HOLE], void_labels={"hole0"},
                      setup="caps", cap_thickness=CAP)
    assert not gmsh.isInitialized()
    return meshio.read(path)


@pytest.fixture(scope="module")
def discs_mesh(tmp_path_factory):
    path = tmp_path_factory.mktemp("regions") / "discs.msh"
    return meshio.read(generate_vertebra(path, LEVEL, SIZE, 1, 1.0, setup="discs", disc_height=DISC,
                                         posterior=False))


BREACH = Inclusion("breach", (0.0, -12.0, 0.0), (6.0, 6.0, 6.0), clip="body")  # through the posterior wall
TOUCH = Inclusion("touch", (12.0, 5.0, 0.0), (6.0, 6.0, 6.0))  # crosses the core boundary: clipped


@pytest.fixture(scope="module")
def breach_mesh(tmp_path_factory):
    path = tmp_path_factory.mktemp("regions") / "breach.msh"
    return meshio.read(generate_vertebra(path, LEVEL, SIZE, 2, 1.0, inclusions=[BREACH, TOUCH], posterior=False))


# ----------------------------------------------------------------------------- helpers


def _tet_type(mesh):
    return "tetra10" if "tetra10" in mesh.cells_dict else "tetra"


def _tri_type(mesh):
    return "triangle6" if "triangle6" in mesh.cells_dict else "triangle"


def _volume_groups(mesh):
    tt = _tet_type(mesh)
    return {k: np.asarray(v[tt]) for k, v in mesh.cell_sets_dict.items() if tt in v and not k.startswith("gmsh:")}


def _facets(mesh, name):
    return mesh.cells_dict[_tri_type(mesh)][np.asarray(mesh.cell_sets_dict[name][_tri_type(mesh)])][:, :3]


def _tet_volumes(points, tets):
    a, b, c, d = (points[tets[:, i]] for i in range(4))
    return np.einsum("ij,ij->i", np.cross(b - a, c - a), d - a) / 6.0


def _faces_of(tets):
    return np.sort(np.concatenate([tets[:, [1, 2, 3]], tets[:, [0, 2, 3]], tets[:, [0, 1, 3]], tets[:, [0, 1, 2]]]),
                   axis=1)


def _boundary(tets):
    f = _faces_of(tets)
    u, counts = np.unique(f, axis=0, return_counts=True)
    return u[counts == 1]


def _areas(points, tri):
    a, b, c = (points[tri[:, i]] for i in range(3))
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def _sagitta_deficit(points, tri, r):
    """Upper bound of the volume between a sphere of radius r and an inscribed facet set:
    sum of facet area x (r - sqrt(r^2 - rho^2)), rho the facet's circumradius."""
    a, b, c = (points[tri[:, i]] for i in range(3))
    la, lb, lc = (np.linalg.norm(b - c, axis=1), np.linalg.norm(c - a, axis=1), np.linalg.norm(a - b, axis=1))
    area = _areas(points, tri)
    rho = la * lb * lc / (4.0 * area)
    return float(np.sum(area * (r - np.sqrt(np.maximum(r * r - rho * rho, 0.0)))))


def _keyset(rows):
    return {tuple(k) for k in np.sort(rows, axis=1).tolist()}


# ----------------------------------------------------------------------------- groups


def test_caps_groups_present_disjoint_and_covering(caps_mesh):
    groups = _volume_groups(caps_mesh)
    want = {"cortical_shell", "trabecular", "posterior_elements", "lesion0", "cement0+lesion0", "cement0",
            "cap_superior", "cap_inferior"}
    assert set(groups) == want, f"volume groups {sorted(groups)}"
    facets = {k for k, v in caps_mesh.cell_sets_dict.items() if "triangle" in v}
    assert {"endplate_superior", "endplate_inferior", "posterior_wall", "hole0_surface", "cap_superior_face",
            "cap_inferior_face"} <= facets, f"facet groups {sorted(facets)}"
    n = len(caps_mesh.cells_dict["tetra"])
    count = np.zeros(n, int)
    for ids in groups.values():
        np.add.at(count, ids, 1)
    assert np.all(count == 1), f"tets in no group: {(count == 0).sum()}, in several: {(count > 1).sum()} of {n}"


def test_conforming_interfaces_share_nodes(caps_mesh):
    """Interfaces are conforming: no two mesh nodes at the same place (an interface between
    volumes that were not fragmented together would duplicate them)."""
    p = caps_mesh.points[np.unique(caps_mesh.cells_dict["tetra"])]
    assert len(np.unique(np.round(p, 9), axis=0)) == len(p)


def test_inclusion_fragments_follow_the_spheres(caps_mesh):
    """Every node of the lesion-only fragment lies in the lesion sphere and outside the cement sphere."""
    t = caps_mesh.cells_dict["tetra"]
    g = _volume_groups(caps_mesh)
    p = caps_mesh.points
    for name, inside, outside in (("lesion0", [LESION], [CEMENT]), ("cement0+lesion0", [LESION, CEMENT], []),
                                  ("cement0", [CEMENT], [LESION])):
        x = p[np.unique(t[g[name]])]
        for inc in inside:
            d = np.linalg.norm(x - inc.center, axis=1)
            assert d.max() <= inc.radii[0] + 1e-6, f"{name}: node {d.max():.4f} mm from {inc.label}'s centre"
        for inc in outside:
            d = np.linalg.norm(x - inc.center, axis=1)
            assert d.min() >= inc.radii[0] - 1e-6, f"{name}: node {d.min():.4f} mm inside {inc.label}"


def test_lesion_mesh_volume_is_the_sphere_volume(caps_mesh):
    """The lesion (inside the core) meshed conformingly: an inscribed polyhedron of the sphere, so
    4/3 pi r^3 - sum(area x sagitta) <= V_mesh <= 4/3 pi r^3."""
    t = caps_mesh.cells_dict["tetra"]
    g = _volume_groups(caps_mesh)
    tets = t[np.concatenate([g["lesion0"], g["cement0+lesion0"]])]
    v = _tet_volumes(caps_mesh.points, tets).sum()
    r = LESION.radii[0]
    exact = _sphere(r)
    skin = _boundary(tets)
    assert np.allclose(np.linalg.norm(caps_mesh.points[skin] - LESION.center, axis=2), r, atol=1e-6)
    deficit = _sagitta_deficit(caps_mesh.points, skin, r)
    assert exact - deficit <= v <= exact, f"lesion mesh volume {v:.2f} mm^3, sphere {exact:.2f}, bound {deficit:.2f}"


def test_cad_volumes_of_overlapping_spheres_are_closed_form():
    vols = inclusion_volumes(LEVEL, 1.0, [LESION, CEMENT])
    d = np.linalg.norm(np.subtract(LESION.center, CEMENT.center))
    lens = _lens(7.0, 4.0, d)
    assert vols["cement0+lesion0"] == pytest.approx(lens, rel=1e-8)
    assert vols["lesion0"] == pytest.approx(_sphere(7.0) - lens, rel=1e-8)
    assert vols["cement0"] == pytest.approx(_sphere(4.0) - lens, rel=1e-8)


def test_void_removes_the_hole(caps_mesh):
    """No element inside the void; its wall is a closed facet set on the sphere enclosing 4/3 pi r^3."""
    t = caps_mesh.cells_dict["tetra"]
    p = caps_mesh.points
    c, r = np.asarray(HOLE.center), HOLE.radii[0]
    centroids = p[t].mean(axis=1)
    assert np.linalg.norm(centroids - c, axis=1).min() > 0.5 * r, "elements left inside the void"
    wall = _facets(caps_mesh, "hole0_surface")
    assert np.allclose(np.linalg.norm(p[wall] - c, axis=2), r, atol=1e-6)
    # closed: every edge of the wall is shared by exactly two wall triangles
    e = np.sort(np.concatenate([wall[:, [0, 1]], wall[:, [1, 2]], wall[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert np.all(counts == 2), "void wall is not closed"
    # enclosed volume: the pyramids from the centre on each facet (centre inside a convex hull)
    a, b, cc = (p[wall[:, i]] - c for i in range(3))
    v = np.abs(np.einsum("ij,ij->i", np.cross(a, b), cc)).sum() / 6.0
    exact = _sphere(r)
    deficit = _sagitta_deficit(p, wall, r)
    assert exact - deficit <= v <= exact, f"void {v:.2f} mm^3, sphere {exact:.2f}, bound {deficit:.2f}"
    # the removed volume is the hole: the wall faces bound bone tets only on one side
    assert _keyset(wall) <= _keyset(_boundary(t)), "void wall facets are not on the mesh boundary"


# ----------------------------------------------------------------------------- caps


def test_cap_outer_faces_flat_at_dish_bottom_plus_thickness(caps_mesh):
    p = caps_mesh.points
    z_face = 0.5 * H - DISH + CAP  # deepest point of the dish + cap thickness
    for name, z in (("cap_superior_face", z_face), ("cap_inferior_face", -z_face)):
        zz = p[_facets(caps_mesh, name)][..., 2]
        assert np.abs(zz - z).max() < 1e-9, f"{name}: z {zz.min():.6f}..{zz.max():.6f}, want {z}"


def test_cap_covers_the_endplate_and_fills_the_dish(caps_mesh):
    """The endplate facets are interfaces with the cap (dish filled, no gap), and the flat face covers
    the body outline: its area equals the endplate's projected area."""
    t = caps_mesh.cells_dict["tetra"]
    g = _volume_groups(caps_mesh)
    p = caps_mesh.points
    for side in ("superior", "inferior"):
        ep = _facets(caps_mesh, f"endplate_{side}")
        cap_faces = _keyset(_faces_of(t[g[f"cap_{side}"]]))
        missing = sum(k not in cap_faces for k in _keyset(ep))
        assert missing == 0, f"{missing} of {len(ep)} {side} endplate facets do not touch the cap"
        a, b, c = (p[ep[:, i]] for i in range(3))
        projected = 0.5 * np.abs(np.cross(b - a, c - a)[:, 2]).sum()
        face = _areas(p, _facets(caps_mesh, f"cap_{side}_face")).sum()
        # both are inscribed polygons of the body outline; their chord deficits, P h^2 / (12 R) with
        # P ~ 117 mm and R ~ 15 mm, are 0.6 % (cap face, h = 3 mm) and 0.3 % (endplate, h = 2 mm)
        assert face == pytest.approx(projected, rel=5e-3), f"{side}: cap face {face:.1f} vs endplate {projected:.1f} mm^2"


def test_cap_thinner_than_dish_is_rejected(tmp_path):
    with pytest.raises(InputError) as err:
        generate_vertebra(tmp_path / "x.msh", LEVEL, SIZE, 1, 1.0, setup="caps", cap_thickness=0.8)
    assert err.value.where == "boundary.cap.thickness"
    assert "cap thickness 0.8 mm is less than the endplate dishing 1 mm" in str(err.value)
    assert not (tmp_path / "x.msh").exists() and not gmsh.isInitialized()


def test_bad_options_name_their_key(tmp_path):
    cases = [
        ({"setup": "plates"}, "boundary.setup"),
        ({"setup": "discs", "disc_height": 1.2}, "boundary.disc.height"),
        ({"setup": "discs", "nucleus_area_fraction": 0.9}, "boundary.disc.nucleus_area_fraction"),
        ({"inclusions": [LESION], "void_labels": {"hole9"}}, "void_labels"),
        ({"inclusions": [Inclusion("trabecular", (0, 0, 0), (3, 3, 3))]}, "inclusions.label"),
    ]
    for kw, where in cases:
        with pytest.raises(InputError) as err:
            generate_vertebra(tmp_path / "x.msh", LEVEL, SIZE, 1, 1.0, **kw)
        assert err.value.where == where, f"{kw}: {err.value}"
    with pytest.raises(InputError, match="radii"):
        Inclusion("a", (0, 0, 0), (1, -1, 1))
    with pytest.raises(InputError, match="clip"):
        Inclusion("a", (0, 0, 0), (1, 1, 1), clip="shell")
    with pytest.raises(InputError, match="does not overlap"):
        inclusion_volumes(LEVEL, 1.0, [Inclusion("far", (0, 80, 0), (3, 3, 3))])


# ----------------------------------------------------------------------------- discs, no posterior elements


def test_discs_groups_and_no_posterior_elements(discs_mesh):
    groups = _volume_groups(discs_mesh)
    assert set(groups) == {"cortical_shell", "trabecular", "disc_superior_annulus", "disc_superior_nucleus",
                           "disc_inferior_annulus", "disc_inferior_nucleus"}, sorted(groups)
    lm = vertebra_landmarks(LEVEL)
    y = discs_mesh.points[np.unique(discs_mesh.cells_dict["tetra"])][:, 1]
    assert y.min() > lm["body_posterior_y"] - 0.01, f"mesh reaches y = {y.min():.2f} behind the body"
    for name in ("endplate_superior", "endplate_inferior", "posterior_wall"):
        assert len(_facets(discs_mesh, name)) > 0, name


def test_disc_faces_flat_and_nucleus_fraction(discs_mesh):
    t = discs_mesh.cells_dict["tetra"]
    g = _volume_groups(discs_mesh)
    p = discs_mesh.points
    z_face = 0.5 * H - DISH + DISC
    for side, z in (("superior", z_face), ("inferior", -z_face)):
        f = _facets(discs_mesh, f"disc_{side}_face")
        assert np.abs(p[f][..., 2] - z).max() < 1e-9
        nucleus_faces = _keyset(_faces_of(t[g[f"disc_{side}_nucleus"]]))
        in_nucleus = np.array([k in nucleus_faces for k in map(tuple, np.sort(f, axis=1).tolist())])
        a = _areas(p, f)
        frac = a[in_nucleus].sum() / a.sum()
        # the nucleus ellipse and the outline are both inscribed polygons (3 mm chords): the ellipse,
        # with the tighter curvature, loses at most ~3 % of its area; the outline ~1 %
        assert 0.43 * 0.97 < frac < 0.43 * 1.01, f"{side} nucleus fraction {frac:.4f}"


# ----------------------------------------------------------------------------- breach, tet10


_TET10_EDGES = [(0, 1), (1, 2), (0, 2), (0, 3), (1, 3), (2, 3)]


def _tet10_det_j(x, xi):
    r, s, t = xi
    lam = np.array([1.0 - r - s - t, r, s, t])
    dlam = np.array([[-1.0, -1.0, -1.0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    dn = np.zeros((10, 3))
    for i in range(4):
        dn[i] = (4.0 * lam[i] - 1.0) * dlam[i]
    for k, (i, j) in enumerate(_TET10_EDGES):
        dn[4 + k] = 4.0 * (lam[i] * dlam[j] + lam[j] * dlam[i])
    return np.linalg.det(np.einsum("nai,aj->nij", x, dn))


def _tet10_volume(x):
    """Volumes of curved tet10 cells: det J is a cubic, integrated exactly by the 5-point degree-3 rule
    (centroid weight -4/5, points (1/2, 1/6, 1/6)-type weight 9/20; Keast 1986)."""
    pts = [(1 / 6, 1 / 6, 1 / 6), (1 / 2, 1 / 6, 1 / 6), (1 / 6, 1 / 2, 1 / 6), (1 / 6, 1 / 6, 1 / 2)]
    v = 0.45 * sum(_tet10_det_j(x, xi) for xi in pts) - 0.8 * _tet10_det_j(x, (0.25, 0.25, 0.25))
    return v / 6.0


def test_breach_and_clipped_inclusions_valid_tet10(breach_mesh):
    t = breach_mesh.cells_dict["tetra10"]
    x = breach_mesh.points[t]
    pts = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0.5, 0, 0), (0.5, 0.5, 0), (0, 0.5, 0),
           (0, 0, 0.5), (0.5, 0, 0.5), (0, 0.5, 0.5), (0.25, 0.25, 0.25)]
    dmin = min(_tet10_det_j(x, xi).min() for xi in pts)
    assert dmin > 0.0, f"min det J {dmin:.3e}"
    groups = _volume_groups(breach_mesh)
    assert set(groups) == {"cortical_shell", "trabecular", "breach", "touch"}, sorted(groups)


def test_breach_replaces_the_shell_and_reaches_the_posterior_wall(breach_mesh):
    t = breach_mesh.cells_dict["tetra10"][:, :4]
    g = _volume_groups(breach_mesh)
    wall = _keyset(_facets(breach_mesh, "posterior_wall"))
    breach_faces = _keyset(_faces_of(t[g["breach"]]))
    assert wall & breach_faces, "the breach does not reach the posterior wall facets"
    shell_nodes = breach_mesh.points[np.unique(t[g["cortical_shell"]])]
    d = np.linalg.norm(shell_nodes - BREACH.center, axis=1)
    assert d.min() >= BREACH.radii[0] - 1e-6, f"shell node {d.min():.3f} mm from the breach centre"


def test_body_volume_closed_form_matches_tet10_mesh(breach_mesh):
    """Closed-form body volume (lofted sections, dish caps) against the curved tet10 mesh of the body."""
    t = breach_mesh.cells_dict["tetra10"]
    v_mesh = _tet10_volume(breach_mesh.points[t]).sum()
    vols = inclusion_volumes(LEVEL, 1.0, [BREACH, TOUCH])
    assert v_mesh == pytest.approx(vols["body"], rel=2e-4), f"tet10 {v_mesh:.1f} vs closed form {vols['body']:.1f}"
    # the clipped inclusions: CAD volume equals their curved-mesh volume within the size-3 mesh error
    # (0.3 % for the 840 mm^3 region clipped by the core, whose rim meets the core at grazing angles)
    groups = _volume_groups(breach_mesh)
    for name in ("breach", "touch"):
        v = _tet10_volume(breach_mesh.points[t[groups[name]]]).sum()
        assert v == pytest.approx(vols[name], rel=5e-3), f"{name}: mesh {v:.2f} vs CAD {vols[name]:.2f} mm^3"
    assert vols["touch"] < _sphere(6.0) * 0.99, "the inclusion crossing the core boundary was not clipped"


# ----------------------------------------------------------------------------- sizing


def test_solve_radius_inside_core_is_closed_form():
    r = solve_inclusion_radius(LEVEL, 1.0, (0.0, 0.0, 0.0), 1000.0)
    assert r == pytest.approx((3000.0 / (4.0 * math.pi)) ** (1.0 / 3.0), rel=1e-12)


def test_solve_radius_clipped_reaches_target():
    body = inclusion_volumes(LEVEL, 1.0)["body"]
    target = 0.4 * body
    aspect = (1.2, 1.0, 0.9)
    r = solve_inclusion_radius(LEVEL, 1.0, (0.0, 0.0, 0.0), target, aspect=aspect)
    got = inclusion_volumes(LEVEL, 1.0, [Inclusion("l", (0, 0, 0), tuple(r * a for a in aspect))])["l"]
    assert got == pytest.approx(target, rel=1.5e-3)
    r_free = (3.0 * target / (4.0 * math.pi * 1.2 * 0.9)) ** (1.0 / 3.0)
    assert r > r_free, "a clipped ellipsoid must be larger than the free one of the same volume"
    with pytest.raises(InputError, match="does not fit"):
        solve_inclusion_radius(LEVEL, 1.0, (0.0, 0.0, 0.0), body)


def test_generator_fingerprint_is_stable_hex():
    a, b = generator_fingerprint(), generator_fingerprint()
    assert a == b and len(a) == 12 and int(a, 16) >= 0
