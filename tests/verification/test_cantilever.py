"""Cantilever L = 100, 10 x 10, tip load: Timoshenko beam theory and observed convergence orders.

Two problems (see :mod:`fembone.apps.verify`):

* clamped root face, nu = 0.3, uniform tip traction (the setting of cases/cantilever.yaml).
  Beam theory (Cowper's k) is ~0.7 % off the 3-D solution, whose clamped edges are singular;
  the observed orders there are pre-asymptotic (tet4 still leaving its locking regime, tet10
  capped by the singularity), reported and checked against the brief's thresholds.
* nu = 0 with the exact Saint-Venant flexure field on the root face and the parabolic tip
  shear: an exact 3-D solution, smooth, whose tip deflection is exactly Timoshenko's with
  k = 5/6.  There both elements must show their design orders (2 and 4 for the compliance).
"""

from __future__ import annotations

import numpy as np
import pytest

from fembone.apps import verify as V

P, L, B, H, E = V.BEAM_P, V.BEAM_L, V.BEAM_B, V.BEAM_H, V.BEAM_E
TIMOSHENKO = V.timoshenko_tip_deflection(P, L, B, H, E, V.BEAM_NU)
TIMOSHENKO_NU0 = V.timoshenko_tip_deflection(P, L, B, H, E, 0.0)


def _msg(what, computed, exact, error, tol):
    return f"{what}: computed {computed:.10g}, exact {exact:.10g}, error {error:.3e} (tolerance {tol:g})"


def _study_msg(s: V.ConvergenceStudy) -> str:
    return (
        f"{s.element}: h = {np.round(s.h, 4).tolist()}, values = {s.values.tolist()}, reference {s.reference:.10g}, "
        f"relative errors = {s.errors.tolist()}, observed order {s.order:.3f}"
    )


@pytest.fixture(scope="module")
def smooth():
    return V.smooth_convergence()


@pytest.fixture(scope="module")
def clamped():
    return V.clamped_convergence()


def test_timoshenko_formula():
    I = B * H**3 / 12
    G = E / 2.6
    k = 10 * 1.3 / (12 + 11 * 0.3)
    assert TIMOSHENKO == pytest.approx(P * L**3 / (3 * E * I) + P * L / (k * G * B * H), rel=1e-14)
    assert V.cowper_k_rectangle(0.0) == pytest.approx(5 / 6, rel=1e-14)


def test_saint_venant_field_is_exact():
    """The nu = 0 flexure field: stresses, tip resultant, zero mean root rotation, tip deflection."""
    u, t_z = V.saint_venant_flexure(P, L, B, H, E)
    I = B * H**3 / 12
    G = E / 2
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.uniform(0, L, 50), rng.uniform(-B / 2, B / 2, 50), rng.uniform(-H / 2, H / 2, 50)])
    d = 1e-4
    grad = np.empty((50, 3, 3))
    for b in range(3):
        e = np.zeros(3)
        e[b] = d
        grad[:, :, b] = (u(x + e) - u(x - e)) / (2 * d)
    eps = 0.5 * (grad + grad.transpose(0, 2, 1))
    sig = E * eps  # nu = 0: sigma = 2 G eps = E eps
    sxx = P * (L - x[:, 0]) * x[:, 2] / I
    txz = P * (x[:, 2] ** 2 - H * H / 4) / (2 * I)
    scale = np.abs(sxx).max()
    want = np.zeros((50, 3, 3))
    want[:, 0, 0] = sxx
    want[:, 0, 2] = want[:, 2, 0] = txz
    err = np.abs(sig - want).max() / scale
    assert err < 1e-7, f"stress of the flexure field differs from the elementary solution by {err:.3e} (relative)"
    assert np.allclose(2 * G * eps, sig)
    # resultant of the tip traction: -P; mean root rotation: 0 (Gauss-Legendre, exact for polynomials)
    g, w = np.polynomial.legendre.leggauss(6)
    z, w = g * H / 2, w * H / 2
    line = np.column_stack([0 * z, 0 * z, z])
    Fz = (w * t_z(line)).sum() * B
    assert Fz == pytest.approx(-P, rel=1e-12), _msg("tip resultant (N)", Fz, -P, abs(Fz / -P - 1), 1e-12)
    mom = (w * z * u(line)[:, 0]).sum()
    scale = (w * np.abs(z * u(line)[:, 0])).sum()
    assert abs(mom) < 1e-12 * scale, f"mean root-section rotation: integral of z u_x is {mom:.3e}, not 0"
    tip = -u(np.array([[L, 0.0, 0.0]]))[0, 2]
    assert tip == pytest.approx(TIMOSHENKO_NU0, rel=1e-13), _msg("tip deflection", tip, TIMOSHENKO_NU0, abs(tip / TIMOSHENKO_NU0 - 1), 1e-13)


