"""Vertebral bone, tumour and cement materials: presets, density-modulus laws, mixing. Units: MPa, g/cm^3, mm.

Region names follow the vertebra meshes: ``cortical_shell``, ``trabecular``,
``posterior_elements``; plus ``lesion_lytic``, ``lesion_blastic``, ``lesion_mixed``,
``pmma`` (bulk cement) and ``cement_bone`` (cement interdigitated into trabecular bone).

Sources (values in shared/design/field.md).  [V] read in a paper or abstract found by
search; [S] secondary source; [M] from memory, not confirmed.

* cortical shell E 12000 / 8350 / 4700 MPa (normal / osteopenic / osteoporotic), posterior
  elements 3500 MPa, nu 0.3 / 0.25: continuum vertebral FE material tables (J Orthop Surg Res
  2020; BMC Musculoskelet Disord 2017).  Posterior elements are scaled like the cortex in the
  weaker presets (an assumption, stated here).
* trabecular E from apparent density with Morgan, Bayraktar & Keaveny, J Biomech 36:897 (2003),
  vertebra: E = 4730 rho_app^1.56 [S: Keaveny handbook Table 9.4, 61 specimens T10-L5]; presets
  rho_app = 0.20 / 0.15 / 0.10 g/cm^3 give 384 / 244 / 130 MPa.
  Alternative: E = 2980 rho^1.05, attributed to Kopperdahl & Keaveny (only in public code [S]).
* transverse isotropy (optional): E_transverse = ratio x E_axial (ratio ~1/3-1/2, unverified
  rule of thumb); G_axial by Huber's estimate sqrt(E_a E_t) / (2 (1 + nu)).
* yield strains of vertebral trabecular bone: 0.84 % compression, 0.78 % tension, Kopperdahl &
  Keaveny, J Biomech 31:601 (1998) [V].  (Morgan & Keaveny, J Biomech 34:569 (2001) give
  0.77 % / 0.70 % for vertebrae [M, not confirmed]; kept as ``MORGAN_KEAVENY_2001_VERTEBRA``.)
* cortical (shell) yield strains 1.04 % compression / 0.73 % tension and bone tissue modulus
  18 GPa: Bayraktar, Morgan, Niebur, Morris, Wong & Keaveny, J Biomech 37:27 (2004) [M, not
  confirmed by search].  Nanoindentation brackets the tissue modulus at 6.9-25.0 GPa (Zysset
  et al., J Biomech 32:1005, 1999 [V]); Kosmopoulos & Keller (Eur Spine J 13:617, 2004 [V]) used
  10 GPa.
* bone tissue density 2.0 g/cm^3: tissue mineral density 1.24 g/cm^3 (trabecular) and
  1.19 g/cm^3 (cortical), i.e. ash density / BV/TV, Tassani et al., J Biomech 44:103 (2011) [V],
  divided by an ash fraction of about 0.6 [M] gives 2.0-2.1 g/cm^3.
* PMMA: E 3000 MPa, nu 0.4 (Hernandez 2020; Boger et al.); lytic tumour: nearly incompressible
  soft tissue, E 2 MPa, nu 0.45 (Whyne et al. 2000, range 0.4-10 MPa, unverified); blastic:
  dense sclerotic bone, E 2000 MPa (assumption).
* mixtures: Hill's average of the Voigt and Reuss bounds of the volume-fraction-weighted
  stiffnesses (Hill, Proc Phys Soc A 65:349, 1952).
* cement-bone composite (interdigitated cement): bone TISSUE (not the porous apparent bone)
  occupies BV/TV = rho_app / rho_tissue, PMMA fills the pores 1 - BV/TV; Hill (or
  Hashin-Shtrikman) estimate of the two phases, see :func:`cement_bone_modulus`.
* kyphoplasty: the balloon compacts the bone of its cavity into a rim, see :func:`compacted_rim`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fembone.core.errors import InputError
from fembone.core.materials import Isotropic, Material, TransverseIsotropic


def morgan2003(rho_app):
    """Morgan et al. 2003, vertebral trabecular bone: E = 4730 rho_app^1.56 (MPa; rho in g/cm^3)."""
    return 4730.0 * np.asarray(rho_app, float) ** 1.56


def kopperdahl1998(rho_app):
    """E = 2980 rho_app^1.05 (MPa; rho in g/cm^3), attributed to Kopperdahl & Keaveny [S, unverified]."""
    return 2980.0 * np.asarray(rho_app, float) ** 1.05


DENSITY_LAWS = {"morgan2003": morgan2003, "kopperdahl1998": kopperdahl1998}


@dataclass(frozen=True)
class BonePreset:
    cortical_E: float
    trabecular_density: float  # apparent density g/cm^3
    posterior_E: float


PRESETS = {
    "normal": BonePreset(12000.0, 0.20, 3500.0),
    "osteopenic": BonePreset(8350.0, 0.15, 3500.0 * 8350.0 / 12000.0),
    "osteoporotic": BonePreset(4700.0, 0.10, 3500.0 * 4700.0 / 12000.0),
}

#: Yield strains of vertebral trabecular bone (Kopperdahl & Keaveny, J Biomech 31:601, 1998) [V]
YIELD_STRAIN_COMPRESSION = 0.0084
YIELD_STRAIN_TENSION = 0.0078
#: Morgan & Keaveny, J Biomech 34:569 (2001), vertebra (compression, tension) [M, not confirmed]
MORGAN_KEAVENY_2001_VERTEBRA = (0.0077, 0.0070)
#: cortical bone yield strains (Bayraktar et al., J Biomech 37:27, 2004) [M, not confirmed]
CORTICAL_YIELD_STRAIN_COMPRESSION = 0.0104
CORTICAL_YIELD_STRAIN_TENSION = 0.0073
#: bone tissue (material) modulus, MPa (Bayraktar et al. 2004 [M]) and Poisson's ratio
BONE_TISSUE_E = 18000.0
BONE_TISSUE_NU = 0.3
#: bone tissue density, g/cm^3 (Tassani et al. 2011 TMD 1.24 [V] / ash fraction ~0.6 [M])
BONE_TISSUE_DENSITY = 2.0
#: compressive strength of PMMA bone cement, MPa (ISO 5833 minimum 70 MPa); see spine.cement
PMMA_STRENGTH = 70.0
#: legacy fixed porosity (1 - BV/TV); the porosity now follows the density (BV/TV = rho/rho_tissue)
DEFAULT_POROSITY = 0.85

REGION_KEYS = {
    "cortical_shell": ("E", "nu"),
    "trabecular": ("E", "nu", "density", "law", "transverse_ratio"),
    "posterior_elements": ("E", "nu"),
    "lesion_lytic": ("E", "nu"),
    "lesion_blastic": ("E", "nu"),
    "lesion_mixed": ("E", "nu"),
    "pmma": ("E", "nu"),
    "cement_bone": ("E", "nu", "porosity"),
}


def vertebra_materials(spec: dict | None, path: str = "materials") -> tuple[dict[str, Material], dict]:
    """Materials of a vertebra model from ``{preset: normal, trabecular: {density: 0.18}, ...}``.

    Returns name -> Material and a dict of derived facts (trabecular density, law, porosity).
    The cement-bone composite is tissue based (:func:`cement_bone_elastic`): its porosity is
    1 - rho_app / rho_tissue unless ``cement_bone.porosity`` is given.
    """
    from fembone.core import schema as S

    spec = {} if spec is None else S.mapping(spec, path, allowed=("preset",) + tuple(REGION_KEYS))
    pname = S.string(spec.get("preset", "normal"), f"{path}.preset", choices=tuple(PRESETS))
    pre = PRESETS[pname]
    over = {k: S.mapping(spec.get(k, {}), f"{path}.{k}", allowed=REGION_KEYS[k]) for k in REGION_KEYS}

    def num(region, key, default, lo=None, hi=None):
        if key in over[region]:
            return S.number(over[region][key], f"{path}.{region}.{key}", lo=lo, hi=hi)
        return default

    info = {"preset": pname}
    tr = over["trabecular"]
    law = S.string(tr.get("law", "morgan2003"), f"{path}.trabecular.law", choices=tuple(DENSITY_LAWS))
    if "E" in tr and "density" in tr:
        raise InputError("give either E or density, not both", f"{path}.trabecular")
    rho = num("trabecular", "density", pre.trabecular_density, lo=0.01, hi=1.5)
    E_trab = num("trabecular", "E", float(DENSITY_LAWS[law](rho)), lo=0)
    info.update(trabecular_density=rho, density_law=law if "E" not in tr else None, trabecular_E=E_trab)
    nu_trab = num("trabecular", "nu", 0.2)
    mats: dict[str, Material] = {}
    mats["cortical_shell"] = Isotropic(name="cortical_shell", E=num("cortical_shell", "E", pre.cortical_E), nu=num("cortical_shell", "nu", 0.3))
    ratio = num("trabecular", "transverse_ratio", 1.0, lo=0.05, hi=1.0)
    if ratio < 1.0:
        Et = ratio * E_trab
        mats["trabecular"] = TransverseIsotropic(
            name="trabecular", E_axial=E_trab, E_transverse=Et, nu_axial=nu_trab, nu_transverse=nu_trab,
            G_axial=float(np.sqrt(E_trab * Et) / (2 * (1 + nu_trab))), axis=(0.0, 0.0, 1.0),
        )
    else:
        mats["trabecular"] = Isotropic(name="trabecular", E=E_trab, nu=nu_trab)
    mats["posterior_elements"] = Isotropic(name="posterior_elements", E=num("posterior_elements", "E", pre.posterior_E), nu=num("posterior_elements", "nu", 0.25))
    mats["lesion_lytic"] = Isotropic(name="lesion_lytic", E=num("lesion_lytic", "E", 2.0), nu=num("lesion_lytic", "nu", 0.45))
    mats["lesion_blastic"] = Isotropic(name="lesion_blastic", E=num("lesion_blastic", "E", 2000.0), nu=num("lesion_blastic", "nu", 0.3))
    Eb, El = mats["lesion_blastic"].E, mats["lesion_lytic"].E
    mats["lesion_mixed"] = Isotropic(name="lesion_mixed", E=num("lesion_mixed", "E", float(np.sqrt(Eb * El))), nu=num("lesion_mixed", "nu", 0.4))
    mats["pmma"] = Isotropic(name="pmma", E=num("pmma", "E", 3000.0), nu=num("pmma", "nu", 0.4))
    phi = num("cement_bone", "porosity", 1.0 - rho / BONE_TISSUE_DENSITY, lo=0.05, hi=0.99)
    info["porosity"] = phi
    E_cb, nu_cb = cement_bone_elastic((1.0 - phi) * BONE_TISSUE_DENSITY, mats["pmma"].E, mats["pmma"].nu, method="hs_lower")
    E_cb *= COMPOSITE_INTERFACE_FACTOR * COMPOSITE_SHRINKAGE_FACTOR
    info["cement_bone_E"] = float(E_cb)
    mats["cement_bone"] = Isotropic(name="cement_bone", E=num("cement_bone", "E", float(E_cb)), nu=num("cement_bone", "nu", float(nu_cb)))
    for m in mats.values():
        m.check()
    return mats, info


#: Cement interdigitated in trabecular bone is not a perfectly bonded composite.  Kinzl, Boger,
#: Zysset & Pahr (J Biomech 45:1478, 2012), micro-FE of PMMA/bone biopsies from augmented
#: vertebrae validated against their compression tests: a frictionless bone-cement interface is
#: 20 % more compliant than perfect bonding, and polymerisation-shrinkage damage of the bone
#: lowers the initial stiffness by a further 24 %; their companion study (J Biomech 45:2732, 2012)
#: found the bone mechanically "switched off", the porous PMMA carrying the load.  The composite
#: modulus is the Hashin-Shtrikman lower bound (PMMA the continuous phase) times both factors.
COMPOSITE_INTERFACE_FACTOR = 0.80
COMPOSITE_SHRINKAGE_FACTOR = 0.76


def hill_mix(Cs: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Per-element stiffness (ne, 6, 6) mixing materials ``Cs`` (nm, 6, 6) by ``fractions`` (ne, nm).

    Hill average of the Voigt (sum f_i C_i) and Reuss ((sum f_i C_i^-1)^-1) bounds; rows of
    ``fractions`` are normalised to sum 1.  A void phase (C = 0) has no compliance; use
    :func:`fembone.spine.lesions.void_stiffness` for holes.
    """
    f = np.asarray(fractions, float)
    f = f / f.sum(axis=1, keepdims=True)
    voigt = np.einsum("em,mij->eij", f, Cs)
    S = np.linalg.inv(Cs)
    reuss = np.linalg.inv(np.einsum("em,mij->eij", f, S))
    return 0.5 * (voigt + reuss)


