"""Inner tolerance, predictor and secant stage of the nonlinear path (fembone.core.nonlinear_solve).

* forcing term: Eisenstat & Walker (SIAM J Sci Comput 17:16, 1996) choice 2 on hand numbers,
  its safeguard, the cap, Kelley's floor 0.5 tol / |r| and the minimum;
* secant predictor: exact on a linear path, so an elastic bar needs no Newton iteration at all;
* L-BFGS: the updated inverse satisfies the secant equation H y = s of its newest pair and is
  exact on a quadratic after n A-conjugate pairs (hereditary property of BFGS, Nocedal & Wright,
  *Numerical Optimization*, 2006, sec. 6.1).
Units: mm, N, MPa.
"""

from __future__ import annotations

import numpy as np
import pytest

from fembone.core.constraints import ConstraintSet, DofLayout
from fembone.core.materials import Isotropic
from fembone.core.meshgen import box_mesh
from fembone.core.model import Model
from fembone.core.nonlinear import PathOptions, plastic_set, solve_path
from fembone.core.nonlinear_solve import LBFGS, extrapolate, forcing_term
from fembone.core.plasticity import YieldCurve


def test_forcing_term_eisenstat_walker_choice_2_on_hand_numbers():
    # 0.9 (1e-2 / 1e-1)^2 = 9e-3; safeguard 0.9 * 0.1^2 = 9e-3 < 0.1 (inactive); floor 0.5e-6 / 1e-2 = 5e-5
    assert forcing_term(1e-2, 1e-1, 0.1, 1e-6, 0.1, 1e-7) == pytest.approx(9e-3, rel=1e-12)
    # safeguard: 0.9 (0.5)^2 = 0.225 < 0.9 * 0.6^2 = 0.324 > 0.1, so 0.324 (cap 0.9 inactive)
    assert forcing_term(0.5, 1.0, 0.6, 1e-6, 0.9, 1e-7) == pytest.approx(0.324, rel=1e-12)
    # ... and capped at eta_max
    assert forcing_term(0.5, 1.0, 0.6, 1e-6, 0.1, 1e-7) == pytest.approx(0.1, rel=1e-12)
    # Kelley's floor: 0.9 (1e-3)^2 = 9e-7 below 0.5 tol / |r| = 0.5 * 1e-6 / 1e-5 = 0.05
    assert forcing_term(1e-5, 1e-2, 0.01, 1e-6, 0.1, 1e-7) == pytest.approx(0.05, rel=1e-12)
    # first solve of a step: eta_max; and never below eta_min
    assert forcing_term(3.0, None, None, 1e-6, 0.1, 1e-7) == pytest.approx(0.1, rel=1e-12)
    assert forcing_term(1e-4, 1.0, 1e-3, 0.0, 0.1, 1e-7) == pytest.approx(1e-7, rel=1e-12)


def test_extrapolation_is_exact_on_a_linear_path():
    a, b = np.array([1.0, -2.0, 0.5]), np.array([0.3, 4.0, -1.0])
    q = lambda lam: a + lam * b
    assert np.allclose(extrapolate(q(0.3), q(0.1), 0.3, 0.1, 0.45), q(0.45), rtol=0, atol=1e-14)


def test_lbfgs_secant_equation_and_exact_inverse_of_a_quadratic():
    rng = np.random.default_rng(3)
    n = 4
    R = rng.normal(size=(n, n))
    A = R @ R.T + n * np.eye(n)  # SPD Jacobian of r(x) = A x
    H = LBFGS(lambda v: v.copy(), memory=10)  # H0 = identity
    S = np.linalg.inv(np.linalg.cholesky(A)).T.T  # rows s_i A-conjugate: s_i . A s_j = delta_ij
    for s in S:
        assert H.push(s, A @ s)
        assert np.allclose(H.apply(A @ s), s, rtol=1e-10, atol=1e-12)  # secant equation of the newest pair
    x = rng.normal(size=n)
    assert np.allclose(H.apply(x), np.linalg.solve(A, x), rtol=1e-8, atol=1e-10)  # H y_j = s_j for all j: A^-1
    assert not H.push(np.array([1.0, 0, 0, 0]), np.array([-1.0, 0, 0, 0]))  # s.y < 0: skipped


