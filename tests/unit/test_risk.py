"""Risk metrics, cement stresses and spine materials against hand-computed values and closed forms.

Every expected number below is derived by hand in the comments next to it (closed forms,
small weighted sets sorted by hand), never copied from the code's output.
"""

from __future__ import annotations

import numpy as np
import pytest

from fembone.core.errors import InputError
from fembone.core.materials import Isotropic, TransverseIsotropic, isotropic_stiffness
from fembone.spine import cement, lesions, risk
from fembone.spine.bone import (
    balloon_radius,
    cement_bone_elastic,
    cement_bone_modulus,
    compacted_rim,
    hill_mix,
    morgan2003,
    vertebra_materials,
)
from fembone.spine.loads import LOAD_PRESET_SOURCES

E, NU = 1000.0, 0.3


def uniaxial_stress(ez: np.ndarray, E: float = E, nu: float = NU):
    """Strain and stress (n, 1, 3, 3) of uniaxial stress along z with axial strains ``ez``."""
    ez = np.asarray(ez, float)
    eps = np.zeros((len(ez), 1, 3, 3))
    eps[:, 0, 2, 2] = ez
    eps[:, 0, 0, 0] = eps[:, 0, 1, 1] = -nu * ez
    sig = np.zeros_like(eps)
    sig[:, 0, 2, 2] = E * ez
    return eps, sig


# -- effective strain: closed forms ------------------------------------------------------------
def test_effective_strain_closed_forms():
    # uniaxial stress: U = sigma^2 / (2E)  ->  eps_eff = sigma / E = |eps_zz|
    eps, sig = uniaxial_stress([-0.004, 0.0025])
    got = risk.effective_strain(eps, sig, np.full(2, E))[:, 0]
    assert got == pytest.approx([0.004, 0.0025], rel=1e-12)
    # uniaxial strain e (nu = 0.3): U = C33 e^2 / 2, C33 = E (1 - nu) / ((1 + nu)(1 - 2 nu))
    # eps_eff = e sqrt(0.7 / (1.3 * 0.4)) = e * 1.1602387...
    C = isotropic_stiffness(E, NU)
    e = np.zeros((1, 1, 3, 3))
    e[0, 0, 2, 2] = 0.003
    s = np.zeros_like(e)
    s[0, 0, 0, 0] = s[0, 0, 1, 1] = C[0, 2] * 0.003
    s[0, 0, 2, 2] = C[2, 2] * 0.003
    assert risk.effective_strain(e, s, np.array([E]))[0, 0] == pytest.approx(0.003 * 1.1602387, rel=1e-7)
    # pure shear gamma = 0.002: U = G gamma^2 / 2, eps_eff = gamma / sqrt(2 (1 + nu)) = 0.002 / 1.6124515
    g = 0.002
    e = np.zeros((1, 1, 3, 3))
    e[0, 0, 0, 1] = e[0, 0, 1, 0] = g / 2
    s = np.zeros_like(e)
    s[0, 0, 0, 1] = s[0, 0, 1, 0] = E / (2 * (1 + NU)) * g
    assert risk.effective_strain(e, s, np.array([E]))[0, 0] == pytest.approx(g / 1.6124515, rel=1e-7)


def test_young_modulus_of_stiffness():
    assert risk.young_modulus(isotropic_stiffness(np.array([500.0, 2000.0]), 0.3)) == pytest.approx([500.0, 2000.0])
    ti = TransverseIsotropic(name="t", E_axial=300.0, E_transverse=100.0, nu_axial=0.2, nu_transverse=0.2,
                             G_axial=60.0, axis=(0.0, 0.0, 1.0)).stiffness()
    assert risk.young_modulus(ti[None])[0] == pytest.approx(300.0)  # largest directional modulus = axial