# -- cement-bone composite, tissue based ------------------------------------------------------
def bone_volume_fraction(rho_app, rho_tissue: float = BONE_TISSUE_DENSITY):
    """BV/TV = rho_app / rho_tissue (g/cm^3 over g/cm^3): share of the volume that is bone tissue."""
    rho = np.asarray(rho_app, float)
    if np.any(rho <= 0) or np.any(rho >= rho_tissue):
        raise InputError(f"apparent density {rho_app} g/cm^3 must lie in (0, {rho_tissue}) (the tissue density)", "rho_app")
    return rho / rho_tissue


def _bulk_shear(E, nu):
    E, nu = np.asarray(E, float), np.asarray(nu, float)
    return E / (3.0 * (1.0 - 2.0 * nu)), E / (2.0 * (1.0 + nu))


def _young_poisson(K, G):
    return 9.0 * K * G / (3.0 * K + G), (3.0 * K - 2.0 * G) / (2.0 * (3.0 * K + G))


def cement_bone_elastic(rho_app, E_pmma: float, nu_pmma: float, E_tissue: float = BONE_TISSUE_E,
                        rho_tissue: float = BONE_TISSUE_DENSITY, nu_tissue: float = BONE_TISSUE_NU,
                        method: str = "hill"):
    """(E, nu) of PMMA interdigitated into trabecular bone of apparent density ``rho_app``.

    Two isotropic phases: bone tissue (E_tissue, nu_tissue) with volume fraction
    f_b = BV/TV = rho_app / rho_tissue, and PMMA filling the pores, f_c = 1 - f_b.  Bulk and
    shear moduli K = E / (3 (1 - 2 nu)), G = E / (2 (1 + nu)) are averaged:

    * ``hill``: mean of Voigt (f_b K_b + f_c K_c) and Reuss (1 / (f_b/K_b + f_c/K_c)), same for G
      (Hill 1952) -- the same rule as :func:`hill_mix` for isotropic phases;
    * ``hs_lower`` / ``hs_upper`` / ``hs_mean``: Hashin-Shtrikman bounds (J Mech Phys Solids
      11:127, 1963) with the soft (PMMA) or stiff (tissue) phase as reference, or their mean.

    Then E = 9KG / (3K + G), nu = (3K - 2G) / (2 (3K + G)).  Porosity follows the density.

    The old rule mixed PMMA with the *apparent* trabecular modulus by the porosity phi:
    hill(PMMA: phi, E_app: 1 - phi).  E_app = 4730 rho^1.56 already is the modulus of the porous
    bone, so scaling it again by 1 - phi counted the porosity twice: with empty pores
    (E_pmma -> 0) that rule gives (1 - phi) E_app / 2, i.e. 7.5 % of the bone it started from
    at phi = 0.85 (tests/unit/test_risk.py).
    """
    fb = bone_volume_fraction(rho_app, rho_tissue)
    fc = 1.0 - fb
    Kb, Gb = _bulk_shear(E_tissue, nu_tissue)
    Kc, Gc = _bulk_shear(E_pmma, nu_pmma)
    if method == "hill":
        K = 0.5 * (fb * Kb + fc * Kc + 1.0 / (fb / Kb + fc / Kc))
        G = 0.5 * (fb * Gb + fc * Gc + 1.0 / (fb / Gb + fc / Gc))
    elif method in ("hs_lower", "hs_upper", "hs_mean"):
        lo = _hashin_shtrikman(Kc, Gc, fc, Kb, Gb, fb)
        hi = _hashin_shtrikman(Kb, Gb, fb, Kc, Gc, fc)
        K, G = {"hs_lower": lo, "hs_upper": hi, "hs_mean": (0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1]))}[method]
    else:
        raise InputError(f"unknown mixing method '{method}' (hill, hs_lower, hs_upper, hs_mean)", "method")
    return _young_poisson(K, G)


