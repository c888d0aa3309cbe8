"""Tension-only fibres (fembone.core.fibres) and the semismooth Newton for many unilateral elements
(fembone.core.unilateral_newton): hand answers, the exact LCP as reference, the line search."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fembone.core.fibres import fibre_set, fibre_strain_operator, fibre_voigt
from fembone.core.materials import tensor_to_voigt
from fembone.core.meshgen import box_mesh
from fembone.core.unilateral import lcp_murty
from fembone.core.unilateral_newton import exact_line_search, newton


def test_fibre_voigt_is_the_fourth_order_dyad():
    a = np.array([0.3, -0.5, 0.8])
    a /= np.linalg.norm(a)
    n = fibre_voigt(a)
    np.testing.assert_allclose(np.outer(n, n), tensor_to_voigt(np.einsum("i,j,k,l->ijkl", a, a, a, a)), atol=1e-15)


@pytest.mark.parametrize("order", [1, 2])
def test_fibre_strain_of_a_homogeneous_field_is_a_eps_a(order):
    """u = H x: every element's fibre strain is a . sym(H) . a exactly (tet4 and tet10)."""
    mesh = box_mesh((2.0, 3.0, 1.5), (2, 2, 2), order=order)
    H = np.array([[0.01, 0.004, -0.002], [0.003, -0.02, 0.005], [0.001, 0.006, 0.015]])
    u = (mesh.points @ H.T).ravel()
    rng = np.random.default_rng(1)
    a = rng.normal(size=(mesh.n_elements, 2, 3))
    a /= np.linalg.norm(a, axis=2, keepdims=True)
    D, vol = fibre_strain_operator(mesh, np.arange(mesh.n_elements), a)
    eps = 0.5 * (H + H.T)
    expected = np.einsum("efi,ij,efj->ef", a, eps, a).ravel()
    np.testing.assert_allclose(D.T @ u, expected, rtol=1e-12, atol=1e-15)
    assert vol.sum() == pytest.approx(9.0, rel=1e-12)


def _random_problem(seed, n=12, m=9):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n))
    K = A @ A.T + n * np.eye(n)
    f = rng.normal(size=n) * 10
    G = rng.normal(size=(n, m))
    k = rng.uniform(5, 50, size=m)
    h = rng.uniform(0, 0.2, size=m) * (seed % 2)
    return K, f, G, k, h


@pytest.mark.parametrize("seed", range(8))
def test_newton_equals_the_exact_lcp(seed):
    """Same springs through Murty's pivoting (exact, fembone.core.unilateral) and through Newton."""
    K, f, G, k, h = _random_problem(seed)
    u0 = np.linalg.solve(K, f)
    X = np.linalg.solve(K, G)
    lam_lcp, _ = lcp_murty(G.T @ u0 + h, G.T @ X, k, np.ones(len(k), bool), 1e-13)
    u_lcp = u0 + X @ lam_lcp
    Kinv = np.linalg.inv(K)  # the preconditioner: K without the springs, exactly
    q, lam, info = newton(sp.csr_matrix(K), f[:, None], sp.csc_matrix(G), np.zeros((len(k), 1)), k, h,
                          np.zeros((len(f), 1)), lambda R: Kinv @ R, rtol=1e-12)
    np.testing.assert_allclose(q[:, 0], u_lcp, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lam[:, 0], lam_lcp, rtol=1e-8, atol=1e-9)
    assert info[0]["iterations"] <= 12


def test_line_search_root_of_the_piecewise_linear_slope():
    """phi'(t) = slope0 + t curv - k b <c - t b>_+ with slope0 = -3, curv = 1, k = 2, c = 0.5, b = -1:
    -3 + t + 2 (0.5 + t) = 0 -> t = 2/3 (engaged all along).  With b = +1 the element disengages at
    t = 0.5 (phi'(0.5) = -2.5 < 0), after which phi' = -3 + t: root t = 3."""
    assert exact_line_search(-3.0, 1.0, np.array([0.5]), np.array([-1.0]), np.array([2.0])) == pytest.approx(2 / 3, rel=1e-12)
    assert exact_line_search(-3.0, 1.0, np.array([0.5]), np.array([1.0]), np.array([2.0])) == pytest.approx(3.0, rel=1e-12)


def test_tension_only_cube_under_prescribed_strain():
    """A unit cube, matrix-free apart from one fibre family along x (E_f = 100 MPa), stretched then
    compressed along x by a homogeneous field: the fibre strain energy is 1/2 E_f V eps^2 in
    tension and 0 in compression (the Newton solve against the hand value)."""
    mesh = box_mesh((1.0, 1.0, 1.0), (1, 1, 1), order=1)
    ne = mesh.n_elements
    a = np.tile([[[1.0, 0.0, 0.0]]], (ne, 1, 1))
    uset = fibre_set(mesh, np.arange(ne), a, 100.0)
    for eps, expected in ((0.01, 0.5 * 100 * 1.0 * 0.01**2), (-0.01, 0.0)):
        u = np.zeros(3 * mesh.n_nodes)
        u[0::3] = eps * mesh.points[:, 0]
        s = uset.G.T @ u
        lam = uset.k * np.maximum(-s - uset.h, 0.0)
        energy = 0.5 * float(np.sum(lam**2 / uset.k))
        assert energy == pytest.approx(expected, rel=1e-12, abs=1e-18)


def test_elements_at_zero_strain_do_not_stall_newton():
    """Every element ends at zero opening (f acts on DOFs no element sees) and Newton starts from
    round-off noise on the DOFs they do see: the engaged set flips on noise from step to step, yet
    the residual with the elements' forces at the iterate is ~1e-17, so Newton stops (found on a
    rigid motion of a whole CT segment, whose fibre strains are all round-off)."""
    n, m = 6, 40
    rng = np.random.default_rng(0)
    K = sp.identity(n, format="csr")
    G = np.zeros((n, m))
    G[:3, :] = rng.normal(size=(3, m))
    f = np.zeros((n, 1))
    f[4] = 1.0
    q0 = np.zeros((n, 1))
    q0[:3, 0] = 1e-17 * rng.normal(size=3)
    q, lam, info = newton(K, f, sp.csc_matrix(G), np.zeros((m, 1)), np.ones(m), np.zeros(m), q0,
                          lambda R: R, rtol=1e-12, max_iter=20)
    assert q[4, 0] == pytest.approx(1.0, rel=1e-12) and np.abs(lam).max() < 1e-15 and info[0]["iterations"] <= 3


def test_a_residual_at_round_off_below_rtol_is_accepted():
    """A tolerance no arithmetic reaches (1e-30) on a system whose residual floor is ~1e-16: Newton
    stops after STALL iterations without progress once below RTOL, instead of failing."""
    from fembone.core.unilateral_newton import STALL

    K, f, G, k, h = _random_problem(3)
    Kinv = np.linalg.inv(K)
    q, lam, info = newton(sp.csr_matrix(K), f[:, None], sp.csc_matrix(G), np.zeros((len(k), 1)), k, h,
                          np.zeros((len(f), 1)), lambda R: Kinv @ R, rtol=1e-30, max_iter=40)
    assert info[0]["residual"] < 1e-10 and info[0]["iterations"] <= 12 + STALL