# -- the 2 % criterion on a 10-point volume-weighted set -----------------------------------------
# volumes (mm^3), summing to 100, so each weight is also its percentage
W10 = np.array([1.0, 2, 3, 4, 10, 10, 10, 20, 20, 20])
EZ10 = np.array([-0.010, -0.008, -0.005, -0.004, -0.003, -0.002, -0.001, -0.0005, 0.0, 0.001])


def test_pistoia_quantile_by_hand_depends_on_critical_fraction():
    """eps_eff = |eps_zz|; multipliers 0.007/|e|: 0.7 (1 %), 0.875 (2 %), 1.4 (3 %), 1.75 (4 %), ...

    Cumulative volume 1, 3, 6, 10 %: the 2 % quantile is reached at the second point
    (lambda = 0.007 / 0.008 = 0.875); a 5 % criterion would give the third (1.4).  Failed at the
    applied load (eps_eff > 0.7 %): the first two points, 3 % of the volume.
    """
    eps, sig = uniaxial_stress(EZ10)
    r = risk.trabecular_failure(eps, sig, np.full(10, E), W10[:, None], np.ones(10))
    assert r["strength_multiplier"] == pytest.approx(0.875, rel=1e-12), "2 % quantile (5 % would give 1.4)"
    assert r["failed_volume_fraction"] == pytest.approx(0.03, rel=1e-12)
    assert r["tail_mixed_share"] == 0.0 and r["mixed_volume_share"] == 0.0
    assert risk.CRITICAL_FRACTION == 0.02


def test_principal_criterion_yield_strains():
    """Kopperdahl & Keaveny 1998: 0.84 % compression / 0.78 % tension.

    Compression governs the uniaxial compressive points (lateral strain 0.3 |e| / 0.0078 is
    smaller than |e| / 0.0084); multipliers 0.0084 / 0.010 = 0.84 (1 %), 0.0084 / 0.008 = 1.05
    (cum 3 %) -> 2 % quantile 1.05; failed at load: only the first point (0.84 < 1): 1 %.
    The tensile point 0.001: 0.0078 / 0.001 = 7.8.
    """
    eps, _ = uniaxial_stress(EZ10)
    r = risk.trabecular_failure(eps, None, None, W10[:, None], np.ones(10), criterion="principal")
    assert r["strength_multiplier"] == pytest.approx(1.05, rel=1e-12)
    assert r["failed_volume_fraction"] == pytest.approx(0.01, rel=1e-12)
    lam = risk.yield_multipliers(eps)[:, 0]
    assert lam[-1] == pytest.approx(7.8, rel=1e-12)


def test_rim_share_and_exclusion():
    """The two most strained elements are 90 % trabecular (mixed rim elements).

    Weights 0.9, 1.8, 3, 4, ... total 99.7; 2 % = 1.994 is reached at cum 2.7 (second point,
    lambda 0.875): the whole tail lies in mixed elements (share 1).  Excluding the rim: total
    97, 2 % = 1.94 reached at the third point (weight 3, lambda 0.007 / 0.005 = 1.4).  Failed
    volume with the rim 2.7 / 99.7, without 0.
    """
    eps, sig = uniaxial_stress(EZ10)
    share = np.ones(10)
    share[:2] = 0.9
    r = risk.trabecular_failure(eps, sig, np.full(10, E), W10[:, None], share, rim_exclusion=True)
    assert r["tail_mixed_share"] == pytest.approx(1.0)
    assert r["mixed_volume_share"] == pytest.approx(2.7 / 99.7, rel=1e-12)
    assert r["strength_multiplier_with_rim"] == pytest.approx(0.875, rel=1e-12)
    assert r["strength_multiplier"] == pytest.approx(1.4, rel=1e-12)
    assert r["failed_volume_fraction_with_rim"] == pytest.approx(2.7 / 99.7, rel=1e-12)
    assert r["failed_volume_fraction"] == 0.0


