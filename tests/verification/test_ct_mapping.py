"""Verification of the CT material mapping (fembone.spine.ct.mapping) on synthetic phantoms.

* a uniform-density block takes each law's modulus exactly (hand values from the published
  formulas);
* two-density blocks loaded along z through fembone's solver give the analytic series and
  parallel stiffness (nu = 0, so each layer is in uniaxial stress; interfaces on element faces
  and no quadrature point inside the one-voxel interpolation ramp, so the mapped layers are
  exactly homogeneous);
* flipped, transposed and rotated storage of one image gives the same element moduli, and an
  oblique affine maps a linear density field exactly;
* integrated mapping converges as the mesh refines, centroid sampling is noisier (numbers
  printed: ``pytest -s``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from numpy.polynomial.legendre import leggauss

from fembone.core.analysis import solve
from fembone.core.constraints import ConstraintSet, DofLayout
from fembone.core.materials import isotropic_stiffness
from fembone.core.meshgen import box_mesh
from fembone.core.model import Model
from fembone.spine.ct.image import Image, read_image
from fembone.spine.ct.laws import LAWS
from fembone.spine.ct.mapping import RegionLaws, map_materials

nib = pytest.importorskip("nibabel")


def _nifti(path: Path, data, affine) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(data, np.float64), np.asarray(affine, float)), str(path))
    return path


def _laws(name: str, nu: float = 0.3) -> RegionLaws:
    return RegionLaws(LAWS[name], LAWS[name], nu=nu)


def _morgan(rho_mgcc: float) -> float:
    """Morgan 2003 through K2HPO4 -> ash -> apparent, by hand: 4730 ((1.06 rho + 0.0389) / 0.6)^1.56."""
    return 4730.0 * ((1.06 * rho_mgcc / 1000.0 + 0.0389) / 0.6) ** 1.56


# ----------------------------------------------------------------------------- uniform block

HAND = {  # E (MPa) at 180 mg/cc K2HPO4: ash 0.2297, apparent 0.382833 g/cc
    "kopperdahl2002": -34.7 + 3230.0 * 0.180,
    "bonelab_kopperdahl": 2980.0 * 0.180**1.05,
    "kopperdahl1998": 2980.0 * (0.2297 / 0.6) ** 1.05,
    "morgan2003": 4730.0 * (0.2297 / 0.6) ** 1.56,
    "keyak1994": 33900.0 * 0.2297**2.20,
}


@pytest.mark.parametrize("order", [1, 2])
def test_uniform_block_gives_the_law_modulus_exactly(tmp_path, order):
    A = np.diag([0.7, 0.7, 0.9, 1.0])
    A[:3, 3] = -2.0
    img = read_image(_nifti(tmp_path / "u.nii.gz", np.full((24, 24, 20), 180.0), A))
    mesh = box_mesh((10.0, 10.0, 12.0), (3, 3, 4), order=order)
    assert set(HAND) == set(LAWS)
    for name, E in HAND.items():
        mm = map_materials(mesh, img, _laws(name, 0.3))
        assert np.allclose(mm.modulus, E, rtol=1e-12, atol=0), (name, mm.modulus[:3], E)
        assert np.allclose(mm.poisson, 0.3, rtol=1e-12)
        assert np.allclose(mm.C, isotropic_stiffness(np.full(mesh.n_elements, E), 0.3), rtol=1e-12)
        assert np.allclose(mm.density, 180.0, rtol=1e-12)


# ----------------------------------------------------------------------------- series / parallel

H = 10.0  # block edge, mm
DZ = -0.01  # mm, top platen displacement


def _stiffness(mesh, C, height: float = H) -> float:
    """Axial stiffness (N/mm): bottom face fixed, top face moved by DZ along z, sides free."""
    lay = DofLayout(mesh.n_nodes)
    cs = ConstraintSet(lay)
    z = mesh.points[:, 2]
    bot, top = np.flatnonzero(z < 1e-9), np.flatnonzero(z > height - 1e-9)
    cs.fix(np.concatenate([3 * bot, 3 * bot + 1, 3 * bot + 2]), 0.0)
    cs.fix(3 * top + 2, DZ)
    model = Model("block", mesh, [], np.zeros(mesh.n_elements, int), C, lay, cs, loads={"push": np.zeros(lay.n_dofs)})
    res = solve(model, nodal=False)
    f = res.K @ res.loadcases["push"].u
    return float(f[3 * top + 2].sum() / DZ)


def _two_density_image(tmp_path, axis: int, rho1: float, rho2: float) -> Image:
    """0.5 mm voxels, centres at -0.75 + 0.5 k: the step between rho1 (coordinate < 5) and rho2
    lies on a voxel boundary, so the interpolation ramp is 4.75..5.25 mm."""
    n = 26
    c = -0.75 + 0.5 * np.arange(n)
    shape = [n, n, n]
    field = np.where(c < 5.0, rho1, rho2)
    data = np.broadcast_to(field.reshape([-1 if a == axis else 1 for a in range(3)]), shape)
    A = np.diag([0.5, 0.5, 0.5, 1.0])
    A[:3, 3] = -0.75
    return read_image(_nifti(tmp_path / f"two{axis}.nii.gz", np.array(data), A))


def test_series_and_parallel_blocks_give_the_analytic_stiffness(tmp_path):
    rho1, rho2 = 100.0, 300.0
    E1, E2 = _morgan(rho1), _morgan(rho2)  # 543.4, 1786.9 MPa
    mesh = box_mesh((H, H, H), (4, 4, 4))  # 2.5 mm cells: element faces on x = 5 and z = 5
    # 4-point rule (levels=0): the nearest quadrature point is 0.138 x 2.5 = 0.345 mm from a
    # cell face, beyond the 0.25 mm half-width of the interpolation ramp
    laws = _laws("morgan2003", nu=0.0)
    series = map_materials(mesh, _two_density_image(tmp_path, 2, rho1, rho2), laws, levels=0)
    parallel = map_materials(mesh, _two_density_image(tmp_path, 0, rho1, rho2), laws, levels=0)
    assert set(np.round(series.modulus, 9)) == {round(E1, 9), round(E2, 9)}
    k_series = H * H / (5.0 / E1 + 5.0 / E2)  # A / sum(h_i / E_i)
    k_parallel = (E1 * 5.0 * H + E2 * 5.0 * H) / H  # sum(E_i A_i) / L
    ks, kp = _stiffness(mesh, series.C), _stiffness(mesh, parallel.C)
    print(f"\nseries   k = {ks:.6f} N/mm, analytic {k_series:.6f} (rel. error {ks / k_series - 1:.2e})")
    print(f"parallel k = {kp:.6f} N/mm, analytic {k_parallel:.6f} (rel. error {kp / k_parallel - 1:.2e})")
    assert ks == pytest.approx(k_series, rel=1e-7), (ks, k_series)
    assert kp == pytest.approx(k_parallel, rel=1e-7), (kp, k_parallel)


# ----------------------------------------------------------------------------- storage order and affines


def test_flipped_transposed_and_rotated_storage_give_the_same_map(tmp_path):
    rng = np.random.default_rng(7)
    data = rng.uniform(50.0, 400.0, (14, 16, 12))
    A = np.diag([0.9, 0.8, 1.1, 1.0])
    A[:3, 3] = [-3.0, -2.0, -4.0]
    n = data.shape
    flipA = A.copy()
    flipA[:3, 0], flipA[:3, 3] = -A[:3, 0], A[:3, 3] + (n[0] - 1) * A[:3, 0]
    swapA = A.copy()
    swapA[:3, 0], swapA[:3, 1] = A[:3, 1], A[:3, 0]
    rotA = A.copy()  # np.rot90 over (i, j): new[i', j'] = old[j', n_j - 1 - i']
    rotA[:3, 0], rotA[:3, 1] = -A[:3, 1], A[:3, 0]
    rotA[:3, 3] = A[:3, 3] + (n[1] - 1) * A[:3, 1]
    variants = {
        "plain": (data, A), "flip": (data[::-1], flipA), "swap": (data.transpose(1, 0, 2), swapA),
        "rot90": (np.rot90(data, 1, axes=(0, 1)), rotA),
    }
    mesh = box_mesh((8.0, 8.0, 8.0), (3, 3, 3), origin=(-1.5, -1.0, -2.5))
    ref = None
    for name, (d, M) in variants.items():
        img = read_image(_nifti(tmp_path / f"{name}.nii.gz", np.ascontiguousarray(d), M))
        E = map_materials(mesh, img, _laws("morgan2003")).modulus
        if ref is None:
            ref = E
        # NIfTI stores the affine in float32: voxel positions agree to ~1e-6 mm between variants
        assert np.allclose(E, ref, rtol=1e-6, atol=0), (name, np.abs(E / ref - 1).max())


def test_oblique_affine_maps_a_linear_field_exactly(tmp_path):
    th = math.radians(35.0)
    R = np.array([[math.cos(th), 0, math.sin(th)], [0, 1, 0], [-math.sin(th), 0, math.cos(th)]])
    A = np.eye(4)
    A[:3, :3] = R @ np.diag([0.6, 0.75, 0.9])
    A[:3, 3] = [-8.0, -9.0, -3.0]
    ijk = np.stack(np.meshgrid(*(np.arange(k) for k in (40, 36, 34)), indexing="ij"), axis=-1).reshape(-1, 3)
    world = ijk @ A[:3, :3].T + A[:3, 3]
    g = np.array([4.0, -2.5, 6.0])  # mg/cc per mm
    rho = (200.0 + world @ g).reshape(40, 36, 34)
    img = read_image(_nifti(tmp_path / "oblique.nii.gz", rho, A))
    centre = A[:3, :3] @ (np.array([39, 35, 33]) / 2.0) + A[:3, 3]
    mesh = box_mesh((6.0, 6.0, 6.0), (3, 3, 3), origin=centre - 3.0)
    ijk = img.world_to_index(mesh.points)
    assert np.all(ijk > 0.5) and np.all(ijk < np.array([39, 35, 33]) - 0.5)  # inside the voxel centres
    mm = map_materials(mesh, img, _laws("kopperdahl2002"))
    expected = 200.0 + mesh.centroids() @ g  # mean of a linear field over a tetrahedron
    # exact up to the float32 affine of the NIfTI header (~1e-6 mm)
    assert np.allclose(mm.density, expected, rtol=1e-7)
    assert np.allclose(mm.modulus, -34.7 + 3.230 * expected, rtol=1e-7)  # E linear in rho


# ----------------------------------------------------------------------------- convergence


def _noisy_phantom(offset: float) -> Image:
    """18^3 voxels of 1 mm, lognormal density (median 150 mg/cc, sigma_ln 0.4), voxel centres at
    -1 + offset .. 16 + offset: a field with voxel-scale detail over the 16 mm test block."""
    rho = np.exp(np.random.default_rng(1).normal(math.log(150.0), 0.4, (18, 18, 18)))
    A = np.eye(4)
    A[:3, 3] = -1.0 + offset
    return Image(rho, A, "phantom")


def _exact_integral(img: Image, law) -> float:
    """int E(rho(x)) dV over [0, 16]^3 by 4-point Gauss-Legendre on 0.5 mm cells (the trilinear
    field is smooth inside each cell between voxel centres); independent of the mapping code."""
    g, w = leggauss(4)
    x = np.concatenate([a + 0.25 * (g + 1.0) for a in np.arange(0.0, 16.0, 0.5)])
    wx = np.tile(0.25 * w, 32)
    X = np.stack(np.meshgrid(x, x, x, indexing="ij"), axis=-1).reshape(-1, 3)
    W = np.einsum("i,j,k->ijk", wx, wx, wx).ravel()
    from scipy import ndimage as ndi

    rho = ndi.map_coordinates(img.data, img.world_to_index(X).T, order=1)
    return float((law.modulus(rho) * W).sum())


def test_integrated_mapping_converges_centroid_sampling_is_noisier():
    law = LAWS["morgan2003"]
    laws = _laws("morgan2003")
    rows = []
    for off in (0.0, 0.37):
        img = _noisy_phantom(off)
        ref = _exact_integral(img, law)
        for nd in (2, 4, 8):
            mesh = box_mesh((16.0, 16.0, 16.0), (nd, nd, nd))
            V = np.abs(mesh.volumes())
            for method in ("integrate", "centroid"):
                mm = map_materials(mesh, img, laws, method=method)
                err = float((mm.modulus * V).sum() / ref - 1.0)
                rows.append((off, 16.0 / nd, method, err, _stiffness(mesh, mm.C, 16.0)))
    print("\noffset  h (mm)  method     int E dV error   k (N/mm)")
    for off, h, method, err, k in rows:
        print(f"{off:6.2f}  {h:6.1f}  {method:9s}  {100 * err:+10.3f} %   {k:9.1f}")
    get = {(o, h, m): (e, k) for o, h, m, e, k in rows}
    hs = (8.0, 4.0, 2.0)
    for off in (0.0, 0.37):
        ie = [abs(get[off, h, "integrate"][0]) for h in hs]
        ce = [abs(get[off, h, "centroid"][0]) for h in hs]
        assert ie[0] < 5e-3 and ie[1] < 2e-3 and ie[2] < 5e-4, ie  # int E dV converges to the exact integral
        assert max(ce[:2]) > 5 * max(ie[:2]), (ce, ie)  # centroid sampling: several times the error
        k = [get[off, h, "integrate"][1] for h in hs]
        assert k[0] > k[1] > k[2], k  # the stiffness decreases monotonically as the mesh refines
    # sensitivity to a 0.37 mm shift of the image (noise of the map, not of the anatomy)
    shift = {m: [abs(get[0.37, h, m][1] / get[0.0, h, m][1] - 1) for h in hs] for m in ("integrate", "centroid")}
    print("shift sensitivity of k: integrate " + ", ".join(f"{100 * s:.2f} %" for s in shift["integrate"])
          + "; centroid " + ", ".join(f"{100 * s:.2f} %" for s in shift["centroid"]))
    assert max(shift["integrate"]) < 0.007 and max(shift["centroid"]) > 2 * max(shift["integrate"]), shift

