"""The nonlinear path through softening, where the consistent tangent is indefinite (fembone.core.nonlinear).

A prism (W x W x H, tet4) on rollers (z = 0 at the bottom, x = 0 and y = 0 symmetry faces), its
top face pushed down by d: a homogeneous uniaxial compression, so every point follows the 1-D
law.  The compressive yield stress softens linearly, sigma_c(alpha) = s0 + h alpha (h < 0) down
to a floor s1, with alpha the axial plastic strain in uniaxial compression
(fembone.core.plasticity), so with eps = d / H the exact stress is

    sigma = E eps                                        while E eps <= s0,
    sigma = s0 + h alpha,  alpha = (eps - s0 / E) / (1 + h / E)   (softening, 1 + h/E > 0),
    sigma = s1                                           once alpha >= (s1 - s0) / h,

and the platen force is sigma W^2.  Past the peak the consistent tangent has negative
eigenvalues (a layer that softens more than its neighbour releases energy): the path solves it
with MINRES on the kept positive definite preconditioner (Paige & Saunders, SIAM J Numer Anal
12:617, 1975).  Checked: the tangent MINRES met is indefinite, the forces equal the exact curve
up to the peak and through the softening within the Newton tolerance, and the floored tangent
(tangent_floor 1e-3 G, positive definite: slope +0.6 MPa where the true one is -600) cannot
follow the homogeneous softening at all: its path stops at the peak.  Units: mm, N, MPa.
"""

from __future__ import annotations

import numpy as np
import pytest

from fembone.core import nonlinear_solve
from fembone.core.constraints import ConstraintSet, DofLayout
from fembone.core.materials import Isotropic
from fembone.core.meshgen import box_mesh
from fembone.core.model import Model
from fembone.core.nonlinear import PathOptions, plastic_set, solve_path
from fembone.core.plasticity import YieldCurve

E, NU, W, H = 1000.0, 0.3, 2.0, 4.0
S0, S1, HS = 10.0, 4.0, -600.0  # MPa: yield stress, floor, softening slope
DMAX = 0.08  # mm: eps 0.02, past the floor (alpha 0.01 at eps 0.014)


def exact_force(d: np.ndarray) -> np.ndarray:
    eps = np.asarray(d) / H
    alpha = np.clip((eps - S0 / E) / (1.0 + HS / E), 0.0, (S1 - S0) / HS)
    sig = np.where(eps * E <= S0, eps * E, S0 + HS * alpha)
    return sig * W * W


def prism():
    mesh = box_mesh((W, W, H), (2, 2, 4), order=1)
    mat = Isotropic(name="bone", E=E, nu=NU)
    lay = DofLayout(mesh.n_nodes)
    ne = mesh.n_elements
    m = Model("prism", mesh, [mat], np.zeros(ne, int), np.broadcast_to(mat.stiffness(), (ne, 6, 6)).copy(), lay,
              ConstraintSet(lay))
    nodes = lambda f: np.unique(mesh.facet_sets[f])
    m.constraints.fix(3 * nodes("zmin") + 2, label="bottom rollers")
    m.constraints.fix(3 * nodes("xmin"), label="x symmetry")
    m.constraints.fix(3 * nodes("ymin") + 1, label="y symmetry")
    ctrl = 3 * nodes("zmax") + 2
    m.constraints.fix(ctrl, 0.0, label="platen")
    curve = YieldCurve(np.tile([0.0, (S1 - S0) / HS], (ne, 1)), np.tile([S0, S1], (ne, 1)))
    return m, plastic_set(m, np.arange(ne), curve, 0.8), ctrl


@pytest.fixture(scope="module")
def paths():
    m, pset, ctrl = prism()
    seen = []
    minres = nonlinear_solve._minres

    def spy(A, b, M, rtol, maxiter):  # the smallest eigenvalue of every tangent MINRES solves
        seen.append(float(np.linalg.eigvalsh(A.toarray()).min()))
        return minres(A, b, M, rtol, maxiter)

    run = lambda mode: solve_path(m, pset, ctrl, np.full(len(ctrl), -DMAX),
                                  PathOptions(steps=16, rtol=1e-9, softening_tangent=mode))
    with pytest.MonkeyPatch.context() as mp:  # the spy only for this path
        mp.setattr(nonlinear_solve, "_minres", spy)
        soft = run("exact")
    return soft, run("floored"), seen


def test_softening_tangent_met_by_minres_is_indefinite(paths):
    soft, _, seen = paths
    assert soft.stats["minres_iterations"] > 0 and min(seen) < 0
    assert soft.stats["floored_steps"] == 0 and soft.stats["floored_retries"] == 0  # no fall-back was needed


def test_path_through_the_indefinite_steps_is_the_exact_softening_curve(paths):
    soft, _, _ = paths
    d = soft.lam * DMAX
    assert soft.finished and np.allclose(soft.force, exact_force(d), rtol=1e-7, atol=1e-7 * S0 * W * W)
    assert soft.force.max() == pytest.approx(S0 * W * W, rel=1e-9)  # the peak: yield stress x area
    assert soft.force[-1] == pytest.approx(S1 * W * W, rel=1e-7)  # the floor
    assert soft.stats["newton_iterations"] <= 2 * len(soft.lam)  # Newton's rate kept through the softening


def test_floored_tangent_stops_at_the_peak_where_the_same_points_agree(paths):
    soft, floored, _ = paths
    assert not floored.finished and floored.lam[-1] <= 0.5 + 1e-12  # d = 0.04 mm: eps 0.01, the peak
    k = len(floored.lam)
    assert np.allclose(floored.force, soft.force[:k], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("keys", [{"min_step_length": 0.2}, {"predict_cut": None, "line_search": False}])
def test_step_control_options_keep_the_exact_curve(keys):
    """The early step cuts (line search shortening a step below 0.2) and the plain Newton steps (no
    line search, no rate-predicted cut) reach the same exact softening curve."""
    m, pset, ctrl = prism()
    res = solve_path(m, pset, ctrl, np.full(len(ctrl), -DMAX), PathOptions(steps=16, rtol=1e-9, **keys))
    assert res.finished and np.allclose(res.force, exact_force(res.lam * DMAX), rtol=1e-7, atol=1e-7 * S0 * W * W)


def test_progress_names_the_first_peak_once_it_is_bracketed(caplog):
    """The progress log says when the strength is known: the step after the exact peak (S0 W^2 =
    40 N at d = H S0 / E = 0.04 mm, step 8 of 16) has a lower force; said once, though the force
    falls on."""
    m, pset, ctrl = prism()
    with caplog.at_level("INFO", logger="fembone.nonlinear"):
        solve_path(m, pset, ctrl, np.full(len(ctrl), -DMAX), PathOptions(steps=16, rtol=1e-9))
    lines = [r.getMessage() for r in caplog.records if "first peak bracketed" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"first peak bracketed: {S0 * W * W:.6g} N at step 8 ")
