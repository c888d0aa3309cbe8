"""Tension-only fibre families through the whole solve (fembone.core.fibres + analysis + Newton).

A 10 x 4 x 4 mm bar (tet10, 768 elements: above the LCP limit, so the semismooth Newton runs)
of a matrix with nu = 0 (no lateral coupling, so a uniaxial stress state is exact) and one
fibre family along the bar (smeared modulus E_f), symmetry supports on x = 0, y = 0, z = 0 and a
uniform traction on x = L.  Exact: the end moves F L / ((E_m + E_f) A) in tension and
F L / (E_m A) in compression (the fibres carry nothing), both load cases in one solve.
A second family at +-30 deg to the bar in the x-y plane (two families, as in the annulus): in
tension along x each carries E_f cos^4(30) of the axial stiffness only if the bar cannot
contract laterally; with nu = 0 and free sides the fibre strain is eps_x cos^2 - eps_y sin^2,
which the hand formula below gives.  Units: mm, N, MPa.
"""

from __future__ import annotations

import numpy as np
import pytest

from fembone.core.analysis import solve
from fembone.core.constraints import ConstraintSet, DofLayout
from fembone.core.fibres import fibre_set
from fembone.core.loads import total_force_load
from fembone.core.materials import Isotropic
from fembone.core.meshgen import box_mesh
from fembone.core.model import Model

L, W = 10.0, 4.0
EM, EF, F = 5.0, 40.0, 20.0


def _bar(directions, order=2):
    mesh = box_mesh((L, W, W), (8, 4, 4), order=order)
    mat = Isotropic(name="m", E=EM, nu=0.0)
    lay = DofLayout(mesh.n_nodes)
    C = np.broadcast_to(mat.stiffness(), (mesh.n_elements, 6, 6)).copy()
    model = Model("bar", mesh, [mat], np.zeros(mesh.n_elements, int), C, lay, ConstraintSet(lay))
    for face, comp in (("xmin", 0), ("ymin", 1), ("zmin", 2)):
        model.constraints.fix(3 * np.unique(mesh.facet_sets[face]) + comp)
    end = mesh.facet_sets["xmax"]
    model.loads["tension"] = total_force_load(mesh.points, end, [F, 0, 0], mesh.n_nodes).ravel()
    model.loads["compression"] = total_force_load(mesh.points, end, [-F, 0, 0], mesh.n_nodes).ravel()
    a = np.broadcast_to(np.asarray(directions, float), (mesh.n_elements, len(directions), 3))
    model.meta["_unilateral"] = fibre_set(mesh, np.arange(mesh.n_elements), a, EF)
    model.solver = "superlu"
    return model


def _end(res, name):
    mesh = res.model.mesh
    return res.loadcases[name].u.reshape(-1, 3)[np.unique(mesh.facet_sets["xmax"]), 0].mean()


def test_one_family_along_the_bar_is_tension_only():
    res = solve(_bar([[1.0, 0.0, 0.0]]), nodal=False)
    assert res.model.meta["_unilateral"].n > 200  # the Newton path, not the LCP
    A = W * W
    exact_t, exact_c = F * L / ((EM + EF) * A), -F * L / (EM * A)
    got_t, got_c = _end(res, "tension"), _end(res, "compression")
    print(f"tension {got_t:.9f} (exact {exact_t:.9f}), compression {got_c:.9f} (exact {exact_c:.9f})")
    assert got_t == pytest.approx(exact_t, rel=1e-8)
    assert got_c == pytest.approx(exact_c, rel=1e-8)
    for name in ("tension", "compression"):
        assert res.loadcases[name].equilibrium_error < 1e-8


def test_two_crossed_families_in_tension():
    """Families at +-30 deg in the x-y plane.  Uniaxial stress sigma along x, nu = 0: with eps_x, eps_y
    the fibre strain is e = eps_x c^2 + eps_y s^2 (c, s of 30 deg) and both families engage (same e).
    Equilibrium: sigma_x = E_m eps_x + 2 E_f e c^2, 0 = sigma_y = E_m eps_y + 2 E_f e s^2, solved below."""
    t = np.radians(30.0)
    c2, s2 = np.cos(t) ** 2, np.sin(t) ** 2
    res = solve(_bar([[np.cos(t), np.sin(t), 0.0], [np.cos(t), -np.sin(t), 0.0]]), nodal=False)
    sigma = F / (W * W)
    M = np.array([[EM + 2 * EF * c2 * c2, 2 * EF * c2 * s2], [2 * EF * s2 * c2, EM + 2 * EF * s2 * s2]])
    eps_x, eps_y = np.linalg.solve(M, [sigma, 0.0])
    assert eps_y < 0 < eps_x * c2 + eps_y * s2  # both families stretched: the case the formula covers
    got = _end(res, "tension")
    print(f"tension {got:.9f} (exact {eps_x * L:.9f})")
    assert got == pytest.approx(eps_x * L, rel=1e-8)
    assert _end(res, "compression") == pytest.approx(-F * L / (EM * W * W), rel=1e-8)
