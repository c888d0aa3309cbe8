"""The elastic-plastic law (fembone.core.plasticity): return mapping against hand-derived states,
the consistent tangent against finite differences, and the tangent blocks of
fembone.core.nonlinear against B^T D B computed element by element.  Units: MPa, mm/mm."""

from __future__ import annotations

import numpy as np
import pytest

from fembone.core.assembly import Assembler, blocks_to_matrix
from fembone.core.meshgen import box_mesh
from fembone.core.nonlinear import PlasticSet, _PlasticKernels
from fembone.core.plasticity import (
    ONE, DruckerPrager, TangentCoefficients, YieldCurve, beta_from_yield, elastic_tangent, mandel_from_tensor,
    tensor_from_mandel,
)

E, NU = 300.0, 0.2
K, G = E / (3 * (1 - 2 * NU)), E / (2 * (1 + NU))  # 166.67, 125 MPa
SC, ST = 10.0, 8.0  # uniaxial compressive and tensile yield stresses, MPa


def law(n: int, alpha=(0.0,), stress=(SC,), sc=SC, st=ST, floor=None) -> DruckerPrager:
    curve = YieldCurve(np.tile(alpha, (n, 1)), np.tile(stress, (n, 1)))
    return DruckerPrager(np.full(n, K), np.full(n, G), np.full(n, beta_from_yield(sc, st)), curve, tangent_floor=floor)


def update(m: DruckerPrager, eps, eps_p=None, alpha=None, **kw):
    eps = np.atleast_2d(eps)
    n = len(eps)
    return m.update(eps, np.zeros((n, 6)) if eps_p is None else eps_p, np.zeros(n) if alpha is None else alpha, **kw)


def test_beta_and_uniaxial_yield_levels():
    """f = q + beta p - (1 - beta/3) sigma_c: by hand beta = 3 (10 - 8) / 18 = 1/3, and uniaxial
    tension of 8 MPa (q = 8, p = 8/3) and compression of 10 MPa (q = 10, p = -10/3) lie on the
    surface: 8 + 8/9 = 10 - 10/9 = 80/9."""
    assert beta_from_yield(SC, ST) == pytest.approx(1.0 / 3.0)
    m = law(2)
    s = np.zeros((2, 6))
    s[0, 0], s[1, 0] = ST, -SC
    assert m.yield_ratio(s, np.zeros(2)) == pytest.approx([1.0, 1.0], rel=1e-14)


def test_mandel_round_trip_keeps_the_double_contraction():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 3))
    a, b = a + a.T, b + b.T
    assert mandel_from_tensor(a) @ mandel_from_tensor(b) == pytest.approx(np.sum(a * b))
    assert np.allclose(tensor_from_mandel(mandel_from_tensor(a)), a)


def test_elastic_below_yield():
    """Inside the surface the stress is C eps and nothing changes."""
    eps = np.array([-0.01, 0.002, 0.002, 0.0, 0.0, 0.0]) * 0.5  # uniaxial-ish, q well below yield
    m = law(1)
    up = update(m, eps)
    assert not up.yielded.any()
    assert np.allclose(up.stress[0], elastic_tangent(np.array([K]), np.array([G]))[0] @ eps)
    assert np.all(up.plastic_strain == 0) and up.alpha[0] == 0


def test_pure_shear_radial_return_von_mises():
    """von Mises (sigma_t = sigma_c), perfectly plastic, engineering shear gamma = 0.2: the trial
    shear stress G gamma = 25 MPa exceeds sigma_y / sqrt3 = 5.774 MPa, and the radial return
    leaves tau = sigma_y / sqrt3 with no mean stress (Simo & Hughes 1998, box 3.2)."""
    gamma = 0.2
    eps = np.zeros(6)
    eps[3] = gamma / np.sqrt(2.0)  # Mandel: sqrt2 x tensor component gamma/2
    up = update(law(1, st=SC), eps)
    tau = up.stress[0, 3] / np.sqrt(2.0)
    assert tau == pytest.approx(SC / np.sqrt(3.0), rel=1e-12)
    assert np.allclose(up.stress[0, [0, 1, 2, 4, 5]], 0.0, atol=1e-12)
    # plastic shear strain: gamma_p = gamma - tau / G
    assert up.plastic_strain[0, 3] * np.sqrt(2.0) == pytest.approx(gamma - tau / G, rel=1e-12)