def _hashin_shtrikman(K1, G1, f1, K2, G2, f2):
    """HS bound with phase 1 as reference (lower bound when phase 1 is the softer one)."""
    K = K1 + f2 / (1.0 / (K2 - K1) + 3.0 * f1 / (3.0 * K1 + 4.0 * G1))
    G = G1 + f2 / (1.0 / (G2 - G1) + 6.0 * f1 * (K1 + 2.0 * G1) / (5.0 * G1 * (3.0 * K1 + 4.0 * G1)))
    return K, G


def cement_bone_modulus(rho_app, E_pmma: float, nu_pmma: float, E_tissue: float = BONE_TISSUE_E,
                        rho_tissue: float = BONE_TISSUE_DENSITY, nu_tissue: float = BONE_TISSUE_NU,
                        method: str = "hill"):
    """Young's modulus (MPa) of the cement-bone composite; see :func:`cement_bone_elastic`."""
    return cement_bone_elastic(rho_app, E_pmma, nu_pmma, E_tissue, rho_tissue, nu_tissue, method)[0]


# -- kyphoplasty: compacted rim -------------------------------------------------------------
def balloon_radius(volume_ml: float) -> float:
    """Radius (mm) of the sphere of ``volume_ml`` (1 mL = 1000 mm^3): r = (3 V / (4 pi))^(1/3)."""
    if not volume_ml > 0:
        raise InputError(f"balloon volume {volume_ml} mL must be > 0", "balloon_ml")
    return float((3.0 * volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0))


