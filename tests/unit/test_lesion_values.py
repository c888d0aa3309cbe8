"""Lytic lesion material values in a built model, pinned against the source the preset cites.

Lytic tumour tissue: nearly incompressible soft tissue, E = 2 MPa, nu = 0.45 (fembone's
preset, inside the 0.4-10 MPa range of tumour moduli studied by Whyne, Hu & Lotz,
J Biomech 34:1317, 2001; recorded as unverified in shared/design/field.md).  Trabecular
bone of every preset is far stiffer (Morgan et al. 2003: 4730 rho^1.56 = 130-384 MPa for
rho 0.10-0.20 g/cm^3), so a lesion with the stiffness of bone fails these tests.

The models are small boxes whose element/facet sets carry the vertebra group names, built
through ``fembone.cases.build_model`` with ``materials: {preset: ...}`` and ``lesions:``.
Expected element stiffnesses are written from Lame's constants here, not read from the code:
the compliance S = C^-1 of an isotropic element has 1/S_zz = E and -S_xz/S_zz = nu; C_zz is
the constrained modulus E (1 - nu)/((1 + nu)(1 - 2 nu)), C_yz,yz the shear modulus E/(2(1 + nu)).
"""

from __future__ import annotations

import numpy as np
import pytest

from fembone.cases import build_model
from fembone.core.meshgen import box_mesh, write_mesh

E_LYTIC, NU_LYTIC = 2.0, 0.45
WHYNE_E_RANGE = (0.4, 10.0)  # MPa


@pytest.fixture(scope="module")
def column_file(tmp_path_factory):
    """10 x 10 x 12 mm: cortical_shell z < 2, trabecular 2 < z < 10, posterior_elements z > 10."""
    m = box_mesh(coords=(np.linspace(-5, 5, 3), np.linspace(-5, 5, 3), np.arange(0.0, 12.01, 2.0)))
    cz = m.centroids()[:, 2]
    m.cell_sets["cortical_shell"] = np.flatnonzero(cz < 2.0)
    m.cell_sets["trabecular"] = np.flatnonzero((cz > 2.0) & (cz < 10.0))
    m.cell_sets["posterior_elements"] = np.flatnonzero(cz > 10.0)
    m.facet_sets["endplate_inferior"] = m.facet_sets["zmin"]
    m.facet_sets["endplate_superior"] = m.facet_sets["zmax"]
    m.facet_sets["posterior_wall"] = m.facet_sets["ymin"]
    p = tmp_path_factory.mktemp("lesion-values") / "column.msh"
    write_mesh(m, p)
    return str(p)


def build(column_file, preset="normal", lesion=True):
    """Lesion over the slab 4 < z < 8 (whole elements; ellipsoid with 1 m in-plane radii)."""
    case = {
        "name": "lesion-values",
        "mesh": column_file,
        "materials": {"preset": preset},
        "constraints": [{"where": {"set": "zmin"}, "fix": ["x", "y", "z"]}],
        "loadcases": {"push": [{"where": {"set": "zmax"}, "pressure": 1.0}]},
    }
    if lesion:
        case["lesions"] = [{"type": "lytic", "center": [0.0, 0.0, 6.0], "radii": [1000.0, 1000.0, 2.0]}]
    return build_model(case, base=".", source="test_lesion_values")


def engineering(C: np.ndarray) -> tuple[float, float, float, float]:
    """(E, nu, constrained modulus, shear modulus) of an isotropic (6, 6) stiffness."""
    S = np.linalg.inv(C)
    return 1.0 / S[2, 2], -S[0, 2] / S[2, 2], C[2, 2], C[3, 3]


