"""Density conversions and density-modulus laws for CT-based bone models. Units: MPa, g/cm^3.

A CT calibrated with a K2HPO4 phantom measures the K2HPO4-equivalent density rho_QCT.  Laws
fitted to mechanical tests use other densities, so every law states the density it takes
and the conversion is explicit:

* K2HPO4 -> ash:  rho_ash = 1.06 rho_QCT + 0.0389 g/cm^3 (the conversion of the Bonelab OGO
  pipeline, ``bmd_K2hpo4ToAsh``; field.md; checked against its source comment
  "K2HPO4 -31 mg/cc => ash 6 mg/cc").
* ash -> apparent (wet):  rho_app = rho_ash / 0.6 (ash fraction of wet trabecular bone ~0.6,
  field.md; the ratio reported by Keyak, Lee & Skinner 1994 and used by Schileo et al. 2008,
  not re-checked here).

Laws (E in MPa; each names its density):

=====================  ============================  ==========================================
name                   formula                       source
=====================  ============================  ==========================================
``kopperdahl2002``     E = -34.7 + 3230 rho_QCT      Kopperdahl, Morgan & Keaveny 2002, J Orthop
                                                     Res 20:801-805 (vertebral trabecular bone vs
                                                     QCT); used by Crawford, Cann & Keaveny 2003,
                                                     Bone 33:744 (OGO: ``crawford_voxel_E``)
``kopperdahl1998``     E = 2980 rho_app^1.05         Kopperdahl & Keaveny 1998, J Biomech
                                                     31:601-608 (field.md; fembone.spine.bone)
``bonelab_kopperdahl`` E = 2980 rho_QCT^1.05         the Kopperdahl power law applied directly to
                                                     K2HPO4 density, as in the Bonelab OGO spine
                                                     pipeline used for the spineFE benchmark
                                                     (``kopperdahl_trab_E``; Walle, Matheson &
                                                     Boyd 2025, bioRxiv 2025.04.19.649449)
``morgan2003``         E = 4730 rho_app^1.56         Morgan, Bayraktar & Keaveny 2003, J Biomech
                                                     36:897-904, vertebra (field.md: rho 0.20
                                                     -> 384.1 MPa)
``keyak1994``          E = 33900 rho_ash^2.20        Keyak, Lee & Skinner 1994, J Biomed Mater
                                                     Res 28:1329-1336 (proximal tibia trabecular
                                                     bone; coefficients recalled, not confirmed
                                                     by the search tool)
=====================  ============================  ==========================================

The formulas of kopperdahl2002, kopperdahl1998/bonelab_kopperdahl and morgan2003 were checked
against the Bonelab OGO source (``material_laws.py``); keyak1994 is from the literature as
recalled (unverified).  A constant law ``{E: 2.0, nu: 0.45}`` serves regions that are not
bone (lytic tumour tissue, PMMA caps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fembone.core import schema as S
from fembone.core.errors import InputError, show

__all__ = [
    "ASH_PER_QCT", "ASH_OFFSET", "ASH_PER_APP", "DensityLaw", "ConstantLaw", "LAWS",
    "qct_to_ash", "ash_to_app", "qct_to_app", "make_law", "LYTIC_TISSUE", "PMMA_CAP",
]

ASH_PER_QCT = 1.06  # rho_ash / rho_QCT slope
ASH_OFFSET = 0.0389  # g/cm^3 (38.9 mg/cc)
ASH_PER_APP = 0.6  # rho_ash / rho_app
DENSITIES = ("qct", "ash", "app")


def qct_to_ash(rho_qct):
    """rho_ash = 1.06 rho_QCT + 0.0389 (g/cm^3)."""
    return ASH_PER_QCT * np.asarray(rho_qct, float) + ASH_OFFSET


def ash_to_app(rho_ash):
    """rho_app = rho_ash / 0.6 (g/cm^3)."""
    return np.asarray(rho_ash, float) / ASH_PER_APP


def qct_to_app(rho_qct):
    return ash_to_app(qct_to_ash(rho_qct))


@dataclass(frozen=True)
class DensityLaw:
    """E = c + a rho^b (MPa), rho in g/cm^3 of kind ``density`` (qct, ash or app)."""

    name: str
    a: float
    b: float
    c: float = 0.0
    density: str = "app"
    citation: str = ""
    nu: float | None = None  # Poisson's ratio; None: the model's bone default

    def law_density(self, rho_qct_mgcc) -> np.ndarray:
        """The density this law takes (g/cm^3), from K2HPO4-equivalent density in mg/cc."""
        r = np.asarray(rho_qct_mgcc, float) / 1000.0
        if self.density == "qct":
            return r
        ash = qct_to_ash(r)
        return ash if self.density == "ash" else ash_to_app(ash)

    def modulus_of(self, rho) -> np.ndarray:
        """E (MPa) of the law's own density ``rho`` (g/cm^3); negative rho is taken as 0."""
        r = np.maximum(np.asarray(rho, float), 0.0)
        return self.c + self.a * r**self.b

    def modulus(self, rho_qct_mgcc) -> np.ndarray:
        """E (MPa) from K2HPO4-equivalent density (mg/cc), clamping the law's density at 0.

        (Not floored: :mod:`fembone.spine.ct.mapping` applies the modulus floor.)
        """
        return self.modulus_of(self.law_density(rho_qct_mgcc))

    @property
    def formula(self) -> str:
        rho = {"qct": "rho_QCT", "ash": "rho_ash", "app": "rho_app"}[self.density]
        if self.b == 1.0:
            body = f"{self.a:g} {rho}"
        else:
            body = f"{self.a:g} {rho}^{self.b:g}"
        return f"E = {self.c:g} + {body}" if self.c else f"E = {body}"

    def describe(self) -> dict:
        return {"name": self.name, "formula": self.formula + " (MPa, g/cm^3)", "density": self.density,
                "citation": self.citation}


