"""Unit tests of fembone.core.beam: stiffness structure, frames, sections, input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fembone.core.beam import (
    BeamSection,
    beam_end_forces,
    beam_frames,
    beam_global_stiffness,
    beam_local_stiffness,
    beam_results,
)
from fembone.core.errors import InputError

E_TI, NU_TI = 110000.0, 0.3  # titanium alloy, MPa
SCREW = BeamSection(outer_diameter=6.5)
CANNULATED = BeamSection(outer_diameter=6.5, inner_diameter=2.0)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _blk(R: np.ndarray) -> np.ndarray:
    return np.kron(np.eye(4), R)


def _rigid_modes(x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """(12, 6) rigid-body motions: 3 translations, 3 rotations about the midpoint."""
    c = 0.5 * (x0 + x1)
    modes = np.zeros((12, 6))
    for i in range(3):
        modes[[i, 6 + i], i] = 1.0
        w = np.eye(3)[i]
        modes[0:3, 3 + i] = np.cross(w, x0 - c)
        modes[6:9, 3 + i] = np.cross(w, x1 - c)
        modes[[3 + i, 9 + i], 3 + i] = 1.0
    return modes


# ------------------------------------------------------------------ stiffness structure
@pytest.mark.parametrize("section", [SCREW, CANNULATED], ids=["solid", "annular"])
def test_local_and_global_stiffness_symmetric(section: BeamSection) -> None:
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(5, 3)) * 10
    x1 = x0 + rng.normal(size=(5, 3)) * 20
    K = beam_global_stiffness(x0, x1, E_TI, NU_TI, section)
    assert K.shape == (5, 12, 12)
    asym = np.abs(K - K.transpose(0, 2, 1)).max() / np.abs(K).max()
    assert asym < 1e-14, f"global K asymmetry {asym:.2e}"
    k = beam_local_stiffness([30.0, 45.0], E_TI, 42000.0, section.area(), section.second_moment(),
                             section.polar_moment(), section.shear_coefficient(NU_TI))
    assert np.array_equal(k, k.transpose(0, 2, 1))


@pytest.mark.parametrize("shear_rigid", [False, True])
def test_rigid_body_modes_are_null_space_rank_six(shear_rigid: bool) -> None:
    x0 = np.array([1.5, -2.0, 3.0])
    x1 = x0 + np.array([17.0, -23.0, 31.0])  # arbitrary oblique axis
    K = beam_global_stiffness(x0, x1, E_TI, NU_TI, SCREW, shear_rigid=shear_rigid)[0]
    modes = _rigid_modes(x0, x1)
    residual = np.linalg.norm(K @ modes) / (np.linalg.norm(K) * np.linalg.norm(modes))
    assert residual < 1e-14, f"K @ rigid modes relative residual {residual:.2e}"
    eig = np.linalg.eigvalsh(K)
    assert np.sum(eig > 1e-10 * eig.max()) == 6, f"eigenvalues {eig}"
    assert eig.min() > -1e-10 * eig.max(), "K must be positive semi-definite"


def test_global_stiffness_invariant_under_rotation() -> None:
    rng = np.random.default_rng(1)
    x0 = np.array([0.0, 0.0, 0.0])
    x1 = np.array([40.0, 0.0, 0.0])
    K = beam_global_stiffness(x0, x1, E_TI, NU_TI, CANNULATED)[0]
    for _ in range(5):
        Q = _random_rotation(rng)
        Kq = beam_global_stiffness(Q @ x0 + 3.0, Q @ x1 + 3.0, E_TI, NU_TI, CANNULATED)[0]
        expected = _blk(Q) @ K @ _blk(Q).T
        err = np.abs(Kq - expected).max() / np.abs(K).max()
        assert err < 1e-13, f"rotated K differs from Q K Q^T by {err:.2e} (relative)"


def test_global_stiffness_independent_of_up_vector() -> None:
    x0, x1 = np.array([1.0, 2.0, 3.0]), np.array([-10.0, 25.0, 14.0])
    K = [beam_global_stiffness(x0, x1, E_TI, NU_TI, SCREW, up=up)[0]
         for up in (None, [1.0, 0, 0], [0.3, -0.2, 0.9], x1 - x0)]
    for Ki in K[1:]:
        assert np.abs(Ki - K[0]).max() / np.abs(K[0]).max() < 1e-13


def test_local_stiffness_known_entries() -> None:
    L, E, G, A, I, J, k = 40.0, 1000.0, 400.0, 10.0, 8.0, 16.0, 0.9
    K = beam_local_stiffness(L, E, G, A, I, J, k)[0]
    phi = 12 * E * I / (k * G * A * L**2)
    assert K[0, 0] == pytest.approx(E * A / L, rel=1e-15)
    assert K[3, 9] == pytest.approx(-G * J / L, rel=1e-15)
    assert K[1, 1] == pytest.approx(12 * E * I / (L**3 * (1 + phi)), rel=1e-15)
    assert K[1, 5] == pytest.approx(6 * E * I / (L**2 * (1 + phi)), rel=1e-15)
    assert K[2, 4] == pytest.approx(-6 * E * I / (L**2 * (1 + phi)), rel=1e-15)
    assert K[5, 11] == pytest.approx((2 - phi) * E * I / (L * (1 + phi)), rel=1e-15)
    assert K[4, 4] == pytest.approx((4 + phi) * E * I / (L * (1 + phi)), rel=1e-15)
    # k = inf is the Euler-Bernoulli element
    K_eb = beam_local_stiffness(L, E, G, A, I, J, np.inf)[0]
    assert K_eb[5, 5] == pytest.approx(4 * E * I / L, rel=1e-15)


def test_local_stiffness_broadcasts_scalars_and_arrays() -> None:
    K = beam_local_stiffness([10.0, 20.0, 30.0], 1000.0, 400.0, 5.0, [1.0, 2.0, 3.0], 2.0, 0.9)
    assert K.shape == (3, 12, 12)
    assert K[2, 0, 0] == pytest.approx(1000.0 * 5.0 / 30.0)
    with pytest.raises(InputError, match="share one length"):
        beam_local_stiffness([10.0, 20.0, 30.0], [1000.0, 2000.0], 400.0, 5.0, 1.0, 2.0, 0.9)


# ------------------------------------------------------------------ frames
def test_frames_orthonormal_right_handed_and_along_axis() -> None:
    rng = np.random.default_rng(2)
    x0 = rng.normal(size=(50, 3))
    d = rng.normal(size=(50, 3))
    d[:4] = [[0, 0, 1], [0, 0, -2], [1e-9, 0, 1], [0, 3, 0]]  # parallel / anti-parallel / nearly / other
    R = beam_frames(x0, x0 + d)
    eye = np.einsum("nij,nkj->nik", R, R)
    assert np.abs(eye - np.eye(3)).max() < 1e-14
    assert np.allclose(np.linalg.det(R), 1.0, atol=1e-14)
    assert np.allclose(R[:, 0], d / np.linalg.norm(d, axis=1)[:, None], atol=1e-15)
    assert np.isfinite(R).all()


def test_frames_local_z_follows_up() -> None:
    R = beam_frames([0, 0, 0], [5.0, 0, 0], up=[0, 1.0, 1.0])[0]
    assert np.allclose(R[2], [0, 1 / math.sqrt(2), 1 / math.sqrt(2)])
    R = beam_frames([0, 0, 0], [5.0, 0, 0])[0]  # default up = +z: y = z x x = +y
    assert np.allclose(R, np.eye(3))


def test_zero_length_beam_names_the_beam() -> None:
    x0 = np.zeros((3, 3))
    x1 = np.array([[1.0, 0, 0], [0, 0, 0], [0, 1.0, 0]])
    with pytest.raises(InputError, match="beam 1"):
        beam_frames(x0, x1)


def test_bad_stiffness_parameters_raise() -> None:
    with pytest.raises(InputError, match="beam 1.*E must be > 0"):
        beam_local_stiffness(10.0, [1.0, -1.0], 1.0, 1.0, 1.0, 1.0, 0.9)
    with pytest.raises(InputError, match="Poisson"):
        beam_global_stiffness([0, 0, 0], [1, 0, 0], E_TI, 0.6, SCREW)


# ------------------------------------------------------------------ sections
def test_solid_section_properties() -> None:
    D = 6.5
    s = BeamSection(D)
    assert s.area() == pytest.approx(math.pi * D**2 / 4, rel=1e-15)
    assert s.second_moment() == pytest.approx(math.pi * D**4 / 64, rel=1e-15)
    assert s.polar_moment() == pytest.approx(2 * s.second_moment(), rel=1e-15)
    assert s.outer_radius == D / 2
    for nu in (0.0, 0.3, 0.49):
        assert s.shear_coefficient(nu) == pytest.approx(6 * (1 + nu) / (7 + 6 * nu), rel=1e-15)
    assert s.transverse_shear_factor() == pytest.approx(4 / 3)


def test_annular_section_properties() -> None:
    D, d, nu = 6.5, 2.4, 0.3
    s = BeamSection(D, d)
    m = d / D
    assert s.area() == pytest.approx(math.pi * (D**2 - d**2) / 4, rel=1e-15)
    assert s.second_moment() == pytest.approx(math.pi * (D**4 - d**4) / 64, rel=1e-15)
    assert s.polar_moment() == pytest.approx(math.pi * (D**4 - d**4) / 32, rel=1e-15)
    k = 6 * (1 + nu) * (1 + m**2) ** 2 / ((7 + 6 * nu) * (1 + m**2) ** 2 + (20 + 12 * nu) * m**2)
    assert s.shear_coefficient(nu) == pytest.approx(k, rel=1e-15)
    # thin-walled limit of Cowper's annulus: 2(1+nu)/(4+3nu)
    thin = BeamSection(10.0, 10.0 - 1e-7)
    assert thin.shear_coefficient(nu) == pytest.approx(2 * (1 + nu) / (4 + 3 * nu), rel=1e-7)
    assert thin.transverse_shear_factor() == pytest.approx(2.0, rel=1e-7)


@pytest.mark.parametrize(
    "outer, inner, fragment",
    [(0.0, 0.0, "outer_diameter"), (-6.5, 0.0, "outer_diameter"), (6.5, -1.0, "inner_diameter"),
     (6.5, 6.5, "inner_diameter 6.5"), (6.5, 7.0, "inner_diameter 7.0"), (float("nan"), 0.0, "outer_diameter")],
)
def test_bad_section_raises_input_error(outer: float, inner: float, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        BeamSection(outer, inner)


def test_bad_poisson_ratio_for_shear_coefficient() -> None:
    with pytest.raises(InputError, match="0.7"):
        SCREW.shear_coefficient(0.7)


# ------------------------------------------------------------------ recovery
def test_result_signs_along_x() -> None:
    """Cantilever along +x, tip load +y then +z: sign conventions of the resultants."""
    L, P = 40.0, 100.0
    K = beam_global_stiffness([0, 0, 0], [L, 0, 0], E_TI, NU_TI, SCREW)[0]
    for direction, shear_key, moment_key, moment_sign in ((1, "shear_y", "bending_z", +1), (2, "shear_z", "bending_y", -1)):
        f = np.zeros(6)
        f[direction] = P
        u = np.zeros(12)
        u[6:] = np.linalg.solve(K[6:, 6:], f)
        res = beam_results([0, 0, 0], [L, 0, 0], E_TI, NU_TI, SCREW, u)
        assert res[shear_key][0] == pytest.approx(P, rel=1e-12)
        assert res[moment_key][0, 0] == pytest.approx(moment_sign * P * L, rel=1e-12)
        assert abs(res[moment_key][0, 1]) < 1e-9 * P * L
        assert abs(res["axial_force"][0]) < 1e-9 * P


def test_end_forces_shape_check() -> None:
    with pytest.raises(InputError, match="u_elem"):
        beam_end_forces(np.zeros((2, 3)), np.ones((2, 3)), E_TI, NU_TI, SCREW, np.zeros((3, 12)))


def test_von_mises_pure_torsion() -> None:
    L, T = 30.0, 2000.0
    K = beam_global_stiffness([0, 0, 0], [0, 0, L], E_TI, NU_TI, CANNULATED)[0]
    u = np.zeros(12)
    f = np.zeros(6)
    f[5] = T
    u[6:] = np.linalg.solve(K[6:, 6:], f)
    res = beam_results([0, 0, 0], [0, 0, L], E_TI, NU_TI, CANNULATED, u)
    tau = T * CANNULATED.outer_radius / CANNULATED.polar_moment()
    assert res["torsion"][0] == pytest.approx(T, rel=1e-12)
    assert res["von_mises"][0] == pytest.approx(math.sqrt(3) * tau, rel=1e-12)