E, NU, L, W = 1000.0, 0.3, 10.0, 2.0


def _bar(order: int):
    mesh = box_mesh((L, W, W), (5, 2, 2), order=order)
    mat = Isotropic(name="m", E=E, nu=NU)
    lay = DofLayout(mesh.n_nodes)
    C = np.broadcast_to(mat.stiffness(), (mesh.n_elements, 6, 6)).copy()
    m = Model("t", mesh, [mat], np.zeros(mesh.n_elements, int), C, lay, ConstraintSet(lay))
    nodes = lambda f: np.unique(mesh.facet_sets[f])
    m.constraints.fix(3 * nodes("xmin"), label="x = 0")
    m.constraints.fix(3 * nodes("ymin") + 1, label="y = 0")
    m.constraints.fix(3 * nodes("zmin") + 2, label="z = 0")
    ctrl = 3 * nodes("xmax")
    m.constraints.fix(ctrl, 0.0, label="end")
    return m, mesh, ctrl


@pytest.mark.parametrize("order", [1, 2])
def test_elastic_path_needs_no_newton_iteration_with_the_predictor(order):
    """Yield far away: the first step starts from the elastic solution, later ones from the
    extrapolated increment, both exact, so every step converges without a correction and the
    force is E A d / L."""
    m, mesh, ctrl = _bar(order)
    curve = YieldCurve(np.zeros((mesh.n_elements, 1)), np.full((mesh.n_elements, 1), 1e6))
    d = 0.01
    res = solve_path(m, plastic_set(m, np.arange(mesh.n_elements), curve, 0.8), ctrl, np.full(len(ctrl), d),
                     PathOptions(steps=5, rtol=1e-8))
    assert list(res.iterations) == [0] * 6
    assert np.allclose(res.force, E * W * W * res.lam * d / L, rtol=1e-9, atol=1e-9)


def test_secant_stage_and_inexact_newton_give_the_newton_path():
    """Hardening bar in tension: Newton with fixed tight inner solves, and the L-BFGS stage
    (forced after the first iteration, secant = 0) with Eisenstat-Walker inner tolerances and
    the softening-free consistent tangent, reach the same forces within the equilibrium
    tolerance, and both follow the exact curve sigma_t = r sigma_c(r eps_p) at the yield point."""
    m, mesh, ctrl = _bar(1)
    ne = mesh.n_elements
    curve = YieldCurve(np.tile([0.0, 0.05], (ne, 1)), np.tile([10.0, 15.0], (ne, 1)))
    pset = plastic_set(m, np.arange(ne), curve, 0.8)
    run = lambda **kw: solve_path(m, pset, ctrl, np.full(len(ctrl), 0.3), PathOptions(steps=15, rtol=1e-9, **kw))
    ref = run(forcing="fixed", secant=None, softening_tangent="floored")
    new = run(forcing="ew", secant=0.0)
    assert new.stats["secant_iterations"] > 0
    assert np.abs(new.force - ref.force).max() < 1e-7 * ref.force.max()
    assert new.first_yield()[1] == pytest.approx(W * W * 8.0, rel=1e-9)