def test_lytic_preset_constants(column_file):
    model = build(column_file)
    mats = {m.name: m for m in model.materials}
    les = mats["lesion_lytic"]
    print(f"lesion_lytic: E = {les.E} MPa (expected {E_LYTIC}), nu = {les.nu} (expected {NU_LYTIC})")
    assert les.E == pytest.approx(E_LYTIC, rel=1e-12), f"lytic E = {les.E} MPa, expected {E_LYTIC}"
    assert les.nu == pytest.approx(NU_LYTIC, rel=1e-12), f"lytic nu = {les.nu}, expected {NU_LYTIC}"
    assert WHYNE_E_RANGE[0] <= les.E <= WHYNE_E_RANGE[1]
    assert 0.45 <= les.nu < 0.5, "tumour tissue is nearly incompressible"


def test_lesion_elements_get_the_lesion_stiffness(column_file):
    """Elements inside the lesion carry E = 2, nu = 0.45; the rest of the trabecular layer keeps bone."""
    model = build(column_file)
    cz = model.mesh.centroids()[:, 2]
    slab = np.flatnonzero((cz > 4.0) & (cz < 8.0))
    rest = np.setdiff1d(model.mesh.cell_sets["trabecular"], slab)
    lam, mu = E_LYTIC * NU_LYTIC / ((1 + NU_LYTIC) * (1 - 2 * NU_LYTIC)), E_LYTIC / (2 * (1 + NU_LYTIC))
    exp = (E_LYTIC, NU_LYTIC, lam + 2 * mu, mu)
    got = np.array([engineering(C) for C in model.C[slab]])
    print(f"lesion elements: (E, nu, M, G) from {got[0]} to {got[-1]}, expected {exp}")
    assert len(slab) == 48
    assert np.allclose(got, exp, rtol=1e-9), f"lesion element (E, nu, M, G) {got.min(axis=0)}..{got.max(axis=0)}, expected {exp}"
    trab_E = np.array([engineering(C)[0] for C in model.C[rest]])
    mats = {m.name: m for m in model.materials}
    assert np.allclose(trab_E, mats["trabecular"].youngs_modulus, rtol=1e-9)
    assert np.all(trab_E > 50 * E_LYTIC), f"trabecular E {trab_E.min()} should dwarf the lesion's {E_LYTIC}"


def test_lesion_changes_only_its_own_elements(column_file):
    """Intact vs lesioned: stiffness differs exactly in the 48 lesion elements."""
    intact = build(column_file, lesion=False)
    C0, C1 = intact.C, build(column_file).C
    changed = np.flatnonzero(np.abs(C1 - C0).max(axis=(1, 2)) > 0)
    cz = intact.mesh.centroids()[:, 2]
    print(f"{len(changed)} elements changed, z in [{cz[changed].min():.3g}, {cz[changed].max():.3g}]")
    assert len(changed) == 48 and np.all((cz[changed] > 4.0) & (cz[changed] < 8.0))
    # Voigt stiffness is positive-definite-ordered: the lesion is softer in every mode (bulk and shear)
    d = np.linalg.eigvalsh(C0[changed] - C1[changed])
    assert d.min() > 0, f"lesion not softer than bone in every mode: min eigenvalue of C_bone - C_lesion = {d.min()}"


@pytest.mark.parametrize("preset", ["normal", "osteopenic", "osteoporotic"])
def test_lesion_far_softer_than_trabecular_bone_of_every_preset(column_file, preset):
    """Morgan et al. 2003 gives 130-384 MPa for the presets' densities; the lesion stays 2 MPa."""
    mats = {m.name: m for m in build(column_file, preset=preset).materials}
    E_t, E_l = mats["trabecular"].youngs_modulus, mats["lesion_lytic"].E
    print(f"{preset}: trabecular E {E_t:.4g} MPa, lytic E {E_l:.4g} MPa, ratio {E_t / E_l:.3g}")
    assert E_l == pytest.approx(E_LYTIC, rel=1e-12)
    assert E_t / E_l > 50, f"{preset}: trabecular/lesion stiffness ratio {E_t / E_l:.3g}, expected > 50"