def compacted_rim(rho_app, cavity_radius: float, rim_thickness: float, rho_tissue: float = BONE_TISSUE_DENSITY):
    """Apparent density (g/cm^3) of the compacted-bone rim around a kyphoplasty balloon cavity.

    Assumption (stated, mass conservation): the inflating balloon does not remove bone; it
    pushes the bone of the cavity (sphere of radius r) into a shell of thickness t around it,
    which keeps its own bone too.  Bone mass rho (4/3 pi (r + t)^3) then sits in the shell:

        rho_rim = rho_app (r + t)^3 / ((r + t)^3 - r^3)

    (Balloon kyphoplasty compacts the surrounding cancellous bone -- the procedure's rationale;
    the rim thickness is an input, not a measured value here.)  The rim modulus follows from the
    density-modulus law of intact bone, e.g. ``morgan2003(rho_rim)``: compacted bone is
    crushed, so this is an upper estimate.  Raises when the rim would be denser than tissue.
    """
    r, t = float(cavity_radius), float(rim_thickness)
    if not r > 0:
        raise InputError(f"cavity radius {r} mm must be > 0", "cavity_radius")
    if not t > 0:
        raise InputError(f"rim thickness {t} mm must be > 0", "rim_thickness")
    R3 = (r + t) ** 3
    rim = np.asarray(rho_app, float) * R3 / (R3 - r**3)
    if np.any(rim >= rho_tissue):
        raise InputError(
            f"a {t} mm rim around a {r:.1f} mm cavity would need density {np.max(rim):.2f} g/cm^3, above the "
            f"tissue density {rho_tissue}; use a thicker rim", "rim_thickness",
        )
    return rim
