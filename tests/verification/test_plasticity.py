"""Elastic-plastic verification (fembone.core.nonlinear, fembone.core.plasticity) against closed forms.

* A bar in uniaxial tension and compression (symmetry rollers, end displacement prescribed):
  elastic-perfectly plastic, the force is A min(E d / L, sigma_y) with sigma_y the tensile or
  the compressive yield stress; with hardening, the associative Drucker-Prager flow gives the
  tensile curve sigma_t(eps_p) = r sigma_c(r eps_p), r = sigma_t0 / sigma_c0 (derived below).
* A thick-walled cylinder (a = 10, b = 20 mm) in plane strain under internal pressure, von
  Mises, perfectly plastic (Hill, *The Mathematical Theory of Plasticity*, 1950, ch. V):
  elastic limit where the Lame stresses at r = a first reach sigma_y, and the fully plastic
  pressure p_u = (2 / sqrt3) sigma_y ln(b / a); both approached under mesh refinement.
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
from fembone.core.plasticity import YieldCurve

E, NU = 1000.0, 0.3
SIGMA_C, SIGMA_T = 10.0, 8.0  # MPa


def _model(mesh) -> Model:
    mat = Isotropic(name="m", E=E, nu=NU)
    lay = DofLayout(mesh.n_nodes)
    C = np.broadcast_to(mat.stiffness(), (mesh.n_elements, 6, 6)).copy()
    return Model("t", mesh, [mat], np.zeros(mesh.n_elements, int), C, lay, ConstraintSet(lay))


def _curve(n, alpha, stress) -> YieldCurve:
    return YieldCurve(np.tile(alpha, (n, 1)), np.tile(stress, (n, 1)))


# -- bar ----------------------------------------------------------------------------------------
L, W = 10.0, 2.0  # bar length and square side, mm
A = W * W


def bar(order: int, sign: float, alpha, stress, d_max: float, steps: int):
    mesh = box_mesh((L, W, W), (5, 2, 2), order=order)
    m = _model(mesh)
    nodes = lambda f: np.unique(mesh.facet_sets[f])  # noqa: E731
    m.constraints.fix(3 * nodes("xmin"), label="x = 0")
    m.constraints.fix(3 * nodes("ymin") + 1, label="y = 0 (symmetry)")
    m.constraints.fix(3 * nodes("zmin") + 2, label="z = 0 (symmetry)")
    ctrl = 3 * nodes("xmax")
    m.constraints.fix(ctrl, 0.0, label="end")
    pset = plastic_set(m, np.arange(mesh.n_elements), _curve(mesh.n_elements, alpha, stress), SIGMA_T / SIGMA_C)
    res = solve_path(m, pset, ctrl, np.full(len(ctrl), sign * d_max), PathOptions(steps=steps, rtol=1e-10))
    return res, res.lam * d_max / L  # path and axial strain


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("sign, sigma_y", [(1.0, SIGMA_T), (-1.0, SIGMA_C)], ids=["tension", "compression"])
def test_bar_elastic_perfectly_plastic(order, sign, sigma_y):
    res, eps = bar(order, sign, (0.0,), (SIGMA_C,), d_max=0.03 * L, steps=15)
    exact = A * np.minimum(E * eps, sigma_y)
    err = np.abs(res.force - exact).max() / (A * sigma_y)
    assert err < 1e-9, f"bar force off the exact curve by {err:.2e} of A sigma_y"
    lam_y, F_y = res.first_yield()
    assert F_y == pytest.approx(A * sigma_y, rel=1e-9), (F_y, A * sigma_y)
    assert lam_y * 0.03 * L == pytest.approx(sigma_y * L / E, rel=1e-9)  # yield displacement
    assert res.force[-1] == pytest.approx(A * sigma_y, rel=1e-9)


def _uniaxial(eps: np.ndarray, alpha, stress, r: float) -> np.ndarray:
    """Stress of uniaxial loading with the scaled curve sigma = r sigma_c(r eps_p), by bisection.

    Associative flow of f = q + beta p - c sigma_c(alpha), c = 1 - beta/3, alpha' = c gamma':
    in uniaxial tension (q = s, p = s/3) the axial plastic strain rate is gamma' (1 + beta/3),
    so alpha = r eps_p with r = (1 - beta/3) / (1 + beta/3) = sigma_t0 / sigma_c0, and yield
    reads s (1 + beta/3) = c sigma_c(alpha), i.e. s = r sigma_c(r eps_p).  In compression r = 1.
    """
    out = []
    for e in eps:
        f = lambda ep: E * (e - ep) - r * np.interp(r * ep, alpha, stress)  # noqa: E731
        if f(0.0) <= 0:
            out.append(E * e)
            continue
        lo, hi = 0.0, e
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
        out.append(E * (e - lo))
    return np.array(out)


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["tension", "compression"])
def test_bar_hardening_follows_the_scaled_curve(sign):
    alpha, stress = (0.0, 0.004, 0.02), (SIGMA_C, 12.0, 14.0)
    res, eps = bar(1, sign, alpha, stress, d_max=0.3, steps=30)
    exact = A * _uniaxial(eps, alpha, stress, SIGMA_T / SIGMA_C if sign > 0 else 1.0)
    err = np.abs(res.force - exact).max() / exact.max()
    assert err < 1e-8, f"hardening bar off the exact curve by {err:.2e}"


# -- thick cylinder, plane strain ---------------------------------------------------------------
a, b, H, SY = 10.0, 20.0, 2.0, 10.0


def hill_elastic_limit() -> float:
    """Pressure at which von Mises first reaches SY at r = a (Lame, plane strain sigma_z = nu (sigma_r + sigma_t))."""
    k = a * a / (b * b - a * a)
    sr, st, sz = -1.0, k * (1 + b * b / (a * a)), 2 * NU * k  # per unit pressure at r = a
    q = np.sqrt(0.5 * ((sr - st) ** 2 + (st - sz) ** 2 + (sz - sr) ** 2))
    return SY / q


def hill_limit_pressure() -> float:
    """Fully plastic pressure (Hill 1950): sigma_t - sigma_r = 2 SY / sqrt3 across the wall."""
    return 2.0 / np.sqrt(3.0) * SY * np.log(b / a)


def cylinder(nr: int, nt: int, steps: int = 12, multiple: float = 30.0):
    """Quarter annulus, one layer, all uz = 0; the bore pushed out radially (uniform radial motion,
    the response of a uniform pressure by symmetry); pressure = x-resultant on the bore / (a H)."""
    mesh = box_mesh(coords=(np.linspace(a, b, nr + 1), np.linspace(0, np.pi / 2, nt + 1), np.array([0.0, H])), order=2)
    R, T = mesh.points[:, 0].copy(), mesh.points[:, 1].copy()
    mesh.points[:, 0], mesh.points[:, 1] = R * np.cos(T), R * np.sin(T)
    m = _model(mesh)
    nodes = lambda f: np.unique(mesh.facet_sets[f])  # noqa: E731
    bore = nodes("xmin")
    m.constraints.fix(3 * np.arange(mesh.n_nodes) + 2, label="plane strain")
    m.constraints.fix(3 * np.setdiff1d(nodes("ymin"), bore) + 1, label="y = 0")
    m.constraints.fix(3 * np.setdiff1d(nodes("ymax"), bore), label="x = 0")
    ctrl = np.concatenate([3 * bore, 3 * bore + 1])
    m.constraints.fix(ctrl, 0.0, label="bore")
    pe = hill_elastic_limit()
    u_e = (1 + NU) * pe * a * a / (E * (b * b - a * a)) * ((1 - 2 * NU) * a + b * b / a)  # Lame bore motion at p_e
    th = T[bore]
    values = multiple * u_e * np.concatenate([np.cos(th), np.sin(th)])
    w = np.zeros(m.n_dofs)
    w[3 * bore] = 1.0 / (a * H)
    pset = plastic_set(m, np.arange(mesh.n_elements), _curve(mesh.n_elements, (0.0,), (SY,)), 1.0)
    return solve_path(m, pset, ctrl, values, PathOptions(steps=steps, rtol=1e-8), force_weights=w)


@pytest.fixture(scope="module")
def cylinders():
    return {n: cylinder(n, 2 * n) for n in (2, 4, 8)}


def test_cylinder_elastic_limit_converges_to_hill(cylinders):
    pe = hill_elastic_limit()
    err = {n: abs(r.first_yield()[1] / pe - 1) for n, r in cylinders.items()}
    assert err[2] > err[4] > err[8], f"elastic-limit errors do not fall with refinement: {err}"
    assert err[8] < 0.005, f"elastic limit {cylinders[8].first_yield()[1]:.4f} MPa vs Hill {pe:.4f} (error {err[8]:.2%})"


def test_cylinder_fully_plastic_pressure_converges_to_hill(cylinders):
    pu = hill_limit_pressure()
    err = {n: abs(r.force[-1] / pu - 1) for n, r in cylinders.items()}
    assert err[2] > err[4] > err[8], f"limit-pressure errors do not fall with refinement: {err}"
    assert err[8] < 0.015, f"fully plastic pressure {cylinders[8].force[-1]:.4f} MPa vs Hill {pu:.4f} (error {err[8]:.2%})"
    for r in cylinders.values():  # the plateau is reached: the last steps barely change the pressure
        assert abs(r.force[-1] / r.force[-3] - 1) < 2e-3, r.force[-4:]