def test_tangent_map_adds_the_blocks_into_k_like_a_sparse_sum():
    """_tangent writes the plastic blocks into a copy of K's values through a block-entry map
    found once; it must equal K + the CSR of the blocks (mirrored blocks transposed), twice in a
    row (the cached map) and for another tangent."""
    from types import SimpleNamespace

    from fembone.core.assembly import Assembler, blocks_to_matrix
    from fembone.core.nonlinear import PlasticSet, _PlasticKernels, _tangent
    from fembone.core.plasticity import DruckerPrager, TangentCoefficients

    rng = np.random.default_rng(7)
    mesh = box_mesh((1.0, 1.0, 1.0), (2, 2, 2), order=2)
    asm = Assembler(mesh)
    nq = asm.geometry.grads.shape[0]
    els = rng.permutation(mesh.n_elements)[: mesh.n_elements // 2]
    n = len(els) * nq
    law = DruckerPrager(rng.uniform(100, 200, n), rng.uniform(50, 90, n), 0.1, YieldCurve(np.zeros((n, 1)), np.ones((n, 1))))
    kern = _PlasticKernels(asm, PlasticSet(els, law))
    Ub = rng.normal(size=(asm.pattern.n_blocks, 3, 3))
    K = blocks_to_matrix(asm.pattern, Ub, "csr")  # any matrix of the pattern, asymmetric blocks on purpose
    for seed in (1, 1, 2):
        r = np.random.default_rng(seed)
        nh = r.normal(size=(n, 6))
        D = TangentCoefficients(*(r.normal(size=(4, n)) * 50), nh)
        upd = SimpleNamespace(tangent=D, yielded=r.uniform(size=n) < 0.5)
        want = (K + blocks_to_matrix(asm.pattern, kern.tangent_blocks(D, upd.yielded), "csr")).toarray()
        got = _tangent(K, kern, upd)
        assert np.array_equal(got.indices, K.indices) and np.array_equal(got.indptr, K.indptr)  # K's structure
        assert np.abs(got.toarray() - want).max() <= 1e-12 * np.abs(want).max()


def _indefinite(n: int, n_neg: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A symmetric matrix with ``n_neg`` negative eigenvalues, and a right-hand side."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    ev = np.concatenate([-rng.uniform(0.1, 2.0, n_neg), rng.uniform(0.5, 50.0, n - n_neg)])
    return (Q * ev) @ Q.T, rng.normal(size=n)


@pytest.mark.parametrize("precond", ["identity", "spd"])
def test_minres_solves_a_symmetric_indefinite_system_like_numpy(precond):
    """MINRES (Paige & Saunders 1975) on a 40 x 40 symmetric matrix with 5 negative eigenvalues,
    without and with a positive definite preconditioner, against numpy.linalg.solve; CG breaks
    down on the same system (p.Ap <= 0) and returns failure."""
    from fembone.core.nonlinear_solve import _minres, _pcg

    A, b = _indefinite(40, 5, 11)
    rng = np.random.default_rng(5)
    R = rng.normal(size=(40, 40))
    P = np.linalg.inv(R @ R.T + 40 * np.eye(40))
    M = (lambda r: r.copy()) if precond == "identity" else (lambda r: P @ r)
    x, it, ok = _minres(A, b, M, 1e-10, 400)
    want = np.linalg.solve(A, b)
    assert ok and it <= 120
    assert np.linalg.norm(x - want) <= 1e-8 * np.linalg.norm(want)
    assert np.linalg.norm(A @ x - b) <= 1e-10 * np.linalg.norm(b)
    assert not _pcg(A, b, M, 1e-10, 400)[2]
    assert not _minres(A, b, M, 1e-10, 3)[2]  # a budget too small is reported, not hidden


def test_minres_on_a_positive_definite_system_in_exact_arithmetic_steps():
    """On an SPD matrix with 4 distinct eigenvalues MINRES, like CG, ends in 4 iterations (Krylov
    space of the minimal polynomial) at the exact solution."""
    from fembone.core.nonlinear_solve import _minres

    rng = np.random.default_rng(2)
    Q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    A = (Q * np.repeat([1.0, 2.0, 5.0, 9.0], 3)) @ Q.T
    b = rng.normal(size=12)
    x, it, ok = _minres(A, b, lambda r: r.copy(), 1e-10, 50)
    assert ok and it <= 5
    assert np.allclose(x, np.linalg.solve(A, b), rtol=0, atol=1e-9)


def test_residual_search_keeps_newton_steps_and_damps_an_overshoot():
    """Backtracking on |r| (Armijo, Dennis & Schnabel 1983 sec. 6.3): on a linear residual with an
    indefinite matrix the exact Newton step (s = 1) is taken at once; on r(x) = arctan(x) from
    x = 3 the full Newton step (dx = -(1 + 9) arctan 3 = -12.49) lands at |arctan| = 1.466 >
    arctan 3 = 1.249 and must be shortened to one that lowers |r| by the Armijo factor."""
    from fembone.core.nonlinear_solve import residual_search

    A, b = _indefinite(6, 2, 4)
    ev = lambda x, lam, tangent: (None, None, None, A @ x - b)
    x0 = np.zeros(6)
    dq = -np.linalg.solve(A, A @ x0 - b)
    s, st, n = residual_search(ev, x0, dq, float(np.linalg.norm(b)), 1.0)
    assert (s, n) == (1.0, 1) and np.linalg.norm(st[3]) <= 1e-12 * np.linalg.norm(b)

    ev = lambda x, lam, tangent: (None, None, None, np.arctan(x))
    x0 = np.array([3.0])
    dq = -np.arctan(x0) * (1.0 + x0**2)
    assert abs(np.arctan(x0 + dq)[0]) > abs(np.arctan(3.0))  # the undamped step overshoots
    s, st, n = residual_search(ev, x0, dq, float(np.arctan(3.0)), 1.0)
    assert 0.0 < s < 1.0 and n >= 2
    assert abs(st[3][0]) <= (1.0 - 1e-4 * s) * np.arctan(3.0)
    assert np.isclose(st[3][0], np.arctan(3.0 + s * dq[0]))


def test_reduced_tangent_map_equals_the_reduction_of_the_assembled_tangent():
    """ReducedTangent writes the plastic blocks straight into T^T K_t T + I_dep through a map found once;
    on a tet10 box with supports and a one-master tie (a platen reference DOF) it must equal
    reduce_system(K + blocks) for two tangents, and the unreduced K when nothing yielded."""
    from types import SimpleNamespace

    from fembone.core.analysis import assemble
    from fembone.core.constraints import reduce_system
    from fembone.core.nonlinear import (
        PlasticSet,
        ReducedTangent,
        _PlasticKernels,
        _tangent,
    )
    from fembone.core.plasticity import DruckerPrager, TangentCoefficients

    rng = np.random.default_rng(9)
    mesh = box_mesh((1.0, 1.0, 2.0), (2, 2, 3), order=2)
    mat = Isotropic(name="m", E=E, nu=NU)
    lay = DofLayout(mesh.n_nodes)
    j = int(lay.add_extra(np.array([[0.5, 0.5, 2.0]]))[0])
    rd = lay.extra_dofs(j)[0]
    C = np.broadcast_to(mat.stiffness(), (mesh.n_elements, 6, 6)).copy()
    m = Model("t", mesh, [mat], np.zeros(mesh.n_elements, int), C, lay, ConstraintSet(lay))
    top = np.unique(mesh.facet_sets["zmax"])
    m.constraints.fix(3 * np.unique(mesh.facet_sets["zmin"])[:, None] + np.arange(3), label="base")
    m.constraints.fix(rd[[0, 1, 3, 4, 5]], label="platen: z only")
    m.constraints.tie(3 * top + 2, np.full(len(top), rd[2]), np.full(len(top), -0.5), label="platen")  # weights != 1
    asm, K = assemble(m, None)
    red = m.constraints.build()
    nq = asm.geometry.grads.shape[0]
    els = rng.permutation(mesh.n_elements)[: mesh.n_elements // 2]
    n = len(els) * nq
    law = DruckerPrager(rng.uniform(100, 200, n), rng.uniform(50, 90, n), 0.1, YieldCurve(np.zeros((n, 1)), np.ones((n, 1))))
    kern = _PlasticKernels(asm, PlasticSet(els, law))
    rt = ReducedTangent(K, red, kern)
    assert rt.map is not None  # the fast path, not the fall-back
    assert np.abs((rt.Kq - reduce_system(K, red)).toarray()).max() <= 1e-12 * abs(K).max()
    for seed in (1, 2):
        r = np.random.default_rng(seed)
        D = TangentCoefficients(*(r.normal(size=(4, n)) * 50), r.normal(size=(n, 6)))
        upd = SimpleNamespace(tangent=D, yielded=r.uniform(size=n) < 0.5)
        want = reduce_system(_tangent(K, kern, upd), red).toarray()
        assert np.abs(rt(upd).toarray() - want).max() <= 1e-12 * np.abs(want).max()
    assert rt(SimpleNamespace(yielded=np.zeros(n, bool))) is rt.Kq


@pytest.mark.parametrize("order", [1, 2])
def test_tangent_blocks_equal_the_b_matrix_integral(order):
    """tangent_blocks against int B^T (D - C) B dV written out with 6x6 Mandel matrices: B_i has rows
    g_x, g_y, g_z (normal strains) and (g_y, g_x)/sqrt2, (g_z, g_y)/sqrt2, (g_z, g_x)/sqrt2 (shear),
    D - C = b1 I_dev + a2 n n + a3 (n 1 + 1 n) + b4 1 1 (b1 = a1 - 2G, b4 = a4 - K), summed over the
    elements with a yielded point (random coefficients, one element with none)."""
    from fembone.core.assembly import Assembler, blocks_to_matrix
    from fembone.core.nonlinear import PlasticSet, _PlasticKernels
    from fembone.core.plasticity import IDEV, ONE, DruckerPrager, TangentCoefficients

    rng = np.random.default_rng(order)
    mesh = box_mesh((1.0, 1.2, 0.9), (1, 1, 2), order=order)
    asm = Assembler(mesh)
    geo = asm.geometry
    nq = geo.grads.shape[0]
    els = np.array([0, 3, 5, 7, 10])
    n = len(els) * nq
    Kb, Gs = rng.uniform(100, 200, n), rng.uniform(50, 90, n)
    kern = _PlasticKernels(asm, PlasticSet(els, DruckerPrager(Kb, Gs, 0.1, YieldCurve(np.zeros((n, 1)), np.ones((n, 1))))))
    D = TangentCoefficients(*(rng.normal(size=(4, n)) * 50), rng.normal(size=(n, 6)))
    yielded = rng.uniform(size=n) < 0.6
    yielded[nq : 2 * nq] = False  # the second element has no yielded point: left out
    got = blocks_to_matrix(asm.pattern, kern.tangent_blocks(D, yielded), "csr").toarray()
    want = np.zeros_like(got)
    r2 = 1.0 / np.sqrt(2.0)
    for k, e in enumerate(els):
        if not yielded[k * nq : (k + 1) * nq].any():
            continue
        dofs = (3 * mesh.cells[e][:, None] + np.arange(3)).ravel()
        for q in range(nq):
            p = k * nq + q
            g = geo.grads[q, :, :, e]  # (nen, 3)
            B = np.zeros((6, 3 * len(g)))
            for i, (gx, gy, gz) in enumerate(g):
                B[:, 3 * i : 3 * i + 3] = [[gx, 0, 0], [0, gy, 0], [0, 0, gz], [gy * r2, gx * r2, 0],
                                           [0, gz * r2, gy * r2], [gz * r2, 0, gx * r2]]
            nv = D.n[p]
            DC = ((D.a1[p] - 2 * Gs[p]) * IDEV + D.a2[p] * np.outer(nv, nv) + D.a3[p] * (np.outer(nv, ONE) + np.outer(ONE, nv))
                  + (D.a4[p] - Kb[p]) * np.outer(ONE, ONE))
            want[np.ix_(dofs, dofs)] += geo.wdet[q, e] * B.T @ DC @ B
    assert np.abs(got - want).max() <= 1e-10 * np.abs(want).max()


@pytest.mark.parametrize("requested, order, n, expected", [
    ("auto", 2, 150_000, "pmg"), (None, 2, 323_430, "pmg"), ("auto", 2, 149_999, "auto"),
    ("auto", 1, 500_000, "auto"), ("pardiso", 2, 400_000, "pardiso"), (None, 1, 10, None)])
def test_path_solver_rule(requested, order, n, expected):
    """p-multigrid for the path of tet10 models from 150k DOFs under auto (its set-up can follow the
    softening tangent: 3.5 s at 323k against a 38-53 s factorisation); an explicit choice is kept."""
    from fembone.core.nonlinear import path_solver

    assert path_solver(requested, order, n) == expected
