"""Vertebra meshes from closed surfaces (fembone.spine.geometry.surface): checks, frame, groups.

Real data live outside the repository in ../shared/data/vertebrae (see its README):
the ArtiSynth L4 (OBJ, metres; +x anterior, y lateral, +z cranial) and a VerSe L2
segmentation (nii.gz; in world coordinates the body is at -y and the "top" PMMA cap,
label 6, at +z).  Tests that need them are skipped when they are absent.
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from fembone.core.errors import InputError
from fembone.spine.geometry.surface import check_surface, detect_frame, mesh_surface, read_surface
from fembone.core.mesh import read_mesh

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "vertebrae"
L4 = DATA / "L4_Schrumpfverpacken.obj"
L2_SEG = DATA / "sub-verse004_0000_vertebra_21_seg.nii.gz"
L4_VOLUME = 72_609.0  # mm^3, README
TOL_DEG = 8.0  # the L4's endplate bisector is tilted 4.4 deg from the file's z (lordotic model)

VOLUME_GROUPS = ("cortical_shell", "trabecular", "posterior_elements")
SURFACE_GROUPS = ("endplate_superior", "endplate_inferior", "posterior_wall")

needs_l4 = pytest.mark.skipif(not L4.is_file(), reason=f"real vertebra data not found at {DATA}")


def _angle(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return math.degrees(math.acos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1.0, 1.0)))


def _write_stl(path, P, F):
    import pyvista as pv

    pv.PolyData(np.asarray(P, float), np.column_stack([np.full(len(F), 3), F]).ravel()).save(str(path))
    return path


def _rotations_90():
    out = []
    for perm in itertools.permutations(range(3)):
        for sg in itertools.product((1, -1), repeat=3):
            M = np.zeros((3, 3))
            M[range(3), perm] = sg
            if np.linalg.det(M) > 0:
                out.append(M)
    return out


def _small_rotation(rng, max_deg=10.0):
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    t = math.radians(rng.uniform(-max_deg, max_deg))
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(t) * K + (1 - math.cos(t)) * K @ K


@pytest.fixture(scope="module")
def l4_surface():
    if not L4.is_file():
        pytest.skip(f"real vertebra data not found at {DATA}")
    P, F = read_surface(L4, units="m")
    return P, check_surface(P, F, str(L4))


@pytest.fixture(scope="module")
def l4_mesh(tmp_path_factory):
    """The L4 meshed once through the CLI: size 3 mm (surface remeshed), tet10."""
    if not L4.is_file():
        pytest.skip(f"real vertebra data not found at {DATA}")
    from fembone.apps.cli import main

    out = tmp_path_factory.mktemp("surface") / "L4.msh"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # possibly one element of quality < 0.05
        assert main(["mesh", "surface", str(L4), "--units", "m", "--size", "3", "--order", "2", "-o", str(out)]) == 0
    return read_mesh(out)


# ----------------------------------------------------------------------------- the real L4


@needs_l4
def test_l4_groups_present_and_partition(l4_mesh):
    m = l4_mesh
    assert m.order == 2 and all(f.shape[1] == 6 for f in m.facet_sets.values())
    for g in VOLUME_GROUPS:
        assert len(m.cell_sets[g]) > 0, g
    for g in SURFACE_GROUPS:
        assert len(m.facet_sets[g]) > 0, g
    ids = np.concatenate([m.cell_sets[g] for g in VOLUME_GROUPS])
    assert np.array_equal(np.sort(ids), np.arange(m.n_elements)), "every element in exactly one volume group"


@needs_l4
def test_l4_volumes(l4_mesh):
    m = l4_mesh
    vol = m.volumes()
    assert vol.min() > 0.0
    assert vol.sum() == pytest.approx(L4_VOLUME, rel=0.02)  # remeshed surface
    body = np.concatenate([m.cell_sets["cortical_shell"], m.cell_sets["trabecular"]])
    vb = vol[body].sum()
    assert 0.4 * vol.sum() < vb < 0.8 * vol.sum()
    # origin at the body centroid
    c = (vol[body] @ m.centroids()[body]) / vb
    assert np.abs(c).max() < 1e-6
    # cortical shell: area x thickness (volume-matched), so about 1 mm on average
    faces, elem = m.boundary_faces()
    is_body = np.zeros(m.n_elements, bool)
    is_body[body] = True
    T = m.points[faces[is_body[elem]]]
    area = 0.5 * np.linalg.norm(np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0]), axis=1).sum()
    assert vol[m.cell_sets["cortical_shell"]].sum() / area == pytest.approx(1.0, rel=0.15)


@needs_l4
def test_l4_frame_in_mesh(l4_mesh):
    """File +x (anterior) -> +y, file +z (cranial) -> +z, file y (lateral) -> x."""
    m = l4_mesh
    ext = np.ptp(m.points, axis=0)
    assert ext[0] == pytest.approx(93.9, abs=3.0)  # lateral: file y extent
    assert ext[1] == pytest.approx(89.8, abs=4.0)  # AP: file x extent
    assert ext[2] == pytest.approx(46.6, abs=5.0)
    c = m.centroids()
    post = c[m.cell_sets["posterior_elements"]]
    assert post[:, 1].mean() < -15.0  # posterior elements behind the body
    assert m.points[:, 1].max() < 30.0 and m.points[:, 1].min() < -50.0  # spinous process far behind


@needs_l4
def test_l4_facet_normals(l4_mesh):
    from fembone.core.selectors import orient_faces

    m = l4_mesh

    def mean_normal(name):
        f, on = orient_faces(m, m.facet_sets[name])
        assert on.all(), f"{name} not on the boundary"
        T = m.points[f[:, :3]]
        n = np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0])
        return n.sum(axis=0) / np.linalg.norm(n, axis=1).sum(), T

    n_sup, T_sup = mean_normal("endplate_superior")
    n_inf, T_inf = mean_normal("endplate_inferior")
    n_pw, T_pw = mean_normal("posterior_wall")
    assert n_sup[2] > 0.9 and n_inf[2] < -0.9
    assert T_sup[:, :, 2].min() > 0.0 and T_inf[:, :, 2].max() < 0.0
    assert n_pw[1] < -0.7
    assert np.abs(T_pw[:, :, 0]).max() < 20.0  # between the pedicles
    # endplate areas of a lumbar body: 1000-2500 mm^2
    for T in (T_sup, T_inf):
        a = 0.5 * np.linalg.norm(np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0]), axis=1).sum()
        assert 1000.0 < a < 2500.0


@needs_l4
def test_l4_frame_detected_as_given(l4_surface):
    P, F = l4_surface
    fr = detect_frame(P, F)
    assert _angle(fr.rotation[:, 1], [1, 0, 0]) < TOL_DEG  # anterior
    assert _angle(fr.rotation[:, 2], [0, 0, 1]) < TOL_DEG  # cranial
    assert np.allclose(fr.rotation.T @ fr.rotation, np.eye(3), atol=1e-9)
    assert np.linalg.det(fr.rotation) == pytest.approx(1.0)  # right-handed: x = y cross z
    assert fr.detected["cranial_votes"] == [1.0, 1.0, 1.0]
    assert fr.detected["foramen_found"]


@needs_l4
def test_l4_frame_detected_after_rotation(l4_surface):
    """12 of the 24 orientations by multiples of 90 deg, half of them also tilted by up to 10 deg."""
    P, F = l4_surface
    rng = np.random.default_rng(7)
    c = P.mean(axis=0)
    for k, M in enumerate(_rotations_90()[::2]):
        if k % 2:
            M = M @ _small_rotation(rng)
        Pr = (P - c) @ M.T + rng.normal(scale=30.0, size=3)
        fr = detect_frame(Pr, F)
        assert _angle(fr.rotation[:, 1], M @ [1, 0, 0]) < TOL_DEG, (k, M)
        assert _angle(fr.rotation[:, 2], M @ [0, 0, 1]) < TOL_DEG, (k, M)


@needs_l4
def test_given_axes_are_used_exactly(l4_surface):
    P, F = l4_surface
    fr = detect_frame(P, F, anterior="+x", cranial="+z")
    assert np.allclose(fr.rotation, [[0, 1, 0], [-1, 0, 0], [0, 0, 1]])  # right = +x_ant cross +z = -y
    fr = detect_frame(P, F, cranial="+z")
    assert np.allclose(fr.rotation[:, 2], [0, 0, 1]) and _angle(fr.rotation[:, 1], [1, 0, 0]) < 1.0
    with pytest.raises(InputError, match="expected an axis"):
        detect_frame(P, F, anterior="forward")
    with pytest.raises(InputError, match="perpendicular"):
        detect_frame(P, F, anterior="+x", cranial="-x")


@needs_l4
def test_units(l4_surface, tmp_path):
    P, F = l4_surface
    assert np.ptp(P, axis=0) == pytest.approx([89.8, 93.9, 46.6], abs=0.1)
    with pytest.raises(InputError, match="units='m'"):
        read_surface(L4, units="mm")  # 0.09 mm across
    stl = _write_stl(tmp_path / "L4_mm.stl", P, F)
    Pm, Fm = read_surface(stl, units="mm")
    assert np.ptp(Pm, axis=0) == pytest.approx(np.ptp(P, axis=0), abs=1e-3)
    with pytest.raises(InputError, match="units"):
        read_surface(stl, units="cm")


@needs_l4
def test_mesh_surface_api_order1(l4_surface, tmp_path):
    """The Python API at the surface's own resolution (no remeshing): the volume is exact."""
    P, F = l4_surface
    stl = _write_stl(tmp_path / "L4_mm.stl", P, F)
    out = tmp_path / "L4_o1.msh"
    assert mesh_surface(stl, out, size=2.0, order=1, anterior="+x", cranial="+z") == out
    m = read_mesh(out)
    assert m.order == 1 and all(f.shape[1] == 3 for f in m.facet_sets.values())
    assert m.volumes().min() > 0.0
    assert m.volumes().sum() == pytest.approx(L4_VOLUME, rel=1e-5)  # README value is rounded


