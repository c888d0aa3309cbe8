"""Linear elastic materials: isotropic (Lamé) and transversely isotropic (engineering constants)."""

from __future__ import annotations

import numpy as np
import pytest

from fembone.core.errors import InputError
from fembone.core.materials import (
    MATERIALS,
    Isotropic,
    TransverseIsotropic,
    isotropic_stiffness,
    make_material,
    rotate_voigt,
    tensor_to_voigt,
    voigt_to_tensor,
)

XX, YY, ZZ, XY, YZ, XZ = range(6)
BONE = dict(E_axial=400.0, E_transverse=140.0, nu_axial=0.25, nu_transverse=0.35, G_axial=90.0)


def _rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


@pytest.mark.parametrize("E, nu", [(12000.0, 0.3), (1.0, 0.0), (400.0, 0.49), (10.0, -0.5)])
def test_isotropic_matches_lame(E, nu):
    lam = E * nu / ((1 + nu) * (1 - 2 * nu))
    mu = E / (2 * (1 + nu))
    C = Isotropic(E=E, nu=nu).stiffness()
    expected = np.zeros((6, 6))
    expected[:3, :3] = lam
    expected[[0, 1, 2], [0, 1, 2]] += 2 * mu
    expected[[3, 4, 5], [3, 4, 5]] = mu
    np.testing.assert_allclose(C, expected, rtol=1e-14, atol=1e-14 * E)
    S = np.linalg.inv(C)
    assert S[XX, XX] == pytest.approx(1 / E, rel=1e-10)
    assert S[XX, YY] == pytest.approx(-nu / E, rel=1e-10, abs=1e-15 / E)
    assert S[XY, XY] == pytest.approx(2 * (1 + nu) / E, rel=1e-10)  # engineering shear strain


def test_isotropic_stiffness_broadcasts():
    C = isotropic_stiffness(np.array([1.0, 2.0, 3.0]), 0.3)
    assert C.shape == (3, 6, 6)
    np.testing.assert_allclose(C[2], 3.0 * C[0])


def test_transverse_isotropic_axis_z_compliance():
    m = TransverseIsotropic(name="bone", **BONE)
    S = np.linalg.inv(m.stiffness())
    Ea, Et, nua, nut, Ga = BONE["E_axial"], BONE["E_transverse"], BONE["nu_axial"], BONE["nu_transverse"], BONE["G_axial"]
    assert S[ZZ, ZZ] == pytest.approx(1 / Ea)
    assert S[XX, XX] == pytest.approx(1 / Et) and S[YY, YY] == pytest.approx(1 / Et)
    assert S[XX, YY] == pytest.approx(-nut / Et)
    assert S[XX, ZZ] == pytest.approx(-nua / Ea) and S[YY, ZZ] == pytest.approx(-nua / Ea)
    assert S[YZ, YZ] == pytest.approx(1 / Ga) and S[XZ, XZ] == pytest.approx(1 / Ga)
    assert S[XY, XY] == pytest.approx(2 * (1 + nut) / Et)
    off = np.ones((6, 6), bool)
    off[:3, :3] = False
    off[[3, 4, 5], [3, 4, 5]] = False
    np.testing.assert_allclose(S[off], 0.0, atol=1e-12 / Et)
    np.testing.assert_allclose(S, m.local_compliance(), rtol=1e-12, atol=1e-15)
    assert m.youngs_modulus == Ea


def test_uniaxial_stress_along_the_axis():
    """sigma_zz = 1 MPa: eps_zz = 1/E_axial, eps_xx = eps_yy = -nu_axial/E_axial."""
    m = TransverseIsotropic(**BONE)
    eps = np.linalg.solve(m.stiffness(), np.array([0, 0, 1.0, 0, 0, 0]))
    np.testing.assert_allclose(eps[:3], [-0.25 / 400, -0.25 / 400, 1 / 400])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transverse_isotropic_rotation(seed):
    """Rotating the axis by R rotates the stiffness tensor by R."""
    rng = np.random.default_rng(seed)
    R = _rotation(rng)
    for a in (np.array([0.0, 0.0, 1.0]), rng.normal(size=3)):
        C = TransverseIsotropic(**BONE, axis=tuple(a)).stiffness()
        Cr = TransverseIsotropic(**BONE, axis=tuple(R @ a)).stiffness()
        np.testing.assert_allclose(Cr, rotate_voigt(C, R), rtol=1e-10, atol=1e-10 * np.abs(C).max())


def test_transverse_isotropic_axis_x():
    C = TransverseIsotropic(**BONE, axis=(1.0, 0.0, 0.0)).stiffness()
    S = np.linalg.inv(C)
    assert S[XX, XX] == pytest.approx(1 / 400.0)
    assert S[YY, YY] == pytest.approx(1 / 140.0)
    assert S[XY, XY] == pytest.approx(1 / 90.0) and S[XZ, XZ] == pytest.approx(1 / 90.0)
    # the axis length does not matter
    np.testing.assert_allclose(TransverseIsotropic(**BONE, axis=(5.0, 0, 0)).stiffness(), C, rtol=1e-12)


