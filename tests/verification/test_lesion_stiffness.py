"""The lytic lesion's effect on stiffness, pinned against independently derived numbers.

Preset under test (fembone.spine.bone): lytic tumour tissue E = 2 MPa, nu = 0.45 (nearly
incompressible soft tissue; Whyne, Hu & Lotz, J Biomech 34:1317, 2001, studied tumour moduli
of about 0.4-10 MPa; value recorded as unverified in shared/design/field.md).  The constants
below are written here, not read from the code.

1. Layered column (exact).  A 10 x 10 x 24 mm box whose element sets carry the vertebra
   group names, in layers along z: cortical_shell [0, 2], trabecular [2, 22] with a lytic
   lesion painted over the slab [10, 14] (an ellipsoid with 1 m in-plane radii and 2 mm
   half-height, so whole elements lie inside or outside it), posterior_elements [22, 24].
   The bone layers get explicit E, nu in the case; only the lesion keeps its preset.
   Pressure p on the top face, bottom on rollers.
   * Lateral faces on rollers (uniaxial strain): each layer carries sigma_zz = M_i eps_i with
     the constrained modulus M = E (1 - nu)/((1 + nu)(1 - 2 nu)), lateral strains are zero in
     every layer, so the top displacement is exactly u = p sum L_i / M_i (in the FE space:
     piecewise linear in z).
   * Lateral faces free, all nu = 0 (overridden): uniaxial stress, u = p sum L_i / E_i.
   * Lateral faces free, preset nu: the layers' lateral strains differ, so there is no
     closed form, but the energy principles bound it.  Uniform uniaxial stress is statically
     admissible: u <= p sum L_i / E_i (Reuss; complementary energy; the FE solution is
     stiffer still).  The fields (u_x, u_y, u_z) = (a (x+5), a (y+5), piecewise linear in z)
     are in the FE space: minimising the potential energy over a and the layer strains gives
     a lower bound on u (Voigt-type).
2. Generated L1 vertebra (rigorous one-sided bound).  With the intact displacement u0 as a
   trial field for the lesioned model (minimum potential energy), the lesioned compliance
   satisfies c_les >= c0 + sum_e V_e eps0 : (C_bone - C_lesion) : eps0 / F^2, the sum over
   trabecular elements wholly inside the lesion sphere (elsewhere the mixed stiffness is
   still <= C_bone, which only strengthens the inequality).  A lesion with the stiffness of
   bone gives c_les = c0 and fails it.

Every failing assertion prints the measured and expected values.
"""

from __future__ import annotations

import numpy as np
import pytest

from fembone.cases import build_model
from fembone.core.analysis import solve
from fembone.core.meshgen import box_mesh, write_mesh

E_LYTIC, NU_LYTIC = 2.0, 0.45  # preset lytic tumour tissue (MPa, -)
BONE = {  # explicit bone layers of the column (MPa, -)
    "cortical_shell": (12000.0, 0.3),
    "trabecular": (350.0, 0.2),
    "posterior_elements": (3500.0, 0.25),
}
W = 10.0  # column width (mm)
A = W * W
P = 1.0  # pressure (MPa)
# layers bottom to top: (material, thickness mm)
LAYERS = [("cortical_shell", 2.0), ("trabecular", 8.0), ("lesion", 4.0), ("trabecular", 8.0), ("posterior_elements", 2.0)]
H = sum(t for _, t in LAYERS)


def constrained_modulus(E, nu):
    return E * (1 - nu) / ((1 + nu) * (1 - 2 * nu))


def lame(E, nu):
    return E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))


def layer_props(nu_override=None):
    """(thickness, E, nu) per layer, the lesion with the preset values above."""
    out = []
    for name, t in LAYERS:
        E, nu = (E_LYTIC, NU_LYTIC) if name == "lesion" else BONE[name]
        out.append((t, E, nu if nu_override is None else nu_override))
    return out


@pytest.fixture(scope="module")
def column_file(tmp_path_factory):
    zs = np.arange(0.0, H + 1e-9, 2.0)
    m = box_mesh(coords=(np.linspace(-W / 2, W / 2, 3), np.linspace(-W / 2, W / 2, 3), zs))
    cz = m.centroids()[:, 2]
    m.cell_sets["cortical_shell"] = np.flatnonzero(cz < 2.0)
    m.cell_sets["trabecular"] = np.flatnonzero((cz > 2.0) & (cz < H - 2.0))
    m.cell_sets["posterior_elements"] = np.flatnonzero(cz > H - 2.0)
    m.facet_sets["endplate_inferior"] = m.facet_sets["zmin"]
    m.facet_sets["endplate_superior"] = m.facet_sets["zmax"]
    m.facet_sets["posterior_wall"] = m.facet_sets["ymin"]
    p = tmp_path_factory.mktemp("lesion-column") / "column.msh"
    write_mesh(m, p)
    return str(p)