def test_cortex_judged_separately():
    """Cortical yield 1.04 % compression (Bayraktar 2004): e = -1.3 % -> 0.8, e = -0.5 % -> 2.08.

    Weights 1 and 99 (cortex share 1), a third element (share 0) is ignored: failed share 1 %,
    first yield 0.8, 2 % quantile 2.08.
    """
    eps, _ = uniaxial_stress([-0.013, -0.005, -0.02])
    r = risk.cortical_failure(eps, np.array([[1.0], [99.0], [1000.0]]), np.array([1.0, 1.0, 0.0]))
    assert r["cortex_failed_volume_fraction"] == pytest.approx(0.01, rel=1e-12)
    assert r["cortex_first_yield_multiplier"] == pytest.approx(0.8, rel=1e-12)
    assert r["cortex_strength_multiplier"] == pytest.approx(2.08, rel=1e-12)


# -- strength with the preload held fixed ----------------------------------------------------------
# bending strains of the moment alone (7500 N mm) and the points' volumes (sum 100)
M_EZ = np.array([-0.004, -0.003, 0.004, -0.002, -0.001, 0.0, 0.001, 0.002, 0.003, 0.0035])
M_W = np.array([1.0, 2, 3, 4, 10, 10, 10, 20, 20, 20])


def test_moment_strength_with_fixed_preload_effective():
    """Preload: uniform eps_zz = -0.2 %; moment: eps_zz = m_i.  |-0.002 + lambda m| = 0.007 gives

    m < 0: lambda = 0.005 / |m| -> 1.25 (1 %), 1.6667 (2 %), 2.5, 5;  m > 0: lambda = 0.009 / m ->
    2.25 (3 %), 2.571, 3, 4.5, 9.  Sorted: 1.25 (cum 1), 5/3 (cum 3) -> lambda = 5/3 and the
    moment strength 5/3 x 7500 = 12500 N mm.  (Scaling the preload with the moment, the old
    way, would give 0.007 / 0.006 = 1.1667.)
    """
    eps_m, sig_m = uniaxial_stress(M_EZ)
    eps_p, sig_p = uniaxial_stress(np.full(10, -0.002))
    r = risk.strength_with_preload(eps_m, sig_m, np.full(10, E), M_W[:, None], np.ones(10), 7500.0, eps_p, sig_p)
    assert r["strength"] == pytest.approx(12500.0, rel=1e-8)
    assert r["strength_multiplier"] == pytest.approx(5.0 / 3.0, rel=1e-8)
    assert r["preload_failed_fraction"] == 0.0


def test_moment_strength_with_fixed_preload_principal():
    """Principal criterion: compression (0.84 %) at m < 0: lambda = 0.0064 / |m| -> 1.6 (1 %),
    2.1333 (2 %); tension (0.78 %) at m > 0: 0.0098 / m -> 2.45 (3 %).  lambda = 2.1333,
    moment strength 16000 N mm."""
    eps_m, _ = uniaxial_stress(M_EZ)
    eps_p, _ = uniaxial_stress(np.full(10, -0.002))
    r = risk.strength_with_preload(eps_m, None, None, M_W[:, None], np.ones(10), 7500.0, eps_p, None, criterion="principal")
    assert r["strength"] == pytest.approx(16000.0, rel=1e-8)


def test_plain_force_strength_and_preload_that_already_fails():
    """No preload: the force case, strength = 0.875 x 800 N = 700 N (the 10-point set above);
    the bisection path (a zero preload) agrees.  A preload of -0.8 % everywhere fails alone: 0."""
    eps, sig = uniaxial_stress(EZ10)
    Ee = np.full(10, E)
    r = risk.strength_with_preload(eps, sig, Ee, W10[:, None], np.ones(10), 800.0)
    assert r["strength"] == pytest.approx(700.0, rel=1e-12)
    z = np.zeros_like(eps)
    rb = risk.strength_with_preload(eps, sig, Ee, W10[:, None], np.ones(10), 800.0, z, z)
    assert rb["strength"] == pytest.approx(700.0, rel=1e-8)
    big, bigs = uniaxial_stress(np.full(10, -0.008))
    r0 = risk.strength_with_preload(eps, sig, Ee, W10[:, None], np.ones(10), 800.0, big, bigs)
    assert r0["strength"] == 0.0 and r0["preload_failed_fraction"] == 1.0


