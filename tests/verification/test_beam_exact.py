"""Verification of fembone.core.beam against closed-form beam solutions.

The Przemieniecki/Timoshenko element is exact for end-loaded prismatic beams, so every
case must match to round-off with one element and with four.  Beams lie along an oblique
axis; loads are given in global axes.  A tiny assembler (scatter of 12x12 blocks, fixed
DOFs deleted, dense solve) lives here on purpose: the package's assembly is tested elsewhere.

Exact solutions (cantilever of length L clamped at x = 0, load at x = L):
Timoshenko tip force P: w = P L^3/(3EI) + P L/(kGA), theta = P L^2/(2EI)
(Timoshenko & Gere, Mechanics of Materials; k of Cowper 1966); end moment M:
w = M L^2/(2EI), theta = M L/(EI); axial P: u = P L/(EA); torque T: phi = T L/(GJ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp

from fembone.core.beam import BeamSection, beam_global_stiffness, beam_results

E, NU = 110000.0, 0.3  # titanium alloy (MPa, -)
G = E / (2 * (1 + NU))
L = 45.0  # mm, a lumbar pedicle screw
RTOL = 1e-10

AXIS = np.array([2.0, -3.0, 6.0]) / 7.0  # oblique unit vector
START = np.array([12.0, -4.0, 30.0])
# two unit vectors normal to AXIS, neither aligned with a global axis
_t = np.cross(AXIS, [1.0, 0.0, 0.0])
TRANSVERSE = _t / np.linalg.norm(_t)
BINORMAL = np.cross(AXIS, TRANSVERSE)

SECTIONS = {"solid": BeamSection(6.5), "cannulated": BeamSection(6.5, 2.4)}
N_ELEMENTS = [1, 4]


@dataclass
class Cantilever:
    nodes: np.ndarray  # (m+1, 3) mm
    section: BeamSection
    u: np.ndarray  # (m+1, 6) nodal displacements (mm) and rotations (rad)
    results: dict[str, np.ndarray]


def solve_cantilever(n_el: int, section: BeamSection, tip_force, tip_moment, shear_rigid=False) -> Cantilever:
    """Clamp node 0, load the last node, solve; chain of ``n_el`` equal beams along AXIS."""
    s = np.linspace(0.0, L, n_el + 1)
    nodes = START + s[:, None] * AXIS
    x0, x1 = nodes[:-1], nodes[1:]
    Ke = beam_global_stiffness(x0, x1, E, NU, section, shear_rigid=shear_rigid)
    n_dof = 6 * (n_el + 1)
    dofs = (6 * np.arange(n_el))[:, None] + np.arange(12)[None, :]  # (n_el, 12)
    rows = np.broadcast_to(dofs[:, :, None], Ke.shape).ravel()
    cols = np.broadcast_to(dofs[:, None, :], Ke.shape).ravel()
    K = sp.coo_matrix((Ke.ravel(), (rows, cols)), shape=(n_dof, n_dof)).toarray()
    f = np.zeros(n_dof)
    f[-6:-3] = tip_force
    f[-3:] = tip_moment
    free = np.arange(6, n_dof)  # delete the clamped DOFs of node 0
    u = np.zeros(n_dof)
    u[free] = np.linalg.solve(K[np.ix_(free, free)], f[free])
    res = beam_results(x0, x1, E, NU, section, u[dofs], shear_rigid=shear_rigid)
    return Cantilever(nodes, section, u.reshape(-1, 6), res)


def assert_exact(what: str, computed, exact, rtol: float = RTOL, scale: float | None = None) -> float:
    """Relative error |computed - exact| / scale (scale defaults to |exact|); message shows all."""
    computed = np.asarray(computed, dtype=float)
    exact = np.asarray(exact, dtype=float)
    scale = float(np.linalg.norm(exact)) if scale is None else scale
    err = float(np.linalg.norm(computed - exact)) / scale
    assert err <= rtol, f"{what}: computed {computed!r}, exact {exact!r}, relative error {err:.3e} > {rtol:.0e}"
    return err


def _props(section: BeamSection):
    return section.area(), section.second_moment(), section.polar_moment(), section.shear_coefficient(NU)


# ------------------------------------------------------------------ cantilever, tip force
@pytest.mark.parametrize("n_el", N_ELEMENTS)
@pytest.mark.parametrize("name", SECTIONS)
def test_timoshenko_cantilever_tip_force(name: str, n_el: int) -> None:
    section = SECTIONS[name]
    A, I, J, k = _props(section)
    P = 150.0  # N
    c = solve_cantilever(n_el, section, P * TRANSVERSE, np.zeros(3))
    w_exact = P * L**3 / (3 * E * I) + P * L / (k * G * A)
    theta_exact = P * L**2 / (2 * E * I)
    tip = c.u[-1]
    assert_exact("tip deflection (mm)", tip[:3] @ TRANSVERSE, w_exact)
    assert_exact("tip displacement vector (mm)", tip[:3], w_exact * TRANSVERSE, scale=w_exact)
    assert_exact("tip rotation vector (rad)", tip[3:], theta_exact * np.cross(AXIS, TRANSVERSE), scale=theta_exact)
    # the shear term really is present (guards against a silently shear-rigid element)
    assert P * L / (k * G * A) / w_exact > 1e-3


@pytest.mark.parametrize("n_el", N_ELEMENTS)
def test_timoshenko_cantilever_deflection_along_span(n_el: int) -> None:
    """Nodal deflections along the span: w(x) = P (L x^2/2 - x^3/6)/EI + P x/(kGA)."""
    section = SECTIONS["solid"]
    A, I, J, k = _props(section)
    P = 150.0
    c = solve_cantilever(n_el, section, P * BINORMAL, np.zeros(3))
    x = np.linspace(0.0, L, n_el + 1)
    w = P * (L * x**2 / 2 - x**3 / 6) / (E * I) + P * x / (k * G * A)
    assert_exact("nodal deflections (mm)", c.u[:, :3] @ BINORMAL, w, scale=w[-1])


# ------------------------------------------------------------------ Euler-Bernoulli limit
@pytest.mark.parametrize("n_el", N_ELEMENTS)
def test_euler_bernoulli_limit_shear_rigid(n_el: int) -> None:
    section = SECTIONS["cannulated"]
    A, I, J, k = _props(section)
    P = 150.0
    c = solve_cantilever(n_el, section, P * TRANSVERSE, np.zeros(3), shear_rigid=True)
    assert_exact("tip deflection, shear-rigid (mm)", c.u[-1, :3] @ TRANSVERSE, P * L**3 / (3 * E * I))
    assert_exact("tip rotation, shear-rigid (rad)", c.u[-1, 3:] @ BINORMAL, P * L**2 / (2 * E * I))


@pytest.mark.parametrize("n_el", N_ELEMENTS)
def test_euler_bernoulli_limit_large_shear_modulus(n_el: int) -> None:
    """G -> infinity through the local stiffness: deflection -> P L^3/(3EI) (shear term ~1e-13).

    J is divided by the same factor so that GJ stays physical: a 1e12-times stiffer torsion
    mixed into the global rotation block by an oblique frame would cost ~12 digits in the solve.
    """
    from fembone.core.beam import beam_local_stiffness, beam_transformation

    section = SECTIONS["solid"]
    A, I, J, k = _props(section)
    P = 150.0
    s = np.linspace(0.0, L, n_el + 1)
    nodes = START + s[:, None] * AXIS
    T = beam_transformation(nodes[:-1], nodes[1:])
    kl = beam_local_stiffness(L / n_el, E, 1e12 * G, A, I, J / 1e12, k)
    Ke = np.einsum("nji,njk,nkl->nil", T, np.broadcast_to(kl, T.shape), T)
    n_dof = 6 * (n_el + 1)
    K = np.zeros((n_dof, n_dof))
    for e in range(n_el):  # explicit scatter: fine for a four-element test
        K[6 * e : 6 * e + 12, 6 * e : 6 * e + 12] += Ke[e]
    f = np.zeros(n_dof)
    f[-6:-3] = P * TRANSVERSE
    u = np.linalg.solve(K[6:, 6:], f[6:])
    assert_exact("tip deflection, G*1e12 (mm)", u[-6:-3] @ TRANSVERSE, P * L**3 / (3 * E * I), rtol=1e-9)


# ------------------------------------------------------------------ end moment
@pytest.mark.parametrize("n_el", N_ELEMENTS)
@pytest.mark.parametrize("name", SECTIONS)
def test_cantilever_end_moment(name: str, n_el: int) -> None:
    section = SECTIONS[name]
    A, I, J, k = _props(section)
    M = 7500.0  # N*mm
    c = solve_cantilever(n_el, section, np.zeros(3), M * BINORMAL)
    w_exact = M * L**2 / (2 * E * I)
    theta_exact = M * L / (E * I)
    direction = np.cross(BINORMAL, AXIS)  # sagging direction of a moment about BINORMAL
    assert_exact("tip deflection vector (mm)", c.u[-1, :3], w_exact * direction, scale=w_exact)
    assert_exact("tip rotation vector (rad)", c.u[-1, 3:], theta_exact * BINORMAL, scale=theta_exact)
    assert_exact("bending moment both ends (N mm)", c.results["bending"], np.full((n_el, 2), M), scale=M)


# ------------------------------------------------------------------ axial and torsion
@pytest.mark.parametrize("n_el", N_ELEMENTS)
@pytest.mark.parametrize("name", SECTIONS)
def test_axial_bar(name: str, n_el: int) -> None:
    section = SECTIONS[name]
    A, I, J, k = _props(section)
    P = 800.0
    c = solve_cantilever(n_el, section, P * AXIS, np.zeros(3))
    u_exact = P * L / (E * A)
    assert_exact("tip displacement vector (mm)", c.u[-1, :3], u_exact * AXIS, scale=u_exact)
    assert_exact("tip rotation (rad)", c.u[-1, 3:], np.zeros(3), scale=u_exact / L)
    assert_exact("axial force (N)", c.results["axial_force"], np.full(n_el, P))


@pytest.mark.parametrize("n_el", N_ELEMENTS)
@pytest.mark.parametrize("name", SECTIONS)
def test_torsion_bar(name: str, n_el: int) -> None:
    section = SECTIONS[name]
    A, I, J, k = _props(section)
    T = 2500.0
    c = solve_cantilever(n_el, section, np.zeros(3), T * AXIS)
    phi_exact = T * L / (G * J)
    assert_exact("tip twist vector (rad)", c.u[-1, 3:], phi_exact * AXIS, scale=phi_exact)
    assert_exact("tip displacement (mm)", c.u[-1, :3], np.zeros(3), scale=phi_exact * L)
    assert_exact("torsion (N mm)", c.results["torsion"], np.full(n_el, T))


# ------------------------------------------------------------------ recovered results
@pytest.mark.parametrize("n_el", N_ELEMENTS)
@pytest.mark.parametrize("name", SECTIONS)
def test_recovered_resultants_and_root_stress(name: str, n_el: int) -> None:
    """Combined tip load: axial tension Pa, transverse Pt, torque T, all at once."""
    section = SECTIONS[name]
    A, I, J, k = _props(section)
    r = section.outer_radius
    Pa, Pt, T = 300.0, 150.0, 1200.0
    c = solve_cantilever(n_el, section, Pa * AXIS + Pt * TRANSVERSE, T * AXIS)
    res = c.results
    root = 0  # element 0, end 0

    assert_exact("axial force (N)", res["axial_force"], np.full(n_el, Pa))
    assert_exact("shear resultant (N)", np.hypot(res["shear_y"], res["shear_z"]), np.full(n_el, Pt))
    assert_exact("torsion (N mm)", res["torsion"], np.full(n_el, T))
    assert_exact("root bending moment (N mm)", res["bending"][root, 0], Pt * L)
    assert_exact("tip bending moment (N mm)", res["bending"][-1, 1], 0.0, scale=Pt * L)
    x_end0 = np.linspace(0.0, L, n_el + 1)[:-1]
    assert_exact("bending moment at element starts (N mm)", res["bending"][:, 0], Pt * (L - x_end0), scale=Pt * L)

    sigma_root = Pa / A + Pt * L * r / I
    assert_exact("root outer-fibre stress (MPa)", res["outer_fibre_stress"][root, 0], sigma_root)
    tau = T * r / J
    vm_outer = math.sqrt(sigma_root**2 + 3 * tau**2)
    vm_neutral = math.sqrt((Pa / A) ** 2 + 3 * (tau + section.transverse_shear_factor() * Pt / A) ** 2)
    assert vm_outer > vm_neutral, f"test set-up: outer fibre {vm_outer} must govern, neutral axis {vm_neutral}"
    assert_exact("root von Mises (MPa)", res["von_mises"][root], vm_outer)


@pytest.mark.parametrize("n_el", N_ELEMENTS)
def test_root_bending_stress_pure_transverse_load(n_el: int) -> None:
    """Outer-fibre stress M r / I at the root for a transverse tip force alone."""
    section = SECTIONS["solid"]
    I, r = section.second_moment(), section.outer_radius
    P = 150.0
    c = solve_cantilever(n_el, section, P * BINORMAL, np.zeros(3))
    assert_exact("root bending moment (N mm)", c.results["bending"][0, 0], P * L)
    assert_exact("root outer-fibre stress (MPa)", c.results["outer_fibre_stress"][0, 0], P * L * r / I)
    assert_exact("root von Mises (MPa)", c.results["von_mises"][0], P * L * r / I)