def node_box(x, y, z, tol=1e-3):
    return {"box": {"min": [x - tol, y - tol, z - tol], "max": [x + tol, y + tol, z + tol]}}


ROLLERS = [
    {"where": {"set": "zmin"}, "fix": ["z"]},
    {"where": node_box(-W / 2, -W / 2, 0.0), "fix": ["x", "y"]},
    {"where": node_box(W / 2, -W / 2, 0.0), "fix": ["y"]},
]
CONFINED = [{"where": {"set": s}, "fix": [s[0]]} for s in ("xmin", "xmax", "ymin", "ymax")] + [{"where": {"set": "zmin"}, "fix": ["z"]}]


def column(column_file, constraints, nu_override=None):
    """Solve the layered column; returns (model, work-conjugate top displacement 2U/(pA) in mm)."""
    mats = {"preset": "normal"}
    for name, (E, nu) in BONE.items():
        mats[name] = {"E": E, "nu": nu if nu_override is None else nu_override}
    if nu_override is not None:
        mats["lesion_lytic"] = {"nu": nu_override}  # E stays the preset's
    case = {
        "name": "lesion-column",
        "mesh": column_file,
        "materials": mats,
        "lesions": [{"type": "lytic", "center": [0.0, 0.0, 12.0], "radii": [1000.0, 1000.0, 2.0]}],
        "constraints": constraints,
        "loadcases": {"push": [{"where": {"set": "zmax"}, "pressure": P}]},
    }
    model = build_model(case, base=".", source="test_lesion_stiffness")
    lc = solve(model).loadcases["push"]
    return model, 2.0 * lc.strain_energy / (P * A)


def test_lesion_painted_on_whole_slab(column_file):
    """Precondition of the closed forms: the lesion covers exactly the 4 mm slab, whole elements."""
    model, _ = column(column_file, CONFINED)
    f = model.cell_data["lesion_fraction"]
    cz = model.mesh.centroids()[:, 2]
    slab = (cz > 10.0) & (cz < 14.0)
    vol = model.meta["volumes"]["lesion"]
    print(f"lesion fraction in slab: min {f[slab].min()}, outside max {f[~slab].max()}; lesion volume {vol} mm^3 (expected {4.0 * A})")
    assert np.all(f[slab] == 1.0) and np.all(f[~slab] == 0.0)
    assert vol == pytest.approx(4.0 * A, rel=1e-12)


def test_confined_column_series_of_constrained_moduli(column_file):
    """Uniaxial strain: u = p sum L_i / M_i exactly (lesion E and nu both enter through M)."""
    _, u = column(column_file, CONFINED)
    props = layer_props()
    exp = P * sum(t / constrained_modulus(E, nu) for t, E, nu in props)
    les = P * 4.0 / constrained_modulus(E_LYTIC, NU_LYTIC)
    as_bone = exp - les + P * 4.0 / constrained_modulus(*BONE["trabecular"])
    msg = (f"confined column: top displacement {u:.12g} mm, expected p sum L/M = {exp:.12g} (rel err {u / exp - 1:.2e}); "
           f"the lesion slab alone {les:.6g} mm; with a bone-stiff lesion it would be {as_bone:.6g} mm")
    print(msg)
    assert u == pytest.approx(exp, rel=1e-9), msg


def test_free_column_nu0_series_of_moduli(column_file):
    """All nu = 0, lateral faces free: uniaxial stress, u = p sum L_i / E_i exactly (pins the lesion E)."""
    _, u = column(column_file, ROLLERS, nu_override=0.0)
    exp = P * sum(t / E for t, E, _ in layer_props(0.0))
    msg = f"free column, nu = 0: top displacement {u:.12g} mm, expected p sum L/E = {exp:.12g} (rel err {u / exp - 1:.2e})"
    print(msg)
    assert u == pytest.approx(exp, rel=1e-9), msg


def kinematic_bound(props):
    """Least potential energy over u = (a (x+5), a (y+5), piecewise linear in z): strains
    diag(a, a, b_i) per layer; returns the work-conjugate top displacement (a lower bound)."""
    n = len(props)
    K = np.zeros((n + 1, n + 1))
    rhs = np.zeros(n + 1)
    for i, (t, E, nu) in enumerate(props):
        lam, mu = lame(E, nu)
        # energy density 1/2 [lam (2a + b)^2 + 2 mu (2 a^2 + b^2)], times t; work p sum t b (compression b < 0)
        K[0, 0] += t * (4 * lam + 4 * mu)
        K[0, i + 1] += t * 2 * lam
        K[i + 1, 0] += t * 2 * lam
        K[i + 1, i + 1] += t * (lam + 2 * mu)
        rhs[i + 1] = -P * t
    sol = np.linalg.solve(K, rhs)
    return -sum(t * b for (t, _, _), b in zip(props, sol[1:]))