def test_apex_return_under_hydrostatic_tension():
    """Hydrostatic tension has no deviator, so the return goes to the apex: s = 0 and
    beta p = (1 - beta/3) sigma_c, i.e. p = (8/9) 10 / (1/3) = 26.67 MPa (perfectly plastic)."""
    e = 0.1  # trial mean stress K 3 e = 50 MPa, above the apex
    up = update(law(1), e * ONE)
    assert np.allclose(up.stress[0], (80.0 / 3.0) * ONE, rtol=1e-12)


def test_hardening_curve_values():
    """Piecewise-linear curve: 10 at 0, 12 at 0.004, 3 at 0.02, flat after; slopes 500, -562.5, 0."""
    c = YieldCurve([[0.0, 0.004, 0.02]], [[10.0, 12.0, 3.0]])
    v, h = c(np.array([0.0, 0.002, 0.01, 0.05]), np.zeros(4, int))
    assert v == pytest.approx([10.0, 11.0, 12.0 - 562.5 * 0.006, 3.0])
    assert h == pytest.approx([500.0, 500.0, -562.5, 0.0])


def test_uniaxial_strain_return_matches_hand_solution():
    """Confined compression eps = (-e, 0, 0), von Mises, linear hardening H (stress over the
    compressive plastic strain alpha): trial s_xx = -4G e/3, q_tr = 2 G e; consistency
    q_tr - 3 G dg = sigma_y + H dg gives dg = (2 G e - sigma_y) / (3G + H) and alpha = dg."""
    H, e = 200.0, 0.05
    m = law(1, alpha=(0.0, 1.0), stress=(SC, SC + H), st=SC)
    up = update(m, np.array([-e, 0, 0, 0, 0, 0]))
    dg = (2 * G * e - SC) / (3 * G + H)
    assert up.alpha[0] == pytest.approx(dg, rel=1e-12)
    tr = up.stress[0, :3].sum()
    assert tr / 3 == pytest.approx(-K * e, rel=1e-12)  # no pressure sensitivity: the mean stress stays elastic
    assert m.yield_ratio(up.stress, up.alpha)[0] == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("curve", [
    ((0.0,), (SC,)),  # perfectly plastic
    ((0.0, 0.05), (SC, SC + 15.0)),  # hardening
    ((0.0, 0.004, 0.02), (SC, SC, 3.0)),  # plateau then softening (the trabecular form)
])
def test_consistent_tangent_matches_finite_differences(curve):
    rng = np.random.default_rng(3)
    n = 300
    m = law(n, *curve)
    eps = rng.normal(size=(n, 6)) * 0.02
    eps[:, :3] -= 0.01  # mostly compressive
    eps_p = rng.normal(size=(n, 6)) * 0.002
    eps_p[:, :3] -= eps_p[:, :3].mean(axis=1, keepdims=True) * 0.5
    alpha = rng.uniform(0.0, 0.015, n)
    up = update(m, eps, eps_p, alpha)
    assert up.yielded.sum() > n // 2
    D = up.tangent.matrix()
    h = 1e-7
    Dfd = np.zeros((n, 6, 6))
    for j in range(6):
        e1, e2 = eps.copy(), eps.copy()
        e1[:, j] += h
        e2[:, j] -= h
        Dfd[:, :, j] = (update(m, e1, eps_p, alpha, tangent=False).stress - update(m, e2, eps_p, alpha, tangent=False).stress) / (2 * h)
    # points whose plastic strain sits on a knot of the curve have one-sided derivatives: skip them
    knots = np.array(curve[0])
    safe = np.min(np.abs(up.alpha[:, None] - knots[None, :]), axis=1) > 10 * h
    err = np.abs(Dfd - D).max(axis=(1, 2))[safe] / (3 * K)  # relative to the elastic stiffness scale
    assert err.max() < 1e-5, f"tangent differs from finite differences by {err.max():.2e}"
    assert np.allclose(D, D.transpose(0, 2, 1))  # associative flow: symmetric


