"""Strength analysis of the case layer (fembone.cases.strength_run) on a block with an exact answer.

A prismatic block (W x W x H) of one bone region under a platen in *uniaxial* compression: the
platen reference point ties only the top face's z displacements, the bottom face rests on
rollers (z = 0), two symmetry faces on rollers (x = 0, y = 0).  Every point carries the same
uniaxial stress, so with a strain-based perfectly plastic law (yield stress eps_yc E):

* the force-displacement curve is F = min(E A d / H, eps_yc E A): the strength (peak) is
  eps_yc E A exactly, reached at d = eps_yc H, and the first yield is the same point;
* the offset yield point (line of the initial stiffness shifted by 0.2 % of H) lies on the
  plateau: also eps_yc E A;
* a column of elements of half the stiffness beside the rest (mixed elements, E_el = E / 2,
  same bone law; Poisson's ratio 0 so that the columns' lateral strains agree and each stays
  in uniaxial stress) yields at the same strain eps_yc, i.e. at sigma = eps_yc E / 2: with an
  area share a of the soft column, F_peak = eps_yc E A (1 - a / 2), reached at d = eps_yc H
  (with the law's stresses not scaled by E_el / E the soft column would yield at 2 eps_yc,
  and F_peak would be eps_yc E A).

Units: mm, N, MPa.
"""

from __future__ import annotations

import numpy as np
import pytest

from fembone.cases.analysis import AnalysisSpec
from fembone.cases.strength_run import run_strength
from fembone.core.constraints import ConstraintSet, DofLayout
from fembone.core.materials import Isotropic
from fembone.core.meshgen import box_mesh
from fembone.core.model import Model, ReferencePoint
from fembone.spine.strength import BoneLaw

E, NU = 800.0, 0.3
W, H = 4.0, 6.0
A = W * W
EPS_C, EPS_T = 0.010, 0.008
LAW = BoneLaw("pp", EPS_C, EPS_T, "perfectly_plastic")


def block(soft_column: bool = False) -> Model:
    nu = 0.0 if soft_column else NU
    mesh = box_mesh((W, W, H), (4, 2, 6), order=1)
    ne = mesh.n_elements
    mesh.cell_sets["trabecular"] = np.arange(ne)
    mat = Isotropic(name="trabecular", E=E, nu=nu)
    C = np.broadcast_to(mat.stiffness(), (ne, 6, 6)).copy()
    if soft_column:  # the elements with x < 1 mm (a quarter of the section): half the stiffness of the bone phase
        C[mesh.centroids()[:, 0] < 1.0] *= 0.5
    lay = DofLayout(mesh.n_nodes)
    top = np.unique(mesh.facet_sets["zmax"])
    at = np.array([W / 2, W / 2, H])
    j = int(lay.add_extra(at[None, :])[0])
    cs = ConstraintSet(lay)
    nodes = lambda f: np.unique(mesh.facet_sets[f])
    cs.fix(3 * nodes("zmin") + 2, label="bottom rollers")
    cs.fix(3 * nodes("xmin"), label="x symmetry")
    cs.fix(3 * nodes("ymin") + 1, label="y symmetry")
    rd = lay.extra_dofs(j)[0]
    cs.fix(rd[[0, 1, 3, 4, 5]], label="platen: z only")
    cs.tie(3 * top + 2, np.full(len(top), rd[2]), np.ones(len(top)), label="platen (z)")
    m = Model("block", mesh, [mat], np.zeros(ne, int), C, lay, cs)
    m.points["superior"] = ReferencePoint("superior", j, at, "rigid", top)
    m.meta.update(_trabecular_share=np.ones(ne), _cortical_share=np.zeros(ne), materials={"trabecular_density": 0.2})
    return m


def spec(dmax: float, steps: int) -> AnalysisSpec:
    return AnalysisSpec("strength", dmax, steps, {"trabecular": LAW, "cortical_shell": None, "posterior_elements": None},
                        tolerance=1e-9, stop_after_peak=None)


def test_perfectly_plastic_block_peak_is_yield_stress_times_area():
    run = run_strength(block(), spec(3 * EPS_C * H, 6))
    s = run.summary
    Fy = EPS_C * E * A  # 128 N
    assert s["strength"] == pytest.approx(Fy, rel=1e-7)
    assert s["initial_stiffness"] == pytest.approx(E * A / H, rel=1e-9)
    assert s["first_yield_force"] == pytest.approx(Fy, rel=1e-7)
    assert s["first_yield_displacement"] == pytest.approx(EPS_C * H, rel=1e-7)
    assert s["yield_force"] == pytest.approx(Fy, rel=1e-7)
    d, F = np.array(s["curve"]["displacement"]), np.array(s["curve"]["force"])
    assert F == pytest.approx(np.minimum(E * A * d / H, Fy), rel=1e-7, abs=1e-9)
    assert s["yielded_volume_fraction_at_peak"] == pytest.approx(1.0)


def test_half_stiffness_column_yields_at_the_same_strain():
    run = run_strength(block(soft_column=True), spec(2 * EPS_C * H, 6))
    s = run.summary
    Fy = EPS_C * E * A * (1.0 - 0.25 / 2.0)  # 112 N
    assert s["strength"] == pytest.approx(Fy, rel=1e-7)
    assert s["initial_stiffness"] == pytest.approx(E * A * (1.0 - 0.25 / 2.0) / H, rel=1e-9)
    assert s["first_yield_displacement"] == pytest.approx(EPS_C * H, rel=1e-7)
    assert s["yielded_volume_fraction_at_peak"] == pytest.approx(1.0)