@pytest.mark.parametrize("axis", [(0, 0, 1), (1, 0, 0), (1, 2, 3)])
def test_transverse_reduces_to_isotropic(axis):
    E, nu = 1000.0, 0.3
    m = TransverseIsotropic(E_axial=E, E_transverse=E, nu_axial=nu, nu_transverse=nu, G_axial=E / (2 * (1 + nu)), axis=axis)
    np.testing.assert_allclose(m.stiffness(), isotropic_stiffness(E, nu), rtol=1e-10, atol=1e-10 * E)


def test_voigt_tensor_round_trip_and_symmetry():
    C = TransverseIsotropic(**BONE, axis=(1.0, 2.0, 3.0)).stiffness()
    C4 = voigt_to_tensor(C)
    np.testing.assert_allclose(C4, C4.transpose(1, 0, 2, 3))  # minor symmetries
    np.testing.assert_allclose(C4, C4.transpose(0, 1, 3, 2))
    np.testing.assert_allclose(C4, C4.transpose(2, 3, 0, 1))  # major symmetry
    np.testing.assert_allclose(tensor_to_voigt(C4), C)
    assert np.linalg.eigvalsh(C).min() > 0


def test_registry():
    assert MATERIALS["isotropic"] is Isotropic
    assert MATERIALS["transverse_isotropic"] is TransverseIsotropic


# -- case-file entries ---------------------------------------------------------------------
def test_make_material():
    m = make_material("steel", {"E": 200000, "nu": 0.3})
    assert isinstance(m, Isotropic) and m.E == 200000.0 and m.name == "steel"
    b = make_material("bone", {"type": "transverse_isotropic", **BONE, "axis": [0, 1, 0]})
    assert isinstance(b, TransverseIsotropic) and b.axis == (0.0, 1.0, 0.0)
    assert make_material("b2", {"type": "transverse_isotropic", **BONE}).axis == (0.0, 0.0, 1.0)


@pytest.mark.parametrize(
    "spec, where, fragment",
    [
        ({"E": 1.0, "nu": 0.5}, "materials.m", "nu = 0.5"),
        ({"E": 1.0, "nu": -1.0}, "materials.m", "-1 < nu < 0.5"),
        ({"E": 0.0, "nu": 0.3}, "materials.m", "E = 0.0 must be > 0"),
        ({"E": -3, "nu": 0.3}, "materials.m", "E = -3.0"),
        ({"E": "hard", "nu": 0.3}, "materials.m.E", "expected a number, got 'hard'"),
        ({"E": True, "nu": 0.3}, "materials.m.E", "expected a number"),
        ({"E": float("nan"), "nu": 0.3}, "materials.m.E", "expected a number"),
        ({"E": 10**400, "nu": 0.3}, "materials.m.E", "expected a number"),
        ({"E": 1.0}, "materials.m", "missing required key(s): nu"),
        ({"E": 1.0, "nu": 0.3, "G": 1.0}, "materials.m.G", "unknown key"),
        ({"type": "plastic", "E": 1.0}, "materials.m.type", "unknown material type 'plastic'"),
        ([1, 2], "materials.m", "expected a mapping"),
        ({"type": "transverse_isotropic", **BONE, "nu_axial": 1.5}, "materials.m", "not positive definite"),
        ({"type": "transverse_isotropic", **BONE, "nu_transverse": 1.0}, "materials.m", "nu_transverse = 1.0"),
        ({"type": "transverse_isotropic", **BONE, "nu_transverse": -1}, "materials.m", "nu_transverse = -1"),
        ({"type": "transverse_isotropic", **BONE, "G_axial": 0}, "materials.m", "G_axial = 0.0 must be > 0"),
        ({"type": "transverse_isotropic", **BONE, "axis": [0, 0, 0]}, "materials.m", "non-zero 3-vector"),
        ({"type": "transverse_isotropic", **BONE, "axis": [0, 1]}, "materials.m.axis", "3 numbers"),
        ({"type": "transverse_isotropic", **BONE, "axis": "z"}, "materials.m.axis", "3 numbers"),
        ({"type": "transverse_isotropic", **BONE, "E_axial": 1e308, "E_transverse": 1e-308}, "materials.m", ""),
    ],
)
def test_make_material_errors(spec, where, fragment):
    with pytest.raises(InputError) as exc:
        make_material("m", spec)
    msg = str(exc.value)
    assert msg.startswith(where + ":"), msg
    assert fragment in msg
    assert "\n" not in msg