def test_richardson_and_fit_order_recover_a_power_law():
    h = np.array([2.5, 5 / 3, 1.25])
    v = 0.4 + 3e-3 * h**2.5
    limit, p = V.richardson(h, v)
    assert limit == pytest.approx(0.4, rel=1e-10) and p == pytest.approx(2.5, rel=1e-8), (limit, p)
    assert V.fit_order(h, v - 0.4) == pytest.approx(2.5, rel=1e-10)
    assert all(np.isnan(V.richardson(h, [1.0, 2.0, 1.5])))  # oscillating: no order


def test_exact_field_cantilever_tet10_coarse():
    d, n = V.cantilever(2, 2, clamped=False)
    err = abs(d - TIMOSHENKO_NU0) / TIMOSHENKO_NU0
    assert err < 1e-3, _msg(f"tip deflection, tet10, {n} DOFs", d, TIMOSHENKO_NU0, err, 1e-3)


def test_clamped_cantilever_tet10_within_1_percent():
    d, n = V.cantilever(3, 2)
    err = abs(d - TIMOSHENKO) / TIMOSHENKO
    assert err < 0.01, _msg(f"tip deflection, tet10, {n} DOFs (clamped root)", d, TIMOSHENKO, err, 0.01)


@pytest.mark.slow
def test_convergence_orders_exact_field(smooth):
    s4, s10 = smooth
    for s in (s4, s10):
        assert np.all(np.diff(s.errors) < 0), "errors do not decrease: " + _study_msg(s)
    assert s4.order >= 1.5, "tet4 order below 1.5 (design order 2): " + _study_msg(s4)
    assert s10.order >= 3.0, "tet10 order below 3 (design order 4): " + _study_msg(s10)
    assert s10.order > s4.order, "tet10 does not converge faster than tet4: " + _study_msg(s4) + "; " + _study_msg(s10)
    err = s10.errors[-1]
    assert err < 1e-4, _msg("tip deflection, finest tet10", s10.values[-1], s10.reference, err, 1e-4)


@pytest.mark.slow
def test_convergence_orders_clamped(clamped):
    s4, s10 = clamped
    for s in (s4, s10):
        assert np.all(np.diff(s.values) > 0), "tip deflection not increasing under refinement: " + _study_msg(s)
    assert s4.order >= 1.5, "tet4 order below 1.5: " + _study_msg(s4)
    assert s10.order > s4.order, "tet10 order not above tet4's: " + _study_msg(s4) + "; " + _study_msg(s10)
    # the FE limit differs from beam theory only by the modelling error of the clamped root
    err = abs(s10.reference - TIMOSHENKO) / TIMOSHENKO
    assert err < 0.01, _msg("Richardson limit of tet10 vs Timoshenko", s10.reference, TIMOSHENKO, err, 0.01)
    err = abs(s10.values[-1] - TIMOSHENKO) / TIMOSHENKO
    assert err < 0.01, _msg(f"tip deflection, tet10, {s10.dofs[-1]} DOFs", s10.values[-1], TIMOSHENKO, err, 0.01)
    # tet4 heads for the same limit (within its own remaining error)
    err = abs(s4.values[-1] - s10.reference) / s10.reference
    assert err < 0.10, _msg(f"tip deflection, tet4, {s4.dofs[-1]} DOFs vs FE limit", s4.values[-1], s10.reference, err, 0.10)