# -- posterior-wall bulge -------------------------------------------------------------------------
def union_jack():
    """3 x 3 nodes on [-1, 1]^2 at z = 0, 8 triangles with all diagonals through the centre,
    counter-clockwise seen from +z (outward normal +z).  Mirror-symmetric in x and y."""
    xs = np.array([-1.0, 0.0, 1.0])
    X, Y = np.meshgrid(xs, xs, indexing="xy")
    pts = np.column_stack([X.ravel(), Y.ravel(), np.zeros(9)])
    idx = {(int(x), int(y)): i for i, (x, y, _) in enumerate(pts)}
    c = idx[(0, 0)]
    tri = [[c, idx[(1, 0)], idx[(1, 1)]], [c, idx[(1, 1)], idx[(0, 1)]],
           [c, idx[(0, 1)], idx[(-1, 1)]], [c, idx[(-1, 1)], idx[(-1, 0)]],
           [c, idx[(-1, 0)], idx[(-1, -1)]], [c, idx[(-1, -1)], idx[(0, -1)]],
           [c, idx[(0, -1)], idx[(1, -1)]], [c, idx[(1, -1)], idx[(1, 0)]]]
    return pts, np.array(tri)


def test_bulge_of_rigid_motion_is_zero():
    pts, tri = union_jack()
    theta = np.array([0.01, -0.02, 0.005])
    u = np.array([0.1, -0.2, 0.3]) + np.cross(theta, pts - np.array([5.0, 2.0, -1.0]))
    assert abs(risk.bulge(u, pts, tri)) < 1e-12
    # the old measure counts the rigid motion: u_z = 0.3 + 0.01 (y - 2) + 0.02 (x - 5), max 0.21 at (1, 1)
    assert risk.bulge_absolute(u, pts, tri) == pytest.approx(0.21, rel=1e-12)


def test_bulge_of_bending_by_hand():
    """u_z = a x^2 + b y + c0 (bending plus tilt plus translation), a = 0.2, b = 0.05, c0 = 0.1.

    Node weights: each triangle (area 1/2) gives 1/6 to each corner.  In every unit square the
    nodes with |x| = 1 collect 0.5 whichever diagonal is drawn, so sum w x^2 = 4 x 0.5 = 2 of
    a total weight 4: mean x^2 = 1/2.  By mirror symmetry the least-squares rigid fit of u_z is
    0.5 a + b y + c0 (the tilt b y and c0 are rigid), leaving a (x^2 - 1/2): the bulge is
    a / 2 = 0.1 mm.  The absolute bulge is max u_z = a + b + c0 = 0.35 mm.
    """
    pts, tri = union_jack()
    a, b, c0 = 0.2, 0.05, 0.1
    u = np.zeros_like(pts)
    u[:, 2] = a * pts[:, 0] ** 2 + b * pts[:, 1] + c0
    assert risk.bulge(u, pts, tri) == pytest.approx(0.1, rel=1e-12)
    assert risk.bulge_absolute(u, pts, tri) == pytest.approx(0.35, rel=1e-12)