# ----------------------------------------------------------------------------- bad surfaces


@needs_l4
def test_not_closed(l4_surface, tmp_path):
    P, F = l4_surface
    stl = _write_stl(tmp_path / "holey.stl", P, F[5:])
    with pytest.raises(InputError, match=r"holey\.stl.*not closed: \d+ boundary edges"):
        mesh_surface(stl, tmp_path / "x.msh")


@needs_l4
def test_inconsistent_orientation(l4_surface):
    P, F = l4_surface
    G = F.copy()
    G[10] = G[10, [0, 2, 1]]
    with pytest.raises(InputError, match="not consistently oriented"):
        check_surface(P, G, "flipped")


@needs_l4
def test_inward_orientation_is_fixed(l4_surface):
    P, F = l4_surface
    G = check_surface(P, F[:, [0, 2, 1]], "inward")
    assert np.array_equal(G, F)


def test_self_intersecting(tmp_path):
    import pyvista as pv

    a = pv.Sphere(radius=20.0, theta_resolution=30, phi_resolution=30)
    b = pv.Sphere(radius=20.0, center=(15.0, 0.0, 0.0), theta_resolution=30, phi_resolution=30)
    stl = tmp_path / "two_spheres.stl"
    (a + b).save(str(stl))
    with pytest.raises(InputError, match=r"two_spheres\.stl.*self-intersect"):
        mesh_surface(stl, tmp_path / "x.msh")