@dataclass(frozen=True)
class ConstantLaw:
    """A region of fixed modulus ``E`` (MPa) and Poisson's ratio ``nu`` (not bone)."""

    name: str
    E: float
    nu: float
    citation: str = ""

    def describe(self) -> dict:
        return {"name": self.name, "formula": f"E = {self.E:g} MPa, nu = {self.nu:g}", "citation": self.citation}


LAWS: dict[str, DensityLaw] = {
    law.name: law
    for law in (
        DensityLaw("kopperdahl2002", 3230.0, 1.0, -34.7, "qct",
                   "Kopperdahl, Morgan & Keaveny 2002, J Orthop Res 20:801-805; Crawford, Cann & Keaveny 2003, Bone 33:744"),
        DensityLaw("kopperdahl1998", 2980.0, 1.05, 0.0, "app", "Kopperdahl & Keaveny 1998, J Biomech 31:601-608"),
        DensityLaw("bonelab_kopperdahl", 2980.0, 1.05, 0.0, "qct",
                   "Kopperdahl power law on K2HPO4 density as in the Bonelab OGO spine pipeline "
                   "(Walle, Matheson & Boyd 2025, bioRxiv 2025.04.19.649449)"),
        DensityLaw("morgan2003", 4730.0, 1.56, 0.0, "app", "Morgan, Bayraktar & Keaveny 2003, J Biomech 36:897-904 (vertebra)"),
        DensityLaw("keyak1994", 33900.0, 2.20, 0.0, "ash", "Keyak, Lee & Skinner 1994, J Biomed Mater Res 28:1329-1336"),
    )
}

#: lytic tumour tissue: nearly incompressible soft tissue (Whyne et al. 2000, 0.4-10 MPa; field.md, unverified)
LYTIC_TISSUE = ConstantLaw("lytic_tissue", 2.0, 0.45, "Whyne et al. 2000 (range 0.4-10 MPa, unverified)")
#: PMMA potting caps of in-vitro tests (Bonelab/OGO pipeline: E 2500 MPa, nu 0.3)
PMMA_CAP = ConstantLaw("pmma_cap", 2500.0, 0.3, "Bonelab OGO spine pipeline (pmma_E 2500, pmma_v 0.3)")


def make_law(spec, where: str, allow_constant: bool = True):
    """A law from its case-file value: a registered name, ``{E: .., nu: ..}`` (constant) or
    ``{a: .., b: .., c: .., density: qct|ash|app, citation: ..}`` (a power law of one's own)."""
    if isinstance(spec, str):
        if spec not in LAWS:
            raise InputError(f"unknown density-modulus law {show(spec)} (known: {', '.join(LAWS)})", where)
        return LAWS[spec]
    if not isinstance(spec, dict):
        raise InputError(f"expected a law name ({', '.join(LAWS)}) or a mapping, got {show(spec)}", where)
    if "E" in spec:
        if not allow_constant:
            raise InputError("a constant modulus is not a density-modulus law here", where)
        S.mapping(spec, where, allowed=("E", "nu", "name", "citation"))
        E = S.number(spec["E"], f"{where}.E", lo=0.0, lo_open=True)
        nu = S.number(spec.get("nu", 0.3), f"{where}.nu", lo=-0.99, hi=0.499)
        return ConstantLaw(str(spec.get("name", "constant")), E, nu, str(spec.get("citation", "")))
    if "law" in spec:  # {law: morgan2003, nu: 0.25}
        S.mapping(spec, where, allowed=("law", "nu"))
        base = make_law(S.string(spec["law"], f"{where}.law"), f"{where}.law", allow_constant=False)
        nu = S.number(spec.get("nu"), f"{where}.nu", lo=-0.99, hi=0.499) if "nu" in spec else None
        return DensityLaw(base.name, base.a, base.b, base.c, base.density, base.citation, nu)
    S.mapping(spec, where, allowed=("a", "b", "c", "density", "nu", "name", "citation"), required=("a", "b", "density"))
    a = S.number(spec["a"], f"{where}.a", lo=0.0, lo_open=True)
    b = S.number(spec["b"], f"{where}.b", lo=0.0, lo_open=True)
    c = S.number(spec.get("c", 0.0), f"{where}.c")
    dens = S.string(spec["density"], f"{where}.density", choices=DENSITIES)
    nu = S.number(spec["nu"], f"{where}.nu", lo=-0.99, hi=0.499) if "nu" in spec else None
    return DensityLaw(str(spec.get("name", "custom")), a, b, c, dens, str(spec.get("citation", "user-given")), nu)
