"""Vertebral bone, tumour and cement materials: presets, density-modulus laws, mixing. Units: MPa, g/cm^3.

Region names follow the vertebra meshes: ``cortical_shell``, ``trabecular``,
``posterior_elements``; plus ``lesion_lytic``, ``lesion_blastic``, ``lesion_mixed``,
``pmma`` (bulk cement) and ``cement_bone`` (cement interdigitated into trabecular bone).

Sources (values in shared/design/field.md):

* cortical shell E 12000 / 8350 / 4700 MPa (normal / osteopenic / osteoporotic), posterior
  elements 3500 MPa, nu 0.3 / 0.25: continuum vertebral FE material tables (J Orthop Surg Res
  2020; BMC Musculoskelet Disord 2017).  Posterior elements are scaled like the cortex in the
  weaker presets (an assumption, stated here).
* trabecular E from apparent density with Morgan, Bayraktar & Keaveny, J Biomech 36:897 (2003),
  vertebra: E = 4730 rho_app^1.56; presets rho_app = 0.20 / 0.15 / 0.10 g/cm^3 give 384 / 244 / 130
  MPa, inside the published ranges 200-345 (normal) and 34-146 (osteoporotic).
  Alternatives: Kopperdahl & Keaveny, J Biomech 31:601 (1998): E = 2980 rho^1.05.
* transverse isotropy (optional): E_transverse = ratio x E_axial (ratio ~1/3-1/2, unverified
  rule of thumb); G_axial by Huber's estimate sqrt(E_a E_t) / (2 (1 + nu)).
* PMMA: E 3000 MPa, nu 0.4 (Hernandez 2020; Boger et al.); lytic tumour: nearly incompressible
  soft tissue, E 2 MPa, nu 0.45 (Whyne et al. 2000, range 0.4-10 MPa, unverified); blastic:
  dense sclerotic bone, E 2000 MPa (assumption).
* mixtures: Hill's average of the Voigt and Reuss bounds of the volume-fraction-weighted
  stiffnesses (Hill, Proc Phys Soc A 65:349, 1952), so properties change smoothly with the
  fraction of an element inside a lesion or cement region.
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
    """Kopperdahl & Keaveny 1998: E = 2980 rho_app^1.05 (MPa; rho in g/cm^3)."""
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

#: Yield strains of vertebral trabecular bone (Morgan & Keaveny, J Biomech 34:569, 2001)
YIELD_STRAIN_COMPRESSION = 0.0077
YIELD_STRAIN_TENSION = 0.0070
#: compressive strength of PMMA bone cement, MPa (ISO 5833 minimum 70 MPa)
PMMA_STRENGTH = 70.0
#: porosity of trabecular bone filled by interdigitating cement (1 - BV/TV; BV/TV ~ 0.1-0.2)
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
    phi = num("cement_bone", "porosity", DEFAULT_POROSITY, lo=0.05, hi=0.99)
    info["porosity"] = phi
    Ccb = hill_mix(np.array([mats["pmma"].stiffness(), mats["trabecular"].stiffness()]), np.array([[phi, 1 - phi]]))[0]
    E_cb = 1.0 / np.linalg.inv(Ccb)[2, 2]
    mats["cement_bone"] = Isotropic(name="cement_bone", E=num("cement_bone", "E", float(E_cb)), nu=num("cement_bone", "nu", 0.3))
    for m in mats.values():
        m.check()
    return mats, info


def hill_mix(Cs: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Per-element stiffness (ne, 6, 6) mixing materials ``Cs`` (nm, 6, 6) by ``fractions`` (ne, nm).

    Hill average of the Voigt (sum f_i C_i) and Reuss ((sum f_i C_i^-1)^-1) bounds; rows of
    ``fractions`` are normalised to sum 1.
    """
    f = np.asarray(fractions, float)
    f = f / f.sum(axis=1, keepdims=True)
    voigt = np.einsum("em,mij->eij", f, Cs)
    S = np.linalg.inv(Cs)
    reuss = np.linalg.inv(np.einsum("em,mij->eij", f, S))
    return 0.5 * (voigt + reuss)