def test_separate_parts_and_non_manifold(tmp_path):
    import pyvista as pv

    a = pv.Sphere(radius=10.0, theta_resolution=16, phi_resolution=16).triangulate().clean()
    b = a.translate((40.0, 0.0, 0.0), inplace=False)
    stl = tmp_path / "apart.stl"
    (a + b).save(str(stl))
    P, F = read_surface(stl)
    with pytest.raises(InputError, match="2 separate parts"):
        check_surface(P, F, str(stl))
    with pytest.raises(InputError, match="not manifold"):
        check_surface(P, np.vstack([F, F[:1]]), "dup")


def test_bad_options(tmp_path):
    with pytest.raises(InputError, match="not found"):
        mesh_surface(tmp_path / "missing.stl", tmp_path / "x.msh")
    with pytest.raises(InputError, match=r"\.msh"):
        mesh_surface(tmp_path / "missing.stl", tmp_path / "x.vtu")
    with pytest.raises(InputError, match="order"):
        mesh_surface(tmp_path / "missing.stl", tmp_path / "x.msh", order=3)
    (tmp_path / "junk.stl").write_text("solid nothing\nendsolid\n")
    with pytest.raises(InputError, match="junk.stl"):
        mesh_surface(tmp_path / "junk.stl", tmp_path / "x.msh")


# ----------------------------------------------------------------------------- the VerSe L2


def test_l2_segmentation_frame():
    nib = pytest.importorskip("nibabel", reason="nibabel is needed to read the L2 segmentation (nii.gz)")
    if not L2_SEG.is_file():
        pytest.skip(f"real vertebra data not found at {DATA}")
    import pyvista as pv
    from scipy import ndimage as ndi

    img = nib.load(str(L2_SEG))
    lab = np.asarray(img.dataobj)
    m = np.pad(ndi.gaussian_filter(((lab >= 1) & (lab <= 4)).astype(float), 0.7), 2)  # README recipe
    g = pv.ImageData(dimensions=m.shape, spacing=(1.0, 1.0, 1.0), origin=(-2.0, -2.0, -2.0))
    g.point_data["m"] = m.ravel(order="F")
    s = g.contour([0.5], scalars="m", method="marching_cubes").triangulate().clean()
    A = img.affine
    P = np.asarray(s.points) @ A[:3, :3].T + A[:3, 3]
    F = check_surface(P, s.faces.reshape(-1, 4)[:, 1:], "L2")
    fr = detect_frame(P, F)
    assert _angle(fr.rotation[:, 1], [0, -1, 0]) < TOL_DEG  # body at world -y
    assert _angle(fr.rotation[:, 2], [0, 0, 1]) < TOL_DEG  # top cap (label 6) at world +z
    assert fr.detected["foramen_found"]


@needs_l4
def test_given_anterior_only_is_kept_exactly(l4_surface):
    P, F = l4_surface
    fr = detect_frame(P, F, anterior="+x")
    assert np.allclose(fr.rotation[:, 1], [1, 0, 0])
    assert _angle(fr.rotation[:, 2], [0, 0, 1]) < TOL_DEG