def test_free_column_between_energy_bounds(column_file):
    """Preset nu, lateral faces free: kinematic (Voigt-type) bound <= u <= Reuss p sum L_i / E_i."""
    _, u = column(column_file, ROLLERS)
    props = layer_props()
    upper = P * sum(t / E for t, E, _ in props)
    lower = kinematic_bound(props)
    # a lesion as stiff as the trabecular bone: the column would move at most this much (Reuss)
    as_bone = P * sum(t / (BONE["trabecular"][0] if E == E_LYTIC else E) for t, E, _ in props)
    msg = f"free column: top displacement {u:.8g} mm, bounds [{lower:.8g}, {upper:.8g}] mm (bone-stiff lesion: <= {as_bone:.4g} mm)"
    print(msg)
    assert lower * (1 - 1e-9) <= u <= upper * (1 + 1e-9), msg
    assert as_bone < 0.5 * lower, f"the bounds cannot tell a lytic lesion from bone: {msg}"


# --------------------------------------------------------------------- vertebra bound
@pytest.fixture(scope="module")
def vertebra_pair(tmp_path_factory):
    """Intact and lesioned generated L1 (tet4, 4 mm), 800 N compression, trabecular E given."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FEMBONE_CACHE", str(tmp_path_factory.mktemp("fembone-cache")))
    try:
        def run(**extra):
            c = {
                "name": "l1",
                "vertebra": {"level": "L1", "mesh_size": 4.0, "order": 1},
                "materials": {"preset": "normal", "trabecular": {"E": BONE["trabecular"][0], "nu": BONE["trabecular"][1]}},
                "loadcases": {"standing": [{"preset": "compression", "force": 800.0}]},
            }
            c.update(extra)
            model = build_model(c, base=".", source="test_lesion_stiffness")
            return model, solve(model).loadcases["standing"]

        intact = run()
        lesioned = run(lesions=[{"type": "lytic", "center": [0.0, 0.0, 0.0], "radius": RADIUS}])
    finally:
        mp.undo()
    return intact, lesioned


RADIUS = 10.0  # mm, lesion sphere at the body centroid (the generator's origin)
F_AXIAL = 800.0


def tet4_strains(mesh, u):
    """Element strains (ne, 3, 3) of a tet4 mesh from nodal displacements (ne, 4, 3)."""
    X = mesh.points[mesh.cells[:, :4]]
    D = X[:, 1:] - X[:, [0]]
    U = u[mesh.cells[:, :4]]
    Hm = np.linalg.solve(D, U[:, 1:] - U[:, [0]]).transpose(0, 2, 1)  # du_i/dx_j
    return 0.5 * (Hm + Hm.transpose(0, 2, 1)), np.abs(np.linalg.det(D)) / 6.0


def test_vertebra_lesion_compliance_energy_bound(vertebra_pair):
    (m0, lc0), (_, lc1) = vertebra_pair
    k0 = lc0.summary()["risk"]["axial_stiffness"]
    k1 = lc1.summary()["risk"]["axial_stiffness"]
    mesh = m0.mesh
    assert mesh.order == 1
    eps, vol = tet4_strains(mesh, lc0.fields.displacement)
    X = mesh.points[mesh.cells[:, :4]]
    inside = np.flatnonzero((np.linalg.norm(X, axis=2) <= RADIUS).all(axis=1))
    full = np.intersect1d(inside, mesh.cell_sets["trabecular"])
    lt, mt = lame(*BONE["trabecular"])
    ll, ml = lame(E_LYTIC, NU_LYTIC)
    e = eps[full]
    tr = np.trace(e, axis1=1, axis2=2)
    dW = float((vol[full] * ((lt - ll) * tr**2 + 2 * (mt - ml) * np.einsum("eij,eij->e", e, e))).sum())
    c0 = 1.0 / k0
    c_bound = c0 + dW / F_AXIAL**2
    k_bound = 1.0 / c_bound
    msg = (f"L1, lytic sphere r = {RADIUS} mm ({len(full)} trabecular elements wholly inside): stiffness intact {k0:.6g} N/mm, "
           f"lesioned {k1:.6g} N/mm (drop {1 - k1 / k0:.2%}); energy bound: lesioned <= {k_bound:.6g} N/mm (drop >= {1 - k_bound / k0:.2%})")
    print(msg)
    assert len(full) >= 50, f"too few elements inside the lesion for a meaningful bound: {len(full)}"
    assert k1 <= k_bound * (1 + 1e-9), msg
    assert 1 - k_bound / k0 > 0.03, f"bound too weak to tell a lesion from bone: {msg}"
