"""Yield stress of the bone laws with the published strains, end to end: a bar of "trabecular bone" through the strength
pipeline (fembone.cases.strength_run.bone_plastic_set -> fembone.core.nonlinear.solve_path) and
the laws given to a generated vertebra, against the published yield strains times E.

The bone laws are strain based: sigma_yc = eps_yc E, sigma_yt = eps_yt E with E the element's
own modulus (trabecular eps_yc = 0.84 %, eps_yt = 0.78 %: Kopperdahl & Keaveny, J Biomech
31:601, 1998; cortical 1.04 % / 0.73 %: Bayraktar et al., J Biomech 37:27, 2004).  A bar in
uniaxial stress therefore carries at most A eps_y E (perfectly plastic, and the peak of the
Keyak 2001 plateau-then-softening law); elements of a mixed (lesion or cement) share keep
the strains, so the bar with half the modulus carries half.  A factor on the yield stress
anywhere between the law and the path shows up here.  Units: mm, N, MPa.
"""

from __future__ import annotations

import numpy as np
import pytest

from fembone.cases import build_model
from fembone.cases.strength_run import bone_plastic_set
from fembone.core.constraints import ConstraintSet, DofLayout
from fembone.core.materials import Isotropic
from fembone.core.meshgen import box_mesh
from fembone.core.model import Model
from fembone.core.nonlinear import PathOptions, solve_path
from fembone.spine.strength import CORTICAL, DEFAULT_LAWS, TRABECULAR, BoneLaw

# published yield strains (see the module docstring), written out here rather than imported
EPS = {"trabecular": (0.0084, 0.0078), "cortical_shell": (0.0104, 0.0073)}
E_BONE = 4730.0 * 0.2**1.56  # MPa, Morgan et al. 2003 at rho_app = 0.2 g/cm^3 (the normal preset)
L, W = 10.0, 2.0  # bar length and side, mm
A = W * W


def bar_model(scale: float) -> Model:
    """A bar whose elements are all "trabecular" with modulus scale x E_BONE (scale < 1: a mixed share)."""
    mesh = box_mesh((L, W, W), (5, 2, 2), order=1)
    mat = Isotropic(name="trabecular", E=E_BONE, nu=0.3)
    lay = DofLayout(mesh.n_nodes)
    C = np.broadcast_to(scale * mat.stiffness(), (mesh.n_elements, 6, 6)).copy()
    m = Model("bar", mesh, [mat], np.zeros(mesh.n_elements, int), C, lay, ConstraintSet(lay))
    m.meta["_trabecular_share"] = np.full(mesh.n_elements, 0.7 if scale < 1 else 1.0)
    m.meta["_cortical_share"] = np.zeros(mesh.n_elements)
    m.meta["materials"] = {"trabecular_density": 0.2}
    return m


def pull(m: Model, law: BoneLaw, sign: float, d_max: float, steps: int):
    mesh = m.mesh
    nodes = lambda f: np.unique(mesh.facet_sets[f])
    m.constraints.fix(3 * nodes("xmin"), label="x = 0")
    m.constraints.fix(3 * nodes("ymin") + 1, label="y = 0")
    m.constraints.fix(3 * nodes("zmin") + 2, label="z = 0")
    ctrl = 3 * nodes("xmax")
    m.constraints.fix(ctrl, 0.0, label="end")
    pset, _, _, _ = bone_plastic_set(m, {"trabecular": law})
    return solve_path(m, pset, ctrl, np.full(len(ctrl), sign * d_max), PathOptions(steps=steps, rtol=1e-10))


@pytest.mark.parametrize("scale", [1.0, 0.5], ids=["bone", "mixed-half"])
def test_bar_tensile_strength_is_tensile_yield_strain_times_modulus_times_area(scale):
    """Perfectly plastic trabecular law in tension (the compressive side, through run_strength, is
    tests/verification/test_strength_exact.py): the force plateaus at A eps_yt (scale E) exactly,
    i.e. the tension/compression ratio of bone_plastic_set is the published one."""
    law = BoneLaw("t", *EPS["trabecular"], "perfectly_plastic")
    sign, which = 1.0, 1
    eps_y = EPS["trabecular"][which]
    res = pull(bar_model(scale), law, sign, d_max=3.0 * eps_y * L, steps=12)
    exact = A * eps_y * scale * E_BONE
    assert res.force.max() == pytest.approx(exact, rel=1e-8), (res.force.max(), exact)
    assert res.force[-1] == pytest.approx(exact, rel=1e-8)


def test_keyak_law_peaks_at_the_compressive_yield_load():
    """The default trabecular law (yield, Keyak plateau of 0.56 % at rho_app 0.2, then softening):
    in compression to 1.2 eps_yc (inside the plateau) the force reaches and holds A eps_yc E."""
    eps_y = EPS["trabecular"][0]
    res = pull(bar_model(1.0), TRABECULAR, -1.0, d_max=1.2 * eps_y * L, steps=12)
    exact = A * eps_y * E_BONE
    assert res.force.max() == pytest.approx(exact, rel=1e-8)
    assert res.force[-1] == pytest.approx(exact, rel=1e-8)


@pytest.fixture(scope="module")
def vertebra(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("FEMBONE_CACHE", str(tmp_path_factory.mktemp("yield-cache")))
    case = {"name": "y", "vertebra": {"level": "L1", "mesh_size": 6.0, "order": 1, "posterior": False},
            "materials": {"preset": "normal"}, "boundary": {"setup": "in_vitro"},
            "loadcases": {"c": [{"preset": "compression", "displacement": -0.1}]}}
    model = build_model(case, source="y.yaml")
    yield model
    mp.undo()


def test_vertebra_laws_yield_at_published_strains_times_element_modulus(vertebra):
    """Every plastic point of a generated L1 yields under uniaxial stress eps_y E_element (E from
    the element's own stiffness: E = mu (3 lam + 2 mu) / (lam + mu)), trabecular and cortical."""
    model = vertebra
    pset, _, nq, used = bone_plastic_set(model, DEFAULT_LAWS)
    assert used["trabecular"]["law"] == TRABECULAR.name and used["cortical_shell"]["law"] == CORTICAL.name
    C = model.C[pset.elements]
    lam, mu = C[:, 0, 1], C[:, 3, 3]
    E = np.repeat(mu * (3 * lam + 2 * mu) / (lam + mu), nq)
    trab = model.meta["_trabecular_share"][pset.elements]
    cort = model.meta["_cortical_share"][pset.elements]
    region = np.repeat(np.where((cort >= 0.5) & (cort > trab), 1, 0), nq)
    assert {0, 1} <= set(region.tolist())
    law = pset.law
    for which in (0, 1):  # compression, tension
        eps = np.where(region == 1, EPS["cortical_shell"][which], EPS["trabecular"][which])
        s = np.zeros((law.n, 6))
        s[:, 2] = (-1.0 if which == 0 else 1.0) * eps * E
        ratio = law.yield_ratio(s, np.zeros(law.n))
        assert np.abs(ratio - 1.0).max() < 1e-9, (which, ratio.min(), ratio.max())