def test_apex_tangent_matches_finite_differences():
    """Hydrostatic tension with hardening: at the apex D = K c^2 H / (beta^2 K + c^2 H) 1(x)1."""
    m = law(1, alpha=(0.0, 1.0), stress=(SC, SC + 40.0))
    eps = 0.1 * ONE + np.array([0, 0, 0, 1e-6, 0, 0])
    up = update(m, eps[None])
    h = 1e-7
    Dfd = np.zeros((6, 6))
    for j in range(6):
        e1, e2 = eps.copy(), eps.copy()
        e1[j] += h
        e2[j] -= h
        Dfd[:, j] = (update(m, e1[None], tangent=False).stress[0] - update(m, e2[None], tangent=False).stress[0]) / (2 * h)
    assert np.abs(up.tangent.matrix()[0] - Dfd).max() < 1e-5 * np.abs(Dfd).max()


def test_floored_tangent_stays_positive_definite_under_softening():
    """With softening the exact tangent is indefinite; the floored one (solvers need SPD) is not."""
    rng = np.random.default_rng(5)
    n = 200
    eps = rng.normal(size=(n, 6)) * 0.02
    args = ((0.0, 0.001, 0.01), (SC, SC, 2.0))
    alpha = np.full(n, 0.002)  # on the softening branch
    exact = update(law(n, *args), eps, alpha=alpha).tangent.matrix()
    floored = update(law(n, *args, floor=1e-3), eps, alpha=alpha).tangent.matrix()
    assert np.linalg.eigvalsh(exact).min() < 0
    assert np.linalg.eigvalsh(floored).min(axis=1).min() > -1e-9 * np.abs(floored).max()


@pytest.mark.parametrize("order", [1, 2])
def test_tangent_blocks_equal_element_b_d_b(order):
    """The outer-product assembly of int B^T (D - C) B equals the 6x6 Mandel form element by element."""
    rng = np.random.default_rng(order)
    mesh = box_mesh((1.0, 1.0, 1.0), (2, 2, 2), order=order)
    mesh.points += rng.normal(size=mesh.points.shape) * 0.03
    asm = Assembler(mesh)
    nq = asm.geometry.grads.shape[0]
    els = rng.permutation(mesh.n_elements)[: 2 * mesh.n_elements // 3]  # a shuffled subset is plastic
    n = len(els) * nq
    m = DruckerPrager(rng.uniform(100, 200, n), rng.uniform(50, 90, n), 0.1, YieldCurve(np.zeros((n, 1)), np.ones((n, 1))))
    kern = _PlasticKernels(asm, PlasticSet(els, m))
    nh = rng.normal(size=(n, 6))
    nh[:, :3] -= nh[:, :3].mean(axis=1, keepdims=True)
    nh /= np.linalg.norm(nh, axis=1)[:, None]
    D = TangentCoefficients(*(rng.normal(size=(4, n)) * 50), nh)
    yielded = rng.uniform(size=n) < 0.5
    D.a1[~yielded], D.a4[~yielded], D.a2[~yielded], D.a3[~yielded] = 2 * m.G[~yielded], m.K[~yielded], 0, 0
    got = blocks_to_matrix(asm.pattern, kern.tangent_blocks(D, yielded), "csr").toarray()
    dD = D.matrix() - elastic_tangent(m.K, m.G)
    g, w, s2 = asm.geometry.grads, asm.geometry.wdet, np.sqrt(2.0)
    want = np.zeros_like(got)
    for k, e in enumerate(els):
        dofs = (3 * mesh.cells[e][:, None] + np.arange(3)).ravel()
        for q in range(nq):
            B = np.zeros((6, 3 * mesh.nodes_per_cell))
            for i in range(mesh.nodes_per_cell):
                gx, gy, gz = g[q, i, :, e]
                B[:, 3 * i : 3 * i + 3] = [[gx, 0, 0], [0, gy, 0], [0, 0, gz], [gy / s2, gx / s2, 0], [0, gz / s2, gy / s2], [gz / s2, 0, gx / s2]]
            want[np.ix_(dofs, dofs)] += w[q, e] * B.T @ dD[k * nq + q] @ B
    assert np.abs(got - want).max() < 1e-12 * np.abs(want).max()