# -- cement ------------------------------------------------------------------------------------------
def test_cement_utilisation_by_hand():
    """Bulk region, 4 points with volume shares 0.5, 0.3, 0.195, 0.005 and principal stresses
    (min, max) = (-10, 1), (-20, 2), (-30, 3), (-60, 12) MPa.  Cumulative volume of the sorted
    compressive stress 10, 20, 30, 60: 0.5, 0.8, 0.995, 1 -> 99th percentile 30 MPa, max 60;
    tension 3 and 12.  Ratios: 30/70 = 0.428571, 60/70 = 0.857143, 3/25 = 0.12, 12/25 = 0.48.
    The interdigitated region (share 0.5 of a fifth element under -7 MPa) counts half its volume.
    """
    smin = np.array([-10.0, -20, -30, -60, -7])
    smax = np.array([1.0, 2, 3, 12, 0])
    s = np.zeros((5, 1, 3, 3))
    s[:, 0, 0, 0], s[:, 0, 2, 2] = smax, smin
    wdet = np.array([[0.5], [0.3], [0.195], [0.005], [2.0]])
    bulk = np.array([1.0, 1, 1, 1, 0])
    inter = np.array([0.0, 0, 0, 0, 0.5])
    r = cement.cement_utilisation(s, wdet, {"bulk": bulk, "interdigitated": inter, "none": np.zeros(5)})
    assert r["cement_bulk_compression_p99"] == 30.0 and r["cement_bulk_compression_max"] == 60.0
    assert r["cement_bulk_tension_p99"] == 3.0 and r["cement_bulk_tension_max"] == 12.0
    assert r["cement_bulk_compression_ratio_p99"] == pytest.approx(0.428571, rel=1e-5)
    assert r["cement_bulk_compression_ratio_max"] == pytest.approx(0.857143, rel=1e-5)
    assert r["cement_bulk_tension_ratio_p99"] == pytest.approx(0.12)
    assert r["cement_bulk_tension_ratio_max"] == pytest.approx(0.48)
    assert r["cement_bulk_utilisation"] == pytest.approx(0.428571, rel=1e-5)
    assert r["cement_interdigitated_compression_max"] == 7.0
    assert r["cement_interdigitated_volume"] == pytest.approx(1.0)
    assert not any(k.startswith("cement_none") for k in r)


def test_cement_phase_stress_iso_strain():
    """Uniaxial strain e = -1 % in PMMA (E 3000, nu 0.4): sigma_zz = E (1 - nu) / ((1 + nu)(1 - 2 nu)) e
    = 3000 x 0.6 / 0.28 x (-0.01) = -64.2857 MPa, sigma_xx = E nu / 0.28 e = -42.8571 MPa."""
    eps = np.zeros((1, 1, 3, 3))
    eps[0, 0, 2, 2] = -0.01
    s = cement.cement_phase_stress(eps, isotropic_stiffness(3000.0, 0.4))
    assert s[0, 0, 2, 2] == pytest.approx(-64.2857, rel=1e-5)
    assert s[0, 0, 0, 0] == pytest.approx(-42.8571, rel=1e-5)


def test_cement_bone_modulus_by_hand():
    """Tissue 18 GPa (nu 0.3), PMMA 3 GPa (nu 0.4), tissue density 2.0.

    K_t = 18000 / 1.2 = 15000, G_t = 18000 / 2.6 = 6923.077; K_c = 3000 / 0.6 = 5000, G_c = 3000 / 2.8 = 1071.429.
    rho 0.2: BV/TV 0.1.  K_V = 1500 + 4500 = 6000, K_R = 1 / (0.1/15000 + 0.9/5000) = 5357.143,
      K = 5678.571; G_V = 692.308 + 964.286 = 1656.593, G_R = 1 / (0.1/6923.077 + 0.9/1071.429) = 1170.351,
      G = 1413.472; E = 9 K G / (3 K + G) = 3915.54 MPa.
    rho 0.1: BV/TV 0.05.  K = (5500 + 5172.414) / 2 = 5336.207; G = (1364.011 + 1118.707) / 2 = 1241.359;
      E = 3456.08 MPa.
    """
    assert cement_bone_modulus(0.2, 3000.0, 0.4) == pytest.approx(3915.54, rel=2e-6)
    assert cement_bone_modulus(0.1, 3000.0, 0.4) == pytest.approx(3456.08, rel=2e-6)
    lo, hi = (cement_bone_modulus(0.2, 3000.0, 0.4, method=m) for m in ("hs_lower", "hs_upper"))
    assert lo < 3915.54 * (1 + 1e-9) and lo < hi  # HS bounds bracket each other
    _, nu = cement_bone_elastic(0.2, 3000.0, 0.4)
    assert nu == pytest.approx((3 * 5678.571 - 2 * 1413.472) / (2 * (3 * 5678.571 + 1413.472)), rel=1e-5)


def test_old_composite_counted_porosity_twice():
    """Old rule: Hill(PMMA: phi, apparent trabecular E_app: 1 - phi), phi = 0.85.  With empty
    pores (E_pmma -> 0) Reuss -> 0 and Hill -> (1 - phi) C_app / 2: E = 0.075 E_app -- the porous
    bone, with nothing added, 13 times softer than itself.  The tissue-based rule with empty
    pores gives Hill -> BV/TV C_tissue / 2, E = 0.1 x 18000 / 2 = 900 MPa at rho 0.2, which does
    not involve E_app at all (porosity counted once)."""
    E_app = float(morgan2003(0.2))
    tiny = 1e-6
    C = hill_mix(np.array([isotropic_stiffness(tiny, 0.4), isotropic_stiffness(E_app, 0.2)]), np.array([[0.85, 0.15]]))[0]
    E_old = 1.0 / np.linalg.inv(C)[2, 2]
    assert E_old == pytest.approx(0.075 * E_app, rel=1e-4)
    assert cement_bone_modulus(0.2, tiny, 0.4) == pytest.approx(900.0, rel=1e-4)


def test_vertebra_materials_porosity_follows_density():
    mats, info = vertebra_materials({"preset": "normal", "trabecular": {"density": 0.15}})
    assert info["porosity"] == pytest.approx(1 - 0.15 / 2.0)
    # Hashin-Shtrikman lower bound (PMMA the matrix) times Kinzl 2012's measured interface (0.80)
    # and shrinkage (0.76) factors
    hs = cement_bone_modulus(0.15, 3000.0, 0.4, method="hs_lower")
    assert mats["cement_bone"].E == pytest.approx(0.80 * 0.76 * hs), f"{mats['cement_bone'].E} vs {0.608 * hs}"
    with pytest.raises(InputError, match="apparent density"):
        cement_bone_modulus(2.5, 3000.0, 0.4)


# -- kyphoplasty rim, void lesions, presets ------------------------------------------------------
def test_compacted_rim_mass_conservation_by_hand():
    """rho 0.2, cavity r = 5 mm, rim t = 1 mm: the shell 5-6 mm holds the bone of the 6 mm sphere:
    rho_rim = 0.2 x 6^3 / (6^3 - 5^3) = 0.2 x 216 / 91 = 0.474725 g/cm^3."""
    assert compacted_rim(0.2, 5.0, 1.0) == pytest.approx(0.474725, rel=1e-6)
    # 3 mL balloon: r = (3 x 3000 / (4 pi))^(1/3) = 716.197^(1/3) = 8.9470 mm
    assert balloon_radius(3.0) == pytest.approx(8.9470, rel=1e-4)
    with pytest.raises(InputError, match="rim_thickness"):
        compacted_rim(0.5, 10.0, 0.1)  # 0.5 x 1030.301 / 30.301 = 17 g/cm^3 > tissue


def test_void_stiffness_is_voigt_with_a_void():
    C = Isotropic(name="b", E=400.0, nu=0.2).stiffness()
    out = lesions.void_stiffness(C, np.array([0.0, 0.1, 1.0]))
    assert out[1] == pytest.approx(0.9 * C)
    assert out[2] == pytest.approx(1e-6 * C)
    assert out[0] == pytest.approx(C)


def test_lifting_preset_cites_a_force_measurement():
    lift = LOAD_PRESET_SOURCES["lifting"]
    assert lift["magnitude"] == 1650.0 and lift["unit"] == "N"
    assert "PLoS One 9:e98510" in lift["source"] and "PRESSURE" in lift["source"]
